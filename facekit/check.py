"""``facekit check``: does a .keras file meet the lecturer's contract?

Everything is judged from a fresh Python process that never imports facekit
and loads the file with plain ``keras.models.load_model``, as the hidden test
code will (see contract_probe).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from facekit.labels import Label, parse_name

EXPECTED_INPUT = [None, 128, 128, 3]
MAX_FIRST_FC_MAP = 10  # Model A: the map fed to the first fully connected layer must be smaller than 10 x 10


@dataclass
class Check:
    name: str
    ok: bool | None  # None: information only
    detail: str


@dataclass
class CheckReport:
    path: str
    kind: str | None
    checks: list[Check] = field(default_factory=list)
    output_order: list[str] | None = None

    @property
    def passed(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "passed": self.passed, "output_order": self.output_order,
                "checks": [asdict(c) for c in self.checks]}


def run_probe(model: Path, images: list[Path], timeout: float = 600, backend: str | None = None) -> dict[str, Any]:
    """Run contract_probe in a clean interpreter (no PYTHONPATH, a neutral working directory)."""
    src = (Path(__file__).parent / "contract_probe.py").read_text()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if backend:
        env["KERAS_BACKEND"] = backend
    try:
        proc = subprocess.run(
            [sys.executable, "-c", src, str(model.resolve()), *[str(p.resolve()) for p in images]],
            capture_output=True, text=True, timeout=timeout, env=env, cwd=Path(model).resolve().parent,
        )
    except subprocess.TimeoutExpired:
        return {"loaded": False, "load_error": f"loading and predicting took over {timeout:.0f} s"}
    marker = proc.stdout.rfind("@@PROBE@@")
    if marker < 0:
        return {"loaded": False, "load_error": f"probe process failed (exit {proc.returncode}): "
                                               f"{proc.stderr.strip()[-2000:]}"}
    return json.loads(proc.stdout[marker + len("@@PROBE@@"):])


def infer_kind(path: Path) -> str | None:
    stem = path.name.lower()
    if stem.endswith("_a.keras"):
        return "A"
    if stem.endswith("_b.keras"):
        return "B"
    return None


def _is_sigmoid_unit(layer: dict[str, Any]) -> bool:
    return layer.get("activation") == "sigmoid" and layer.get("units") in (1, None)


def output_roles(outputs: list[dict[str, Any]]) -> tuple[list[str] | None, str]:
    """Which output is age and which is gender: by name, else by activation (gender is the sigmoid)."""
    names = [o["name"].lower() for o in outputs]
    if len(outputs) != 2:
        return None, f"{len(outputs)} outputs"
    if sorted(names) == ["age", "gender"]:
        return names, "by output names"
    sig = [_is_sigmoid_unit(o["layer"]) for o in outputs]
    if sig.count(True) == 1:
        return (["gender", "age"] if sig[0] else ["age", "gender"]), "by activation (names do not say)"
    return None, "cannot tell which output is age (names and activations do not say)"


def evaluate_probe(probe: dict[str, Any], path: str, kind: str | None, labels: list[Label | None]) -> CheckReport:
    rep = CheckReport(path=path, kind=kind)
    add = rep.checks.append
    if not probe.get("loaded"):
        add(Check("loads without facekit", False, f"plain keras.models.load_model failed: {probe.get('load_error')}"))
        return rep
    add(Check("loads without facekit", not probe.get("facekit_imported"),
              f"loaded with plain keras {probe.get('keras')} ({probe.get('backend')} backend), no custom objects"
              + ("; but facekit was imported" if probe.get("facekit_imported") else "")))
    odd = [f"{layer['name']} ({layer['class']})" for layer in probe["layers"]
           if layer["class"] == "Lambda" or not layer["module"].startswith("keras.")]
    add(Check("built-in layers only", not odd, "all layers are Keras built-ins" if not odd
              else "not built-in or Lambda: " + ", ".join(odd)))
    ins = probe["inputs"]
    shape_ok = len(ins) == 1 and ins[0]["shape"] == EXPECTED_INPUT and ins[0]["dtype"] == "float32"
    add(Check("input 128 x 128 x 3 float32", shape_ok, f"inputs: {ins}"))
    outs = probe["outputs"]
    roles, how = output_roles(outs)
    shapes_ok = len(outs) == 2 and all(o["shape"] == [None, 1] for o in outs)
    add(Check("two outputs of shape (None, 1)", shapes_ok,
              ", ".join(f"{o['name']} {o['shape']}" for o in outs) or "no outputs"))
    rep.output_order = roles
    add(Check("age and gender outputs identified", roles is not None,
              f"order {roles} ({how})" if roles else how))
    if roles:
        gender = outs[roles.index("gender")]["layer"]
        add(Check("gender is one sigmoid unit", _is_sigmoid_unit(gender) and shapes_ok,
                  f"gender output layer: {gender['class']}, activation {gender['activation']}, "
                  f"units {gender['units']}"))
    if kind == "A":
        fmap = probe.get("first_dense_map")
        ok = fmap is not None and max(fmap) < MAX_FIRST_FC_MAP
        add(Check("feature map before first Dense < 10 x 10", ok,
                  f"first Dense {probe.get('first_dense')!r} is fed a {fmap} map" if fmap
                  else f"could not trace the map before first Dense {probe.get('first_dense')!r}"))
    preds = probe.get("predictions")
    if preds is not None and roles and shapes_ok:
        age = [row[0] for row in preds[roles.index("age")]]
        gender = [row[0] for row in preds[roles.index("gender")]]
        finite = all(math.isfinite(v) for v in age + gender)
        sane = finite and all(-1 <= a <= 120 for a in age) and all(0 <= g <= 1 for g in gender)
        add(Check("sane outputs on real images", sane,
                  f"{len(age)} images read as cv2.imread / 255: age {min(age):.1f}..{max(age):.1f} years, "
                  f"gender {min(gender):.2f}..{max(gender):.2f}"))
        known = [(lab, a, g) for lab, a, g in zip(labels, age, gender) if lab is not None]
        if known:
            mae = sum(abs(lab.age - a) for lab, a, _ in known) / len(known)
            acc = sum((g >= 0.5) == bool(lab.gender) for lab, _, g in known) / len(known)
            add(Check("score on these images", None,
                      f"MAE {mae:.2f} years, gender accuracy {acc:.1%} on {len(known)} labelled images "
                      "(a quick look, not a benchmark)"))
    elif probe.get("predict_error"):
        add(Check("sane outputs on real images", False, f"predict() on images read as cv2.imread / 255 failed: "
                                                        f"{probe['predict_error']}"))
    elif probe.get("unread_images"):
        add(Check("sane outputs on real images", False, f"cv2.imread could not read {len(probe['unread_images'])} "
                                                        "images"))
    return rep


def check_model(path: str | Path, kind: str | None = None, images: list[Path] | None = None,
                backend: str | None = None) -> CheckReport:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    kind = kind or infer_kind(path)
    images = images or []
    labels = [lab if isinstance(lab := parse_name(p.name), Label) else None for p in images]
    probe = run_probe(path, images, backend=backend)
    return evaluate_probe(probe, str(path), kind, labels)


def sample_images(folder: Path, n: int = 32) -> list[Path]:
    """An even spread of up to n images of a folder, for check's sanity test."""
    from facekit.imageio import list_files

    files = list_files(folder)
    step = max(1, len(files) // n)
    return files[::step][:n]
