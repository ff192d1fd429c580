"""Model files facekit did not write, or a folder where a file belongs: every command that opens models says
what the file is and what is wrong, through the one loader (facekit.model.files), never a traceback."""

import pytest
from typer.testing import CliRunner

from facekit_cli.main import app

runner = CliRunner()

CASES = [
    (["predict", "{chip}", "-m", "{single}"], "not an age and gender model"),
    (["predict", "{chip}", "-m", "{run}"], "a folder, not a model file"),
    (["predict", "{chip}", "-m", "{lambda}"], "could not load it"),
    (["evaluate", "{single}", "--data", "{data}"], "not an age and gender model"),
    (["evaluate", "{run}", "--data", "{data}"], "a folder, not a model file"),
    (["evaluate", "{zip}", "--data", "{data}"], "not a Keras 3 .keras file"),
    (["merge", "{plain}", "{run}", "-o", "{out}"], "a folder, not a model file"),
    (["merge", "{single}", "{plain}", "-o", "{out}"], "not an age and gender model"),
    (["merge", "{plain}", "{plain2}", "-o", "{out}"], "not a facekit export"),
    (["check", "{run}"], "a folder, not a model file"),
]


@pytest.mark.parametrize(("args", "says"), CASES, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(CASES)])
def test_foreign_files_get_a_message_naming_them(args, says, foreign, chip_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plain2 = tmp_path / "plain2_B.keras"
    plain2.write_bytes(foreign["plain"].read_bytes())
    names = {**{k: str(v) for k, v in foreign.items()}, "plain2": str(plain2), "data": str(chip_folder),
             "chip": str(next(chip_folder.iterdir())), "out": str(tmp_path / "merged_B.keras")}
    argv = [a.format(**names) for a in args]
    res = runner.invoke(app, argv)
    assert res.exit_code == 1, (argv, res.output)
    assert res.exception is None or isinstance(res.exception, SystemExit), (argv, repr(res.exception))
    said = " ".join(res.output.split())
    assert says in said, (argv, res.output)
    assert not (tmp_path / "merged_B.keras").exists()
