"""Benchmarks' bookkeeping: the ablation table's arithmetic, rows merged over sessions, commit stamps, holdouts."""

from pathlib import Path

import pytest

from benchmarks.ablation import variant_tables


def _row(variant, seed, mae, acc, **extra):
    return {"task": "finetune", "variant": variant, "seed": seed, "raw_mae": mae, "raw_acc": acc,
            "raw_tta_mae": mae - 0.1, "raw_tta_acc": acc, "train_seconds": 100.0, "best_epoch": 10, **extra}


def test_ablation_table_means_and_deltas():
    graph = {"raw_graph_tta_mae": 5.5, "raw_graph_tta_acc": 0.92}
    rows = [_row("baseline", 0, 6.0, 0.90), _row("baseline", 1, 5.8, 0.92),
            _row("mixup", 0, 5.5, 0.93, **graph), _row("mixup", 1, 5.7, 0.93, **graph)]
    lines = [line for block in variant_tables({"rows": rows}) for line in block]
    base = next(line for line in lines if line.startswith("| baseline"))
    mix = next(line for line in lines if line.startswith("| mixup"))
    cells = [c.strip() for c in mix.split("|")[1:-1]]
    assert cells[2] == "0,1" and cells[3] == "5.60 ± 0.14" and cells[4] == "-0.30"  # 5.6 against 5.9
    assert cells[5] == "93.00 ± 0.00" and cells[6] == "+2.00"
    assert cells[9] == "5.50 ± 0.00"
    assert [c.strip() for c in base.split("|")[1:-1]][9] == "-"  # scored before the column existed


@pytest.mark.slow
def test_ensemble_benchmark_runs_on_two_quick_runs(tiny_cache, trained_runs, tmp_path, monkeypatch):
    import json
    import sys

    import benchmarks.common
    import benchmarks.ensemble
    from facekit.data.cache import read_attrs
    from facekit.engine.train import train
    from tests.conftest import quick_config

    # The session's Model A is the first member (only read); the second trains with another seed.
    runs = [trained_runs["A"], train(quick_config("scratch", tiny_cache, tmp_path, init_seed=1, name="s1")).run_dir]
    monkeypatch.setattr(benchmarks.common, "RESULTS", tmp_path)
    data = read_attrs(tiny_cache)["source_dir"]
    # A member is a run folder (its hand-in file) or a .keras file inside one (e.g. its last epoch).
    copied = runs[1] / "other-age_gender_A.keras"
    copied.write_bytes((runs[1] / "age_gender_A.keras").read_bytes())
    monkeypatch.setattr(sys, "argv", ["ensemble", str(runs[0]), str(copied), "--data", data, "--tag", "t",
                                      "--age-from", "1", "--gender-from", "2"])
    benchmarks.ensemble.main()
    result = json.loads((tmp_path / "ensemble-t.json").read_text())
    rows, alone = result["rows"], result["alone"]
    assert [r["members"] for r in rows] == [1, 2] and rows[1]["megabytes"] > rows[0]["megabytes"]
    assert [a["run"] for a in alone] == [str(r) for r in runs]
    assert result["files"] == [str(runs[0] / "age_gender_A.keras"), str(copied)]
    assert rows[0]["gain_mae"] == 0 and rows[0]["mae"] == alone[0]["mae"]
    assert abs(rows[1]["alone_mae"]["mean"] - (alone[0]["mae"] + alone[1]["mae"]) / 2) < 1e-12
    assert abs(rows[1]["gain_mae"] - (rows[1]["alone_mae"]["mean"] - rows[1]["mae"])) < 1e-12
    assert "| 2 |" in (tmp_path / "ensemble-t.md").read_text()
    # Age from member 1 alone and gender from member 2 alone: each output scores as that member does.
    split = result["split"]
    assert split["age_from"] == [1] and split["gender_from"] == [2]
    assert abs(split["mae"] - alone[0]["mae"]) < 1e-4 and split["gender_accuracy"] == alone[1]["gender_accuracy"]
    assert "| 1 | 2 |" in (tmp_path / "ensemble-t.md").read_text()


