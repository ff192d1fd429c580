"""Every command, fed bad input, answers with a message and a non-zero exit, never a Python traceback."""

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facekit_cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory, chip_sample: list[Path]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    (root / "empty").mkdir()
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("no images here")
    (root / "text.h5").write_text("not HDF5")
    (root / "text.keras").write_text("not a model")
    (root / "text2.keras").write_text("not a model either")
    (root / "text.jpg").write_text("not an image")
    (root / "age_gender_A.keras").write_bytes(b"PK\x03\x04 truncated zip")
    (root / "run_without_args").mkdir()
    (root / "blocker").write_text("a file where a folder should be")
    (root / "one").mkdir()
    shutil.copy(chip_sample[0], root / "one" / chip_sample[0].name)
    return {"root": root, "chip": chip_sample[0], "empty": root / "empty", "notes": root / "notes",
            "text_h5": root / "text.h5", "text_keras": root / "text.keras",
            "text2_keras": root / "text2.keras", "text_jpg": root / "text.jpg",
            "broken_zip": root / "age_gender_A.keras", "no_args": root / "run_without_args",
            "blocker": root / "blocker", "missing": root / "missing", "one": root / "one"}


CASES = [
    # prep
    ("prep", ["prep", "{missing}"], "missing: not a directory"),
    ("prep", ["prep", "{chip}"], ""),
    ("prep", ["prep", "{empty}", "-o", "{root}/e.h5"], ""),
    ("prep", ["prep", "{notes}", "-o", "{root}/n.h5"], ""),
    ("prep", ["prep", "{one}", "-o", "{root}/o.h5", "--model-dir", "{missing}"], "missing"),
    ("prep", ["prep", "{empty}", "--template", "{text_jpg}"], ""),
    ("prep", ["prep", "{one}", "-o", "{root}/d.h5", "-w", "1", "--detections", "{text_jpg}"],
     "text.jpg: not a readable detections file"),
    ("prep", ["prep", "{one}", "-o", "{root}/d.h5", "-w", "1", "--detections", "{missing}"], "no such detections file"),
    ("prep", ["prep", "{one}", "-o", "{root}/s.h5", "-w", "1", "--save-detections", "{blocker}/d.json"], "blocker"),
    # template
    ("template", ["template", "{missing}"], ""),
    ("template", ["template", "{empty}", "-o", "{root}/t.json"], "no file with a UTKFace label"),
    ("template", ["template", "{one}", "-o", "{blocker}/t.json", "-w", "1"], "blocker: is a file, where a folder"),
    # train
    ("train", ["train", "scratch", "--cache", "{missing}"], ""),
    ("train", ["train", "scratch", "--cache", "{text_h5}"], "not a readable HDF5 cache"),
    ("train", ["train", "scratch", "--resume", "{missing}"], "not a run folder"),
    ("train", ["train", "scratch", "--resume", "{no_args}"], ""),
    ("train", ["train", "scratch", "--teacher", "{missing}"], ""),
    ("train", ["train", "finetune", "--backbone", "nosuchnet"], ""),
    ("train", ["train", "finetune", "--weights", "{missing}"], ""),
    ("train", ["train", "scratch", "--mix", "shuffle"], ""),
    ("train", ["train", "scratch", "--output-order", "age"], ""),
    ("train", ["train", "scratch", "--augment", "extreme"], ""),
    ("train", ["train", "finetune", "--freeze-epochs", "50", "--epochs", "5"], ""),
    ("train", ["train", "nosuchtask"], ""),
    # check
    ("check", ["check", "{missing}"], ""),
    ("check", ["check", "{text_keras}"], "not a Keras 3 .keras file"),
    ("check", ["check", "{broken_zip}"], ""),
    ("check", ["check", "{text_keras}", "--keras", "2.15"], ""),
    # merge
    ("merge", ["merge", "{missing}", "{missing}", "-o", "{root}/m.keras"], ""),
    ("merge", ["merge", "{text_keras}", "{text2_keras}", "-o", "{root}/m.keras"], "not a Keras 3 .keras file"),
    ("merge", ["merge", "{text_keras}", "{text_keras}", "-o", "{root}/m.keras"], "named more than once"),
    ("merge", ["merge", "{broken_zip}", "{text_keras}", "-o", "{root}/m.txt"], ""),
    # predict
    ("predict", ["predict", "{missing}", "-m", "{broken_zip}"], ""),
    ("predict", ["predict", "{chip}", "-m", "{missing}"], ""),
    ("predict", ["predict", "{chip}", "--project", "{empty}"], ""),
    # evaluate
    ("evaluate", ["evaluate", "{broken_zip}", "--data", "{missing}"], ""),
    ("evaluate", ["evaluate", "{missing}", "--data", "{empty}"], ""),
    ("evaluate", ["evaluate", "A", "--data", "{empty}", "--project", "{empty}"], ""),
    ("evaluate", ["evaluate", "{text_keras}", "--data", "{notes}"], ""),
    ("evaluate", ["evaluate", "{text_keras}", "--data", "{notes}", "--split", "test"], ""),
    ("evaluate", ["evaluate", "{text_keras}", "--data", "{notes}", "--run", "{no_args}"], ""),
]


@pytest.mark.parametrize(("command", "args", "says"), CASES, ids=[f"{c}-{i}" for i, (c, *_) in enumerate(CASES)])
def test_bad_input_is_a_message(command, args, says, bad, monkeypatch):
    monkeypatch.chdir(bad["root"])  # nothing a failed command writes lands in the checkout
    argv = [a.format(**bad) for a in args]
    res = runner.invoke(app, argv)
    assert res.exit_code != 0, (argv, res.output)
    # CliRunner keeps an unexpected exception in res.exception; an expected failure is a SystemExit.
    assert res.exception is None or isinstance(res.exception, SystemExit), (argv, repr(res.exception))
    assert "Traceback" not in res.output, (argv, res.output)
    assert res.output.strip(), argv  # says something
    assert says in " ".join(res.output.split()), (argv, res.output)
