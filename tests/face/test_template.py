"""Alignment templates: never written into the package; a run keeps the one its crops used; predict uses it."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facekit.contract import INPUT_SIZE
from facekit.engine.train import train
from facekit.face.template import DEFAULT_TEMPLATE, Template, framing_for, load_template, save_template
from facekit.prep.pipeline import prep
from facekit_cli.main import app
from tests.conftest import quick_config

runner = CliRunner()


def test_template_command_never_writes_into_the_package(chip_folder: Path, tmp_path: Path, monkeypatch):
    shipped = DEFAULT_TEMPLATE.read_bytes()
    refused = runner.invoke(app, ["template", str(chip_folder), "--out", str(DEFAULT_TEMPLATE), "--workers", "1"])
    assert refused.exit_code == 1 and "template facekit ships" in refused.output
    monkeypatch.chdir(tmp_path)
    made = runner.invoke(app, ["template", str(chip_folder), "--limit", "6", "--workers", "1"])
    assert made.exit_code == 0, made.output
    assert "facekit prep DIR --template template.json" in " ".join(made.output.split())
    assert json.loads((tmp_path / "template.json").read_text())["meta"]["faces"] >= 5
    assert DEFAULT_TEMPLATE.read_bytes() == shipped


@pytest.mark.slow
def test_prep_template_reaches_the_run_and_predict(chip_folder: Path, tiny_cache: Path, tmp_path: Path):
    base = load_template().at_size(INPUT_SIZE)
    custom = Template(INPUT_SIZE, base.points + np.float32(4.0), {"note": "shifted 4 px"})
    save_template(custom, tmp_path / "shifted.json")
    bad = runner.invoke(app, ["prep", str(chip_folder), "--template", str(tmp_path / "missing.json")])
    assert bad.exit_code == 1 and "missing.json: template file not found" in bad.output
    out = runner.invoke(app, ["prep", str(chip_folder), "-o", str(tmp_path / "c.h5"), "--workers", "1",
                              "--template", str(tmp_path / "shifted.json")])
    assert out.exit_code == 0, out.output
    shifted = train(quick_config("scratch", tmp_path / "c.h5", tmp_path, epochs=1, name="shifted"))
    plain = train(quick_config("scratch", tiny_cache, tmp_path, epochs=1, name="plain"))
    args = json.loads((shifted.run_dir / "args.json").read_text())
    assert args["template_digest"] == custom.digest() != json.loads((plain.run_dir / "args.json").read_text())[
        "template_digest"]
    tpl, warnings = framing_for([shifted.model_path], INPUT_SIZE)
    assert tpl.digest() == custom.digest() and warnings == []  # predict frames faces as this model was trained
    tpl, warnings = framing_for([shifted.model_path, plain.model_path], INPUT_SIZE)
    assert tpl.digest() == custom.digest() and "different templates" in warnings[0]
    assert framing_for([tmp_path / "elsewhere.keras"], INPUT_SIZE)[0].digest() == base.digest()
    # The cache's fingerprint includes the template: the same folder with another template is rebuilt.
    assert not prep(chip_folder, tmp_path / "c.h5", workers=1).reused