@pytest.mark.slow
def test_ensemble_holdout_scores_other_splits_only_on_chips_no_member_trained_on(tiny_cache, trained_runs, tmp_path,
                                                                             monkeypatch):
    """A refit-like member (trained on everything but the holdout) joins a split run; a member that
    trained on the holdout is refused by name."""
    import json
    import sys

    import benchmarks.common
    import benchmarks.ensemble
    from benchmarks.refit import pool_cache
    from facekit.data.cache import read_attrs
    from facekit.data.split import read_run_split
    from facekit.engine.train import train
    from tests.conftest import quick_config

    split_run = trained_runs["A"]  # the session's split run of the tiny cache, only read
    holdout = read_run_split(split_run).val
    pool = tmp_path / "pool.h5"
    pool_cache(tiny_cache, pool, set(holdout))
    refit_run = train(quick_config("scratch", pool, tmp_path, full=True, init_seed=1, name="refit")).run_dir
    leaky = train(quick_config("scratch", tiny_cache, tmp_path, full=True, name="leaky")).run_dir
    monkeypatch.setattr(benchmarks.common, "RESULTS", tmp_path)
    data = read_attrs(tiny_cache)["source_dir"]

    def run(*argv):
        monkeypatch.setattr(sys, "argv", ["ensemble", *map(str, argv), "--data", data, "--tag", "h"])
        benchmarks.ensemble.main()

    with pytest.raises(SystemExit, match="--holdout"):  # different splits need the holdout named
        run(split_run, refit_run)
    with pytest.raises(SystemExit, match=f"{leaky}: trained on {len(holdout)} of the {len(holdout)} held-out"):
        run(split_run, refit_run, leaky, "--holdout", split_run)
    run(split_run, refit_run, "--holdout", split_run)
    result = json.loads((tmp_path / "ensemble-h.json").read_text())
    assert result["holdout"] == str(split_run) and result["validation_images"] == len(holdout)
    assert [(a["chose_epoch_on_holdout"], a["init_seed"]) for a in result["alone"]] == [(True, 0), (False, 1)]
    assert [r["members"] for r in result["rows"]] == [1, 2]
    md = (tmp_path / "ensemble-h.md").read_text()
    assert "no member trained on them" in md and f"| 2 | {refit_run / 'age_gender_A.keras'} | 1 | no |" in md


def test_accuracy_levers_are_training_options_read_as_json():
    import pytest

    from benchmarks.accuracy import parse_overrides

    assert parse_overrides(["val_images=raw", "ema=true", "patience=20"]) == {
        "val_images": "raw", "ema": True, "patience": 20}
    for bad in ("nonsense=1", "ema"):
        with pytest.raises(SystemExit, match="KEY=VALUE"):
            parse_overrides([bad])


def test_accuracy_lever_survives_the_series_unset_options(tmp_path):
    import argparse

    import pytest

    from benchmarks.accuracy import run_config

    args = argparse.Namespace(epochs=None, limit=None, cache="c.h5", project=str(tmp_path), tag="long")
    cfg = run_config("scratch", 1, args, {"epochs": 80})
    assert (cfg.epochs, cfg.init_seed, cfg.name) == (80, 1, "scratch-seed1-long")
    assert run_config("scratch", 1, args, {}).epochs == 60
    assert run_config("finetune", 1, args, {}).epochs == 40
    assert run_config("scratch", 1, args, {}).name == "scratch-seed1"
    with pytest.raises(SystemExit, match="both given"):
        run_config("scratch", 1, argparse.Namespace(**{**vars(args), "epochs": 3}), {"epochs": 60})


