"""Every command that writes a file with -o treats the target the way facekit.utils.atomic documents it:
a link is written through, a directory and (for file formats) a device or FIFO are refused with a message
and left as they were, and a stream (predict's records) is written into a device or FIFO directly."""

from __future__ import annotations

import os
import shutil
import stat
import threading
from pathlib import Path

import pytest

from facekit.utils.atomic import OutputTargetError, atomic_path, open_output, output_path
from tests.conftest import run_cli

# ---------------------------------------------------------------- the home itself (fast)


def test_a_regular_file_is_replaced_whole(tmp_path: Path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert dest.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with atomic_path(dest) as tmp:
        tmp.write_text("new")
    assert dest.read_text() == "new"


def test_a_link_is_written_through_and_stays_a_link(tmp_path: Path):
    target = tmp_path / "real" / "out.txt"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    with atomic_path(link) as tmp:
        tmp.write_text("new")
    assert link.is_symlink() and target.read_text() == "new"
    assert output_path(link) == target.resolve()
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "real" / "later.txt")
    with atomic_path(dangling) as tmp:
        tmp.write_text("made")
    assert dangling.is_symlink() and (tmp_path / "real" / "later.txt").read_text() == "made"


def test_a_directory_is_refused_by_name(tmp_path: Path):
    with pytest.raises(OutputTargetError, match=f"{tmp_path}: is a directory"):
        output_path(tmp_path)
    with pytest.raises(OutputTargetError, match="is a directory"), atomic_path(tmp_path):
        pass
    assert tmp_path.is_dir()


def test_a_fifo_is_refused_for_files_and_written_for_streams(tmp_path: Path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputTargetError, match="FIFO"):
        output_path(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    with open_output(fifo) as f:
        f.write("records\n")
    reader.join(10)
    assert got == ["records\n"] and stat.S_ISFIFO(fifo.stat().st_mode)


def _null_device(tmp_path: Path) -> Path:
    dev = tmp_path / "null"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the same device as /dev/null
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a character device here ({exc}); needs root or CAP_MKNOD")
    return dev


def test_a_character_device_is_written_into_never_replaced(tmp_path: Path):
    dev = _null_device(tmp_path)
    with open_output(dev) as f:
        f.write("discarded\n")
    assert stat.S_ISCHR(dev.stat().st_mode)
    with pytest.raises(OutputTargetError, match="character device"), atomic_path(dev):
        pass
    assert stat.S_ISCHR(dev.stat().st_mode)


# ------------------------------------- every command with -o (in-process: facekit.utils.atomic decides)


SUFFIX = {"prep": ".h5", "template": ".json", "merge": ".keras", "predict": ".jsonl"}


def make_targets(folder: Path, suffix: str) -> dict[str, Path]:
    """A FIFO, a character device (where one can be made) and a directory, each named with ``suffix``."""
    made = {"fifo": folder / f"fifo{suffix}", "directory": folder / f"adir{suffix}"}
    os.mkfifo(made["fifo"])
    made["directory"].mkdir()
    try:
        os.mknod(folder / f"null{suffix}", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        made["device"] = folder / f"null{suffix}"
    except OSError as exc:
        print(f"no character device case: {exc}")
    return made


def _snapshot(path: Path) -> tuple[int, bool]:
    st = path.lstat()
    return stat.S_IFMT(st.st_mode), path.is_symlink()


COMMANDS = ["prep", "template", "merge", "predict"]


def _args(command: str, out: Path, chip_folder: Path, tiny_models: dict) -> list[str]:
    if command == "prep":
        return ["prep", str(chip_folder), "-o", str(out), "-w", "1"]
    if command == "template":
        return ["template", str(chip_folder), "-o", str(out), "-w", "1"]
    if command == "merge":
        return ["merge", str(tiny_models["A"]), str(tiny_models["A2"]), "-o", str(out)]
    return ["predict", str(chip_folder), "-m", str(tiny_models["B"]), "--jsonl", "-o", str(out)]


@pytest.fixture(scope="module")
def two_a(tiny_models, tmp_path_factory) -> dict:
    other = tmp_path_factory.mktemp("a2") / "age_gender_A.keras"
    shutil.copy(tiny_models["A"], other)
    return {**tiny_models, "A2": other}


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_special_targets_are_left_as_they_were(command: str, chip_folder: Path, two_a: dict, tmp_path: Path):
    for kind, target in make_targets(tmp_path, SUFFIX[command]).items():
        before = _snapshot(target)
        if command == "predict" and kind == "fifo":
            got: list[str] = []
            reader = threading.Thread(target=lambda t=target, g=got: g.append(t.read_text()), daemon=True)
            reader.start()
            res = run_cli(_args(command, target, chip_folder, two_a), tmp_path)
            reader.join(30)
            assert res.returncode == 0, res.stderr
            assert got and got[0].count("\n") >= 1, "the records went into the FIFO"
        else:
            res = run_cli(_args(command, target, chip_folder, two_a), tmp_path)
            if command == "predict" and kind == "device":
                assert res.returncode == 0, res.stderr
            else:
                assert res.returncode == 1, (kind, res.stdout, res.stderr)
                said = "is a directory" if kind == "directory" else "needs a regular file"
                assert said in res.stderr and str(target) in res.stderr.replace("\n", ""), res.stderr
        assert "Traceback" not in res.stderr, res.stderr
        assert _snapshot(target) == before, f"{command} changed the {kind}"


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_a_link_is_written_through(command: str, chip_folder: Path, two_a: dict, tmp_path: Path):
    suffix = SUFFIX[command]
    real = tmp_path / "real" / f"out{suffix}"
    real.parent.mkdir()
    link = tmp_path / f"link{suffix}"
    link.symlink_to(real)
    res = run_cli(_args(command, link, chip_folder, two_a), tmp_path)
    assert res.returncode == 0, res.stderr
    assert link.is_symlink() and real.is_file() and real.stat().st_size > 0


def test_a_format_flag_that_contradicts_the_suffix_is_refused(tmp_path: Path):
    res = run_cli(["predict", "x.jpg", "-o", str(tmp_path / "out.json"), "--csv"], tmp_path)
    assert res.returncode == 2 and "its name says json, but --csv was asked" in res.stderr
    assert not (tmp_path / "out.json").exists()


def test_merge_refuses_a_member_named_twice(tmp_path: Path):
    member = tmp_path / "age_gender_B.keras"
    member.write_bytes(b"")
    res = run_cli(["merge", str(member), str(tmp_path / "." / member.name), "-o",
                   str(tmp_path / "m" / "age_gender_B.keras")], tmp_path)
    assert res.returncode == 1 and "named more than once" in res.stderr
