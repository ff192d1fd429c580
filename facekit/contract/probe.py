"""Runs in a fresh interpreter that never imports facekit (its source is passed to ``python -c``).

It loads a .keras file the way the lecturer's test does, plain
``keras.models.load_model`` with no custom objects, and prints one JSON
object describing the model and its outputs on a batch of inputs (a ``.npy``
file the caller wrote from images read like the lecturer,
``facekit.contract``), so every Keras version gets bit-identical inputs.
Standard library, numpy and keras only: it also runs in the bare
environments of other Keras versions (``facekit.contract.keras_envs``), and must keep
to what Keras 3.0 already had.
"""

import json
import sys
import traceback


def producer(tensor):
    return tensor._keras_history[0]


def output_names(model):
    """The outputs' names; a Sequential model has no ``output_names``, so its last layer names its one output."""
    names = getattr(model, "output_names", None)
    return list(names) if names else [producer(t).name for t in model.outputs]


def _feature_map_before_first_dense(model, keras):
    dense = next((layer for layer in model.layers if isinstance(layer, keras.layers.Dense)), None)
    if dense is None:
        return None, None
    t = dense.input
    for _ in range(100):
        if len(t.shape) == 4:
            return dense.name, [int(t.shape[1]), int(t.shape[2])]
        op = producer(t)
        if isinstance(op, keras.layers.InputLayer):
            break
        t = op.input if not isinstance(op.input, list) else op.input[0]
    return dense.name, None


def all_layers(model, keras):
    """Every layer, nested models' layers included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer, keras)


def layer_activation(layer):
    cfg = layer.get_config()
    act = cfg.get("activation")
    if isinstance(act, dict):
        act = act.get("config", {}).get("name") or act.get("class_name")
    return {"class": type(layer).__name__, "activation": act, "units": cfg.get("units")}


def _predict(model, inputs_path, out):
    import numpy as np

    x = np.load(inputs_path)
    preds = model.predict(x, verbose=0)
    preds = preds if isinstance(preds, (list, tuple)) else [preds]
    out["predictions"] = [np.asarray(p, dtype="float64").reshape(len(x), -1).tolist() for p in preds]


def probe(path, inputs_path=None):
    out = {"loaded": False}
    try:
        import keras

        out["backend"] = keras.backend.backend()
        out["keras"] = keras.__version__
        model = keras.models.load_model(path)
        out["loaded"] = True
    except Exception as exc:
        out["load_error"] = f"{type(exc).__name__}: {exc}"
        out["facekit_imported"] = any(m == "facekit" or m.startswith("facekit.") for m in sys.modules)
        return out
    out["inputs"] = [{"shape": list(t.shape), "dtype": str(t.dtype)} for t in model.inputs]
    out["outputs"] = []
    for name, t in zip(output_names(model), model.outputs):
        out["outputs"].append({"name": name, "shape": list(t.shape), "layer": layer_activation(producer(t))})
    out["layers"] = [{"name": layer.name, "class": type(layer).__name__, "module": type(layer).__module__}
                     for layer in all_layers(model, keras)]
    out["first_dense"], out["first_dense_map"] = _feature_map_before_first_dense(model, keras)
    if inputs_path:
        try:
            _predict(model, inputs_path, out)
        except Exception as exc:
            out["predict_error"] = f"{type(exc).__name__}: {exc}"[:2000]
    out["facekit_imported"] = any(m == "facekit" or m.startswith("facekit.") for m in sys.modules)
    return out


def main(argv):
    """``INPUTS MODEL [MODEL ...]`` (INPUTS ``-`` for none): every model probed in this one interpreter, so
    checking A and B together pays for one interpreter start and one Keras import, not two."""
    inputs = argv[1] if len(argv) > 1 and argv[1] != "-" else None
    results = []
    for model in argv[2:]:
        try:
            results.append(probe(model, inputs))
        except Exception:
            results.append({"loaded": False, "load_error": traceback.format_exc()})
    sys.stdout.write("\n@@PROBE@@" + json.dumps(results) + "\n")


if __name__ == "__main__":
    main(sys.argv)