@pytest.mark.slow
def test_refit_benchmark_scores_both_files_on_a_holdout_neither_run_saw(tiny_cache, tmp_path, monkeypatch):
    import json
    import sys

    import h5py

    import benchmarks.common
    import benchmarks.refit
    from facekit.data.cache import read_attrs

    monkeypatch.setattr(benchmarks.common, "RESULTS", tmp_path)
    monkeypatch.setattr(benchmarks.refit, "RESULTS", tmp_path)
    data = read_attrs(tiny_cache)["source_dir"]
    argv = ["refit", "--tasks", "scratch", "--seeds", "0", "--cache", str(tiny_cache), "--data", data, "--epochs", "2",
            "--project", str(tmp_path / "runs"), "--tag", "t", "--set", "batch_size=8", "steps_per_epoch=1",
            "workers=1", "widths=[16,16,16,16,16]", "hidden=16", "eager=true"]
    monkeypatch.setattr(sys, "argv", argv)
    benchmarks.refit.main()
    result = json.loads((tmp_path / "refit-t.json").read_text())
    (row,) = result["rows"]
    with h5py.File(tiny_cache) as f:
        assert result["holdout_images"] + result["pool_images"] == len(f["filename"])
    # The refit trained on the whole pool, the split run on its train part; the holdout is neither's (the
    # benchmark asserts that against both split.json files).
    assert row["refit"]["train_images"] == result["pool_images"] > row["split"]["train_images"]
    for part in ("split", "refit"):
        assert 0 <= row[part]["raw_acc"] <= 1 and row[part]["raw_mae"] > 0
    assert result["summary"]["scratch"]["mae_change"]["mean"] == row["refit"]["raw_mae"] - row["split"]["raw_mae"]
    assert "| A | 0 |" in (tmp_path / "refit-t.md").read_text()

    # Seeds run in pieces: a later invocation keeps the other seeds' rows and replaces its own, and
    # --resume scores finished folders without training them again.
    path = tmp_path / "refit-t.json"
    path.write_text(json.dumps({**result, "rows": [row, {**row, "seed": 7}]}))
    model = Path(row["refit"]["run_dir"]) / "age_gender_A.keras"
    trained_at = model.stat().st_mtime_ns
    monkeypatch.setattr(sys, "argv", [*argv, "--resume"])
    benchmarks.refit.main()
    again = json.loads(path.read_text())
    assert [r["seed"] for r in again["rows"]] == [0, 7] and model.stat().st_mtime_ns == trained_at
    assert again["rows"][0]["refit"]["raw_mae"] == row["refit"]["raw_mae"]
    assert "| A | 0,7 |" in (tmp_path / "refit-t.md").read_text()
    monkeypatch.setattr(sys, "argv", [*argv[:10], "3", *argv[11:]])
    with pytest.raises(SystemExit, match="other settings"):
        benchmarks.refit.main()


def test_tta_views_move_content_and_average_like_merge():
    import numpy as np

    from benchmarks.tta_views import averaged, shifted, view_sets, views, zoomed

    x = np.arange(2 * 6 * 6 * 3, dtype=np.float32).reshape(2, 6, 6, 3)
    right = shifted(x, 2, 0)
    assert np.array_equal(right[:, :, 2:], x[:, :, :4]) and not right[:, :, :2].any()
    up = shifted(x, 0, -1)
    assert np.array_equal(up[:, :5], x[:, 1:]) and not up[:, 5].any()
    assert zoomed(np.ones((1, 128, 128, 3), np.float32), 1.08).shape == (1, 128, 128, 3)
    assert np.allclose(zoomed(np.full((1, 128, 128, 3), 0.5, np.float32), 0.92), 0.5)  # reflected border: no black
    names = list(views(4))
    assert names[0] == "as is" and view_sets(names)["all 7"] == names
    preds = {"a": (np.array([10.0]), np.array([0.9])), "b": (np.array([20.0]), np.array([0.1]))}
    age, p = averaged(preds, ["a", "b"])
    assert age[0] == 15.0 and abs(p[0] - 0.5) < 1e-9  # logits +2.2 and -2.2 cancel


@pytest.mark.slow
def test_tta_views_benchmark_runs_on_a_quick_run(tiny_cache, trained_copy, tmp_path, monkeypatch):
    import json
    import sys

    import benchmarks.common
    import benchmarks.tta_views
    from facekit.data.cache import read_attrs

    run = trained_copy["A"]
    monkeypatch.setattr(benchmarks.common, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["tta_views", str(run), "--data", read_attrs(tiny_cache)["source_dir"],
                                      "--tag", "t"])
    benchmarks.tta_views.main()
    result = json.loads((tmp_path / "tta-views-t.json").read_text())
    rows = {r["views"]: r for r in result["rows"]}
    assert rows["as is"]["delta_mae"]["mean"] == 0 and rows["all 7"]["passes"] == 7
    assert result["per_run"][0]["scores"]["as is"]["mae"] == rows["as is"]["mae"]["mean"]
    assert "| all 7 | 7 |" in (tmp_path / "tta-views-t.md").read_text()


