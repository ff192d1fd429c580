import json
from pathlib import Path

from typer.testing import CliRunner

from facekit_cli.main import app

runner = CliRunner()


def test_prep_cli_json(chip_folder: Path, tmp_path: Path):
    out = tmp_path / "c.h5"
    res = runner.invoke(app, ["prep", str(chip_folder), "--out", str(out), "--workers", "1", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["cache"] == str(out) and data["report"]["counts"]["cached"] == 12


def test_prep_cli_text_and_reuse(chip_folder: Path, tmp_path: Path):
    out = tmp_path / "c.h5"
    first = runner.invoke(app, ["prep", str(chip_folder), "-o", str(out), "-w", "1"])
    assert first.exit_code == 0 and "wrote" in first.stdout and "cached 12" in first.stdout
    second = runner.invoke(app, ["prep", str(chip_folder), "-o", str(out), "-w", "1"])
    assert second.exit_code == 0 and "up to date" in second.stdout


def test_prep_cli_bad_folder(tmp_path: Path):
    res = runner.invoke(app, ["prep", str(tmp_path / "missing")])
    assert res.exit_code == 1
    assert "missing" in res.stderr and "not a directory" in res.stderr
