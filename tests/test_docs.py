"""README is for the first hour, its links lead somewhere, its figures come from results files, and its
smoke run names real files (it runs on each tested stack: test_install_matrix)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks import results_page
from benchmarks.common import all_results
from facekit_cli.main import COMMANDS, app
from tests.conftest import ROOT

README = ROOT / "README.md"
MAX_README_LINES = 250


def test_readme_is_for_the_first_hour():
    assert len(README.read_text().splitlines()) <= MAX_README_LINES


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_every_local_link_leads_somewhere(page: Path):
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path = target.split("#", 1)[0]
        if path and not (page.parent / path).exists():
            missing.append(target)
    assert not missing, f"{page.name} links to missing files: {missing}"


def test_results_page_and_readme_table_are_generated_from_the_results_files():
    assert results_page.main(["--check"]) == 0, "run `python -m benchmarks.results_page`"


def test_a_stale_results_page_is_caught(tmp_path: Path, monkeypatch):
    page = tmp_path / "results.md"
    page.write_text(results_page.page(all_results()).replace("| 5.", "| 4.", 1))  # one figure typed by hand
    readme = tmp_path / "README.md"
    shutil.copy(README, readme)
    monkeypatch.setattr(results_page, "PAGE", page)
    monkeypatch.setattr(results_page, "README", readme)
    assert results_page.main(["--check"]) == 1
    assert results_page.main([]) == 0 and results_page.main(["--check"]) == 0


def test_readme_figures_are_the_generated_ones():
    block = README.read_text().split(results_page.BEGIN, 1)[1].split(results_page.END, 1)[0]
    results = all_results()
    assert block.strip() == "\n".join(results_page.glance_block(results)).strip()
    for row in results_page.glance_rows(results):  # each figure is a results file's, formatted
        assert f"| {row[2]} | {row[3]} |" in block


def test_glance_table_says_by_how_much_each_target_is_missed():
    missed_both = "<= 4.8 / >= 93.5 % (missed: MAE by 0.53, gender by 0.2 points)"
    assert results_page.target_cell("finetune", 5.33, 0.933) == missed_both
    assert results_page.target_cell("finetune", 4.8049, 0.93496) == "<= 4.8 / >= 93.5 % (met)"  # as printed
    assert results_page.target_cell("scratch", 4.9, 0.921) == "<= 5.0 / >= 92.5 % (missed: gender by 0.4 points)"
    assert results_page.target_cell("scratch", 4.9, 0.93) == "<= 5.0 / >= 92.5 % (met)"


def test_a_merges_training_counts_every_member_and_a_refits_split_run():
    results = {
        "accuracy-x": {"rows": [{"run_dir": "runs/accuracy/scratch/s1", "train_seconds": 100.0}]},
        "refit-x": {"rows": [{"split": {"run_dir": "runs/refit/scratch/s0", "train_seconds": 30.0},
                              "refit": {"run_dir": "runs/refit/scratch/s0-full", "train_seconds": 40.0}}]},
        "train_speed": {"rows": {"not": "a list"}},
    }
    merge = {"files": ["runs/accuracy/scratch/s1/age_gender_A.keras", "runs/refit/scratch/s0-full/age_gender_A.keras",
                       "runs/elsewhere/age_gender_A.keras"]}
    assert results_page.merge_training(merge, 2, results) == 170.0
    assert results_page.merge_training(merge, 3, results) is None  # a member no results file recorded
    assert results_page.hours(None) == "-" and results_page.hours(5400) == "1.5 h"


def test_a_per_output_merge_gets_its_own_row_on_the_results_page():
    row = {"members": 2, "mae": 5.3, "gender_accuracy": 0.93, "megabytes": 16.5, "ms_per_image": 14.0}
    split = {**row, "mae": 5.2, "gender_accuracy": 0.947, "age_from": [1], "gender_from": [2]}
    data = {"task": "finetune", "commit": "abc1234", "files": ["a.keras", "b.keras"], "rows": [row], "split": split}
    lines = results_page.merges({"ensemble-x": data})
    assert any(line.startswith("| B | 2: age from 1, gender from 2 | 5.20 | 94.7 % |") for line in lines), lines
    assert any(line.startswith("| B | 2 | 5.30 | 93.0 % |") for line in lines)


@pytest.mark.parametrize("command,page", [(c.__name__, p) for c, p in COMMANDS])
def test_every_help_ends_with_its_docs_page(command: str, page: str):
    res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "240"})
    assert res.exit_code == 0, res.output
    assert f"docs/{page}" in res.output.strip().splitlines()[-1] or f"docs/{page}" in res.output[-300:]
    assert (ROOT / "docs" / page).is_file()


def smoke_commands() -> list[list[str]]:
    """The `facekit ...` lines of README's smoke-run block."""
    text = README.read_text()
    block = text.split("## A smoke run first", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.splitlines() if line.startswith("facekit ")]


def test_readme_smoke_run_names_real_files():
    for cmd in smoke_commands():
        for arg in cmd:
            if arg.startswith("../shared/"):
                assert (ROOT / arg).exists(), f"README's smoke run names {arg}, which is not there"


def test_ci_runs_readmes_test_command():
    """CI (.ci/run) must run what README tells a new user to run: the same install steps and test command."""
    readme = README.read_text().split("# 2. install, then run the tests", 1)[1].splitlines()[1]
    steps = [s.strip() for s in readme.split("&&")]
    lines = (ROOT / ".ci" / "run").read_text().rstrip().splitlines()
    ci = [" ".join(w for w in line.split() if w != "-q") for line in lines if line and not line.startswith("#")]
    for step in steps[2:]:  # after creating and activating the environment, which CI does in its own folder
        assert " ".join(w for w in step.split() if w != "-q") in ci, f".ci/run lacks README's `{step}`"
    assert lines[-1] == steps[-1], "the tests are CI's last step"