def test_monitors_benchmark_replays_histories(tmp_path, monkeypatch):
    import json
    import sys

    import benchmarks.common
    import benchmarks.monitors

    for name, rows in {"r0": [(6.0, 0.90), (5.5, 0.80), (5.6, 0.93), (5.8, 0.91)],
                       "r1": [(6.5, 0.85), (5.9, 0.92), (5.7, 0.91), (5.6, 0.90)]}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "history.csv").write_text(
            "epoch,val_age_mae,val_gender_accuracy\n" + "".join(f"{i},{m},{a}\n" for i, (m, a) in enumerate(rows)))
    monkeypatch.setattr(benchmarks.common, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["monitors", str(tmp_path / "r0"), str(tmp_path / "r1"),
                                      "--patience", "0", "1", "--tag", "t"])
    benchmarks.monitors.main()
    result = json.loads((tmp_path / "monitors-t.json").read_text())
    kept = {(x["monitor"], x["patience"]): (x["kept_epoch"], x["epochs_run"]) for x in result["runs"][0]["rows"]}
    assert kept == {("val_age_mae", 0): (2, 4), ("val_age_mae", 1): (2, 3),  # stops one epoch after its best
                    ("val_score", 0): (3, 4),  # 5.6 + 0.7 beats 5.5 + 2.0
                    ("val_score", 1): (1, 2)}  # 5.5 + 2.0 is no better than 6.0 + 1.0: patience 1 stops there
    summary = {(s["monitor"], s["patience"]): s for s in result["summary"]}
    assert summary[("val_age_mae", 0)]["val_age_mae"]["mean"] == pytest.approx((5.5 + 5.6) / 2)
    assert "| r0 | val_score | 0 | 4 | 3 | 5.60 | 93.0 |" in (tmp_path / "monitors-t.md").read_text()


def test_monitors_benchmark_reads_the_histories_accuracy_results_keep(tmp_path):
    import json

    from benchmarks.monitors import histories

    results = {"rows": [{"run_dir": "runs/accuracy/finetune/finetune-seed2",
                         "val_history": {"val_age_mae": [6.0, 5.5], "val_gender_accuracy": [0.9, 0.8]}},
                        {"run_dir": "old", "val_aligned_mae": 5.0}]}  # a row from before val_history: skipped
    (tmp_path / "accuracy-x.json").write_text(json.dumps(results))
    assert histories(tmp_path / "accuracy-x.json") == [
        ("finetune-seed2", [{"val_age_mae": 6.0, "val_gender_accuracy": 0.9},
                            {"val_age_mae": 5.5, "val_gender_accuracy": 0.8}])]
    (tmp_path / "accuracy-old.json").write_text(json.dumps({"rows": results["rows"][1:]}))
    with pytest.raises(SystemExit, match="val_history"):
        histories(tmp_path / "accuracy-old.json")


@pytest.mark.slow
def test_accuracy_rows_keep_every_epochs_validation_figures(tiny_cache, tmp_path):
    from benchmarks.common import held_out, train_and_score
    from benchmarks.monitors import replay
    from facekit.data.cache import read_attrs
    from facekit.engine.train import train
    from tests.conftest import quick_config

    cfg = quick_config("scratch", tiny_cache, tmp_path, epochs=3, name="h")
    run = train(cfg).run_dir
    row = train_and_score(cfg, held_out([run], Path(read_attrs(tiny_cache)["source_dir"])), resume=run)
    history = row["val_history"]
    assert len(history["val_age_mae"]) == len(history["val_gender_accuracy"]) == row["epochs_run"] == 3
    kept = replay([dict(zip(history, e)) for e in zip(*history.values())], [0])[0]  # the age monitor, all epochs
    assert kept["kept_epoch"] == row["best_epoch"] and kept["val_age_mae"] == pytest.approx(row["val_aligned_mae"])
    assert row["last_epoch"] == 3 and 0 <= row["raw_last_acc"] <= 1  # the last epoch scored on raw chips too
    if row["best_epoch"] == 3:
        assert (row["raw_last_mae"], row["raw_last_acc"]) == (row["raw_mae"], row["raw_acc"])
    else:
        assert (run / "last-epoch-age_gender_A.keras").is_file()


