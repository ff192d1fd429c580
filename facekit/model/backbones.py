"""ImageNet backbones by name, in the spirit of timm's registry.

One name picks a ``keras.applications`` architecture, the ImageNet weights
that go with it, and the input preprocessing it was trained with. The
preprocessing is folded into one frozen 1 x 1 convolution at the front of the
model (see models.input_adapter), so exported models take the lecturer's
BGR [0, 1] images and need nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facekit.utils.modelfiles import model_dir

IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class Backbone:
    name: str
    builder: str  # attribute of keras.applications
    kwargs: dict[str, Any] = field(default_factory=dict)
    # Preprocessing, from BGR [0, 1] input: out[c] = scale * in[channel c of `order`] + offset[c].
    scale: float = 255.0
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rgb: bool = True  # False: the network wants BGR (Caffe-style ResNet50)
    weights_file: str | None = None  # file name Keras downloads; looked for in <model dir>/keras/ first
    note: str = ""


REGISTRY: dict[str, Backbone] = {
    b.name: b
    for b in [
        Backbone("mobilenet_075", "MobileNet", {"alpha": 0.75}, 2.0, (-1.0, -1.0, -1.0),
                 weights_file="mobilenet_7_5_224_tf_no_top.h5",
                 note="measured here: 5.61 MAE / 91.4 % (docs/findings.md); offline weights available"),
        Backbone("mobilenetv2_035", "MobileNetV2", {"alpha": 0.35}, 2.0, (-1.0, -1.0, -1.0),
                 weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5",
                 note="offline weights available"),
        Backbone("mobilenetv2_100", "MobileNetV2", {"alpha": 1.0}, 2.0, (-1.0, -1.0, -1.0),
                 weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
        Backbone("efficientnetb0", "EfficientNetB0", {}, 255.0, weights_file="efficientnetb0_notop.h5"),
        Backbone("efficientnetv2b0", "EfficientNetV2B0", {"include_preprocessing": True}, 255.0,
                 weights_file="efficientnetv2-b0_notop.h5"),
        Backbone("resnet50", "ResNet50", {}, 255.0, tuple(-m for m in IMAGENET_MEAN_BGR), rgb=False,
                 weights_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        Backbone("convnext_tiny", "ConvNeXtTiny", {"include_preprocessing": True}, 255.0,
                 weights_file="convnext_tiny_notop.h5"),
    ]
}
DEFAULT_BACKBONE = "mobilenet_075"


def get_backbone(name: str) -> Backbone:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(REGISTRY)}") from None


def resolve_weights(spec: Backbone, weights: str, directory: str | Path | None = None) -> str | None:
    """``imagenet`` | ``none`` | a file path -> what keras.applications' ``weights=`` takes.

    For ``imagenet`` an offline copy in ``<model dir>/keras/`` wins (Keras would
    otherwise download the file for this input size); without one, Keras
    downloads and checks its own file on the user's machine.
    """
    if weights.lower() == "none":
        return None
    if weights.lower() == "imagenet":
        if spec.weights_file:
            local = model_dir(directory) / "keras" / spec.weights_file
            if local.is_file():
                return str(local)
        return "imagenet"
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found (use imagenet, none or a path to an .h5 file)")
    return str(path)


def build_backbone(spec: Backbone, size: int, weights: str | None):
    """The headless network as a Keras model taking (size, size, 3) preprocessed input."""
    import keras

    ctor = getattr(keras.applications, spec.builder)
    try:
        return ctor(include_top=False, weights=weights, input_shape=(size, size, 3), **spec.kwargs)
    except Exception as exc:  # keras.utils.get_file raises a bare Exception("URL fetch failure ...")
        if weights != "imagenet" or "URL fetch failure" not in str(exc) and not isinstance(exc, OSError):
            raise
        from facekit.utils.modelfiles import ENV_VAR, ModelFileError

        where = f"DIR/keras/{spec.weights_file}" if spec.weights_file else "a local .h5 file"
        raise ModelFileError(
            f"{spec.name}: the ImageNet weights could not be downloaded ({' '.join(str(exc).split())[:200]}). "
            f"Offline, put the file Keras downloads at {where} and set {ENV_VAR}=DIR, or pass "
            "--weights PATH (or --weights none to train from random weights)") from None