@pytest.mark.slow
def test_last_epoch_of_an_ema_run_is_scored_with_its_averaged_weights(tiny_cache, tmp_path):
    import keras
    import numpy as np

    from benchmarks.common import held_out, last_epoch_scores
    from facekit.data.cache import read_attrs
    from facekit.engine.callbacks import averaged_weights
    from facekit.engine.runs import LAST
    from facekit.engine.train import train
    from facekit.model.models import export_from_train
    from tests.conftest import quick_config

    cfg = quick_config("scratch", tiny_cache, tmp_path, ema=True, name="e")
    run = train(cfg).run_dir
    val = held_out([run], Path(read_attrs(tiny_cache)["source_dir"]))
    scores = last_epoch_scores(run, cfg, val, best_epoch=None, best_scores={})  # None: the last is not the kept
    assert scores["last_epoch"] == 2 and 0 <= scores["raw_last_acc"] <= 1 and scores["raw_last_mae"] >= 0
    scored = keras.models.load_model(run / f"last-epoch-{cfg.export_name}")
    x = np.random.default_rng(0).random((4, *scored.input_shape[1:]), dtype=np.float32)
    trained = keras.models.load_model(run / LAST)
    raw = export_from_train(trained, cfg.output_order, cfg.tta).predict(x, verbose=0)
    with averaged_weights(trained, True):
        averaged = export_from_train(trained, cfg.output_order, cfg.tta).predict(x, verbose=0)
    got = scored.predict(x, verbose=0)
    assert np.allclose(got[0], averaged[0], atol=1e-4) and np.allclose(got[1], averaged[1], atol=1e-5)
    assert np.abs(raw[0] - averaged[0]).max() > 1e-3  # the averages are not the raw weights, so this can fail


@pytest.mark.slow
def test_a_snapshot_run_without_built_in_flip_is_scored_as_ablation_scores_it(tiny_cache, tmp_path):
    """The ablation exports without the in-graph flip; a snapshot run's file is then a merge with no single
    trunk to rebuild that graph from (this crashed the round-three plan at its first snapshot row)."""
    from benchmarks.common import held_out, score_model, train_and_score
    from facekit.data.cache import read_attrs
    from facekit.engine.train import train
    from tests.conftest import quick_config

    cfg = quick_config("scratch", tiny_cache, tmp_path, snapshots=2, tta=False, name="snap")
    run = train(cfg).run_dir
    val = held_out([run], Path(read_attrs(tiny_cache)["source_dir"]))
    row = train_and_score(cfg, val, resume=run)  # finished: scored, not trained again
    assert "raw_graph_tta_mae" not in row and {"raw_mae", "raw_tta_mae"} <= set(row)
    # The kept epoch is the last, but the file is the merge: the last epoch is scored alone (its snapshot).
    assert row["raw_last_mae"] == pytest.approx(score_model(run / "snapshot-2.keras", val)["raw_mae"], rel=1e-5)
    assert row["raw_last_mae"] != pytest.approx(row["raw_mae"], rel=1e-6)
    graph = {"raw_graph_tta_mae": 5.5, "raw_graph_tta_acc": 0.92}
    rows = [_row("baseline", 0, 6.0, 0.90, **graph), _row("snapshots-3", 0, 5.8, 0.91)]
    snap = next(line for block in variant_tables({"rows": rows}) for line in block if line.startswith("| snapshots"))
    assert [c.strip() for c in snap.split("|")[1:-1]][9] == "-"


def test_commit_stamp_ignores_results_files(tmp_path):
    import subprocess

    from benchmarks.common import code_commit

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                              capture_output=True, text=True, check=True).stdout.strip()

    assert code_commit(tmp_path) == "unknown"  # not a repository
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "benchmarks" / "results" / "r.json").write_text("{}\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "c")
    head = git("rev-parse", "--short", "HEAD")
    assert code_commit(tmp_path) == head
    (tmp_path / "benchmarks" / "results" / "r.json").write_text('{"rows": []}\n')  # a benchmark's own output
    assert code_commit(tmp_path) == head
    (tmp_path / "code.py").write_text("x = 2\n")
    assert code_commit(tmp_path) == head + "+dirty"


def test_ablation_refuses_rows_of_another_epoch_count_before_training(tiny_cache, tmp_path, monkeypatch):
    import json
    import sys

    import benchmarks.ablation
    import benchmarks.common
    from facekit.data.cache import read_attrs

    monkeypatch.setattr(benchmarks.common, "RESULTS", tmp_path)
    monkeypatch.setattr(benchmarks.ablation, "RESULTS", tmp_path)
    (tmp_path / "ablation-t.json").write_text(json.dumps({"rows": [], "epochs_override": 10}))
    monkeypatch.setattr(sys, "argv", ["ablation", "--task", "scratch", "--variants", "baseline", "--epochs", "2",
                                      "--data", read_attrs(tiny_cache)["source_dir"], "--cache", str(tiny_cache),
                                      "--project", str(tmp_path / "runs"), "--tag", "t"])
    with pytest.raises(SystemExit, match="other settings"):
        benchmarks.ablation.main()
    assert not (tmp_path / "runs").exists()


def test_ablation_resume_skips_measured_rows_and_continues_a_stopped_run(tiny_cache, tmp_path, monkeypatch):
    import json
    import sys

    import benchmarks.ablation
    import benchmarks.common
    from facekit.data.cache import read_attrs

    monkeypatch.setattr(benchmarks.common, "RESULTS", tmp_path)
    monkeypatch.setattr(benchmarks.ablation, "RESULTS", tmp_path)
    # An earlier call measured the baseline and was cut short inside race-0.2 (its run folder has args.json).
    measured = {**_row("baseline", 0, 5.3, 0.93), "backend": "jax", "gpu": "H100"}
    (tmp_path / "ablation-t.json").write_text(json.dumps({"rows": [measured], "epochs_override": None}))
    stopped = tmp_path / "runs" / "finetune" / "ablation-t-finetune-race-0.2-seed0"
    stopped.mkdir(parents=True)
    (stopped / "args.json").write_text("{}")
    calls = []

    def fake_train_and_score(cfg, val, resume=None):
        calls.append((cfg.name, resume))
        scores = {k: v for k, v in _row("-", 0, 5.1, 0.94).items() if k not in ("task", "variant", "seed")}
        return {**scores, "backend": "jax", "gpu": "H100", "run_dir": str(stopped)}

    monkeypatch.setattr(benchmarks.ablation, "train_and_score", fake_train_and_score)
    argv = ["ablation", "--task", "finetune", "--variants", "baseline", "race-0.2", "snapshots-3",
            "--data", read_attrs(tiny_cache)["source_dir"], "--project", str(tmp_path / "runs"), "--tag", "t"]
    monkeypatch.setattr(sys, "argv", [*argv, "--resume"])
    benchmarks.ablation.main()
    assert calls == [("ablation-t-finetune-race-0.2-seed0", stopped), ("ablation-t-finetune-snapshots-3-seed0", None)]
    rows = json.loads((tmp_path / "ablation-t.json").read_text())["rows"]
    assert [(r["variant"], r["raw_mae"]) for r in rows] == [("baseline", 5.3), ("race-0.2", 5.1), ("snapshots-3", 5.1)]
    calls.clear()  # every row measured: a further call trains nothing; without --resume, each is a rerun
    benchmarks.ablation.main()
    assert calls == []
    monkeypatch.setattr(sys, "argv", argv)
    benchmarks.ablation.main()
    assert calls == [(f"ablation-t-finetune-{v}-seed0", None) for v in ("baseline", "race-0.2", "snapshots-3")]


def test_accuracy_resume_keeps_measured_rows_and_trains_each_seed_once(tiny_cache, tmp_path, monkeypatch):
    import json
    import sys

    import benchmarks.accuracy
    import benchmarks.common
    from facekit.data.cache import read_attrs

    monkeypatch.setattr(benchmarks.common, "RESULTS", tmp_path)
    monkeypatch.setattr(benchmarks.accuracy, "RESULTS", tmp_path)
    settings = {"epochs_override": None, "limit": None, "overrides": {"augment": "strong"}}
    # An earlier call (another machine: no run folders here) measured seed 0, then its limit stopped it.
    (tmp_path / "accuracy-t.json").write_text(json.dumps({**settings, "rows": [
        {**{k: v for k, v in _row("-", 0, 5.2, 0.93).items() if k != "variant"}, "backend": "jax", "gpu": "H100"}]}))
    calls = []

    def fake_train_and_score(cfg, val, resume=None):
        calls.append(cfg.name)
        scores = {k: v for k, v in _row("-", 0, 5.4, 0.92).items() if k not in ("task", "variant", "seed")}
        return {**scores, "backend": "jax", "gpu": "H100", "run_dir": f"runs/{cfg.name}"}

    monkeypatch.setattr(benchmarks.accuracy, "train_and_score", fake_train_and_score)
    argv = ["accuracy", "--tasks", "finetune", "--seeds", "0", "1", "2", "--set", "augment=strong", "--tag", "t",
            "--data", read_attrs(tiny_cache)["source_dir"], "--project", str(tmp_path / "runs")]
    monkeypatch.setattr(sys, "argv", [*argv, "--resume"])
    benchmarks.accuracy.main()
    assert calls == ["finetune-seed1-t", "finetune-seed2-t"]
    result = json.loads((tmp_path / "accuracy-t.json").read_text())
    assert [(r["seed"], r["raw_mae"]) for r in result["rows"]] == [(0, 5.2), (1, 5.4), (2, 5.4)]
    assert result["complete"] and abs(result["summary"]["finetune"]["raw_mae"]["mean"] - 16 / 3) < 1e-9
    calls.clear()
    benchmarks.accuracy.main()  # every seed measured: nothing trains
    assert calls == []
    monkeypatch.setattr(sys, "argv", [*argv[:-4], "--set", "augment=light", "--tag", "t", "--resume"])
    with pytest.raises(SystemExit, match="other settings"):  # another lever under the same name
        benchmarks.accuracy.main()


def test_ablation_trains_no_variant_a_default_has_absorbed():
    from benchmarks.ablation import default_variants

    b, a = default_variants("finetune", False), default_variants("scratch", False)
    assert "internal-160" not in b and "ema" not in b and "no-ema" in b and "internal-128" in b
    assert "ema" in a and "no-ema" not in a and "distill" not in a and "distill" in default_variants("scratch", True)
    assert b[0] == a[0] == "baseline"


def test_merge_row_replaces_a_rerun_in_place_and_appends_a_new_one():
    from benchmarks.common import merge_row

    rows = [{"v": "baseline", "seed": 0, "mae": 5.0}, {"v": "ema", "seed": 0, "mae": 5.2}]
    assert merge_row(rows, {"v": "baseline", "seed": 0, "mae": 4.9}, ("v", "seed")) == [
        {"v": "baseline", "seed": 0, "mae": 4.9}, rows[1]]
    assert merge_row(rows, {"v": "baseline", "seed": 1, "mae": 5.1}, ("v", "seed"))[-1]["seed"] == 1


@pytest.mark.slow
def test_fit_speed_times_a_real_training_run_in_each_malloc_setting(tiny_cache, tmp_path):
    from benchmarks.fit_speed import run_variant

    # Eager: the test is the benchmark's plumbing (two processes, one per malloc setting, their figures);
    # compiling Model A's step in each would add nothing it checks.
    options = {"batch_size": 4, "widths": [16] * 5, "hidden": 16, "workers": 1, "eager": True}
    rows = {v: run_variant("scratch", tiny_cache, tmp_path, 1, v, options) for v in ("facekit", "patched")}
    for row in rows.values():
        assert row["seconds_per_step"] > 0 and row["images_per_second"] > 0 and row["peak_rss_mb"] > 100
    assert {p.name for p in (tmp_path / "scratch").iterdir()} == {"facekit", "patched"}


def test_report_stamps_its_tables_and_never_leaves_half_a_file(tmp_path, monkeypatch):
    import benchmarks.common
    from benchmarks.common import CODE_COMMIT, report, table

    monkeypatch.setattr(benchmarks.common, "RESULTS", tmp_path)
    dest = report("t", ["what was measured"], table(["k", "MAE"], [[1, "5.20"], [2, "5.10"]]), ["speedup: 2x"])
    assert dest.read_text().splitlines() == [
        "# t", "", dest.read_text().splitlines()[2], "what was measured", "",
        "| k | MAE |", "| --- | --- |", "| 1 | 5.20 |", "| 2 | 5.10 |", "", "speedup: 2x"]
    assert f"commit {CODE_COMMIT}, " in dest.read_text().splitlines()[2]
    with pytest.raises(TypeError):  # a cell that is not text fails inside the write
        report("t", ["again"], [object()])
    assert "what was measured" in dest.read_text() and [p.name for p in tmp_path.iterdir()] == ["t.md"]


def test_accuracy_summary_table_is_written_per_model(tmp_path, monkeypatch):
    import argparse
    import json
    from types import SimpleNamespace

    import benchmarks.common
    from benchmarks.accuracy import write

    monkeypatch.setattr(benchmarks.common, "RESULTS", tmp_path)
    rows = [{**_row("baseline", s, mae, acc), "backend": "tensorflow", "gpu": None}
            for s, mae, acc in ((0, 5.3, 0.933), (1, 5.5, 0.931))]
    args = argparse.Namespace(tasks=["scratch", "finetune"], overrides=["internal_size=224"], epochs=None, limit=None)
    val = SimpleNamespace(names=[f"{i}.jpg" for i in range(4)])  # write reads only how many were scored
    write("accuracy-t", args, val, rows, complete=False)
    md = (tmp_path / "accuracy-t.md").read_text()
    assert '; changed from the defaults: {"internal_size": 224}; PARTIAL' in md
    assert "| B | 0,1 | 5.40 ± 0.14 | 93.20 ± 0.14 % | 5.30 ± 0.14 | 93.20 ± 0.14 % | 100 |" in md
    assert "| A |" not in md
    assert json.loads((tmp_path / "accuracy-t.json").read_text())["summary"]["finetune"]["raw_mae"]["mean"] == 5.4


@pytest.mark.slow
def test_serve_speed_measures_http_against_the_predictor(tiny_models, tmp_path, monkeypatch):
    import json
    import sys

    import benchmarks.common
    import benchmarks.serve_speed

    monkeypatch.setattr(benchmarks.common, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["serve_speed", "--model", str(tiny_models["B"]), "--requests", "4",
                                      "--clients", "1", "2", "--tag", "t"])
    benchmarks.serve_speed.main()
    result = json.loads((tmp_path / "serve_speed-t.json").read_text())
    assert [r["clients"] for r in result["http"]] == [1, 2]
    for row in [*result["http"], result["direct_predictor"]]:
        assert row["requests"] == 4 and row["requests_per_second"] > 0 and 0 < row["p50_ms"] <= row["p95_ms"]
    assert "| 2 |" in (tmp_path / "serve_speed-t.md").read_text() and result["commit"]


@pytest.mark.slow
def test_video_speed_counts_frames_and_tracks_of_its_clip(tiny_models, tmp_path, monkeypatch):
    import json
    import sys

    import benchmarks.common
    import benchmarks.video_speed

    monkeypatch.setattr(benchmarks.common, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["video_speed", "--model", str(tiny_models["B"]), "--seconds", "1",
                                      "--fps", "5", "--tag", "t"])
    benchmarks.video_speed.main()
    result = json.loads((tmp_path / "video_speed-t.json").read_text())
    assert [(r["fps"], r["annotate"], r["frames"], r["tracks"]) for r in result["rows"]] == [
        (5.0, False, 5, 2), (5.0, True, 5, 2)]  # 1 s of 30 fps read at 5 a second; two faces, two tracks
    assert all(r["frames_per_second"] > 0 and abs(sum(r["shares"].values()) - 1) < 0.01 for r in result["rows"])
    assert "| 5 a second | yes | 5 |" in (tmp_path / "video_speed-t.md").read_text() and result["commit"]
