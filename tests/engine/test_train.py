"""Training on CPU with a few steps: run folders, export contract, resume, interrupt, --full, JAX."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from facekit.engine.recipe import TrainConfig
from facekit.engine.resume import finished_run
from facekit.engine.runs import CURVES, ResumePoint, align_history, read_history, resume_point, save_checkpoint
from facekit.engine.train import TrainingInterrupted, build_models, compile_train, train
from facekit.inference.check import check_model
from facekit.inference.load import load, run
from facekit.model.models import find_backbone
from tests.conftest import ROOT, TRAIN_VAL, contract_failures, quick_config

RUN_FILES = {"args.json", "history.csv", "metrics.json", "last.keras", "state.json", "summary.txt",
             *(f"{stem}.png" for stem, *_ in CURVES)}


class CtrlC(keras.callbacks.Callback):
    """Ctrl-C as a user presses it: when epoch ``epoch`` (0-based) begins, or in the first batch (None)."""

    def __init__(self, epoch: int | None = None) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch is None:
            raise KeyboardInterrupt


@pytest.mark.slow
@pytest.mark.parametrize("task, arch", [("scratch", "plain"), ("scratch", "residual"), ("finetune", "plain")])
def test_train_export_and_check(task, arch, tiny_cache, tmp_path):
    res = train(quick_config(task, tiny_cache, tmp_path, arch=arch))
    export = "age_gender_A.keras" if task == "scratch" else "age_gender_B.keras"
    assert res.model_path.name == export
    assert RUN_FILES | {export} <= {p.name for p in res.run_dir.iterdir()}
    m = json.loads((res.run_dir / "metrics.json").read_text())
    assert m["epochs_run"] == 2 and m["best_epoch"] in (1, 2) and m["val_images"] == 5 and m["train_images"] == 19
    assert m["val_age_mae"] > 0 and 0 <= m["val_gender_accuracy"] <= 1 and m["backend"] == keras.backend.backend()
    assert "model.png" in m["plot_model"]  # either the file or the reason it was not drawn
    hist = read_history(res.run_dir / "history.csv")
    for _, key, *_ in CURVES:
        assert key in hist[0] and f"val_{key}" in hist[0]
    # The lecturer's way: a fresh process without facekit, plain load_model, cv2.imread / 255. The residual
    # trunk is nested (flip averaging re-calls it whole): it is loaded on the oldest Keras too, in the same call.
    chips = sorted(TRAIN_VAL.iterdir())[:6]
    rep = check_model(res.model_path, images=chips, keras_versions=("3.5",) if arch == "residual" else ())
    assert not contract_failures(rep) and not rep.untested, contract_failures(rep)
    assert rep.output_order == ["age", "gender"]
    if task == "scratch":
        assert any(c.name.startswith("feature map") and c.ok for c in rep.checks)
    if task == "scratch" and arch == "plain":  # hard targets, built-in metrics: the checkpoint needs no facekit
        code = f"import keras; assert keras.models.load_model({str(res.run_dir / 'last.keras')!r}).compiled"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    if arch == "residual":  # its trunk is nested (flip averaging re-calls it whole), and is no pretrained backbone
        assert json.loads((res.run_dir / "args.json").read_text())["arch"] == "residual"
        assert find_backbone(keras.models.load_model(res.run_dir / "last.keras")) is None
        assert any(c.name == "loads on Keras 3.5" and c.ok for c in rep.checks), [(c.name, c.ok) for c in rep.checks]
    lm = load(res.model_path)
    assert lm.flip_built_in  # the default export averages each image with its mirror inside the graph
    x = np.random.default_rng(0).uniform(0, 1, (2, 128, 128, 3)).astype("float32")
    np.testing.assert_allclose(run(lm, x)[0], run(lm, x[:, :, ::-1])[0], rtol=1e-4)
    np.testing.assert_array_equal(run(lm, x, tta=True)[0], run(lm, x)[0])  # no second mirror pass


@pytest.mark.slow
def test_best_model_is_the_exported_one(trained_runs):
    run = trained_runs["A"]  # 3 epochs of Model A
    metrics = json.loads((run / "metrics.json").read_text())
    hist = read_history(run / "history.csv")
    best = min(range(3), key=lambda i: hist[i]["val_age_mae"])
    assert metrics["best_epoch"] == best + 1
    assert metrics["val_age_mae"] == pytest.approx(hist[best]["val_age_mae"], rel=1e-5)


@pytest.mark.slow
def test_resume_continues_the_run(tiny_cache, tmp_path):
    first = train(quick_config("scratch", tiny_cache, tmp_path, epochs=3, patience=0, name="r"))
    args = json.loads((first.run_dir / "args.json").read_text())
    args["epochs"] = 4
    (first.run_dir / "args.json").write_text(json.dumps(args))
    recorded = (first.run_dir / "split.json").read_text()
    (first.run_dir / "split.json").unlink()  # as a run from before split.json existed
    (first.run_dir / "metrics.json").unlink()  # as a killed process leaves it: the checkpoint keeps the time
    checkpointed = json.loads((first.run_dir / "state.json").read_text())["train_seconds"]
    assert 0 < checkpointed <= first.metrics["train_seconds"]
    started = time.monotonic()
    again = train(TrainConfig(), resume=first.run_dir)
    resumed_for = time.monotonic() - started
    assert (first.run_dir / "split.json").read_text() == recorded and any("older than it" in n for n in again.notes)
    # Both sessions count: the checkpointed time plus this one's (a resumed epoch may take less than the end of
    # the first session took after its last checkpoint, so the first run's final figure is no lower bound).
    assert checkpointed < again.metrics["train_seconds"] <= checkpointed + resumed_for
    assert again.run_dir == first.run_dir and len(read_history(first.run_dir / "history.csv")) == 4
    assert [int(h["epoch"]) for h in read_history(first.run_dir / "history.csv")] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="already trained"):
        train(TrainConfig(), resume=first.run_dir)


@pytest.mark.slow
def test_snapshot_run_hands_in_the_merge_of_its_cycles(tiny_cache, tmp_path):
    res = train(quick_config("scratch", tiny_cache, tmp_path, epochs=4, snapshots=2, name="snap"))
    files = [res.run_dir / f"snapshot-{i}.keras" for i in (1, 2)]
    assert all(f.is_file() for f in files) and any("early stopping is off" in n for n in res.notes)
    m = res.metrics
    assert m["snapshots"]["epochs"] == [2, 4] and m["best_epoch"] == 4 and m["snapshots"]["best_single"]["best_epoch"]
    # The hand-in file is the merge (what `facekit merge` makes of the two files), scored as it is read back.
    members = [load(f) for f in files]
    merged = load(res.model_path)
    x = np.random.default_rng(0).uniform(0, 1, (4, 128, 128, 3)).astype("float32")
    np.testing.assert_allclose(run(merged, x)[0], np.mean([run(lm, x)[0] for lm in members], axis=0), rtol=1e-4)
    assert m["val_age_mae"] == pytest.approx(m["snapshots"]["val_age_mae"])
    assert m["val_age_mae"] != pytest.approx(m["snapshots"]["best_single"]["val_age_mae"])
    rep = check_model(res.model_path, images=sorted(TRAIN_VAL.iterdir())[:6], keras_versions=())
    assert not contract_failures(rep), contract_failures(rep)
    assert "m1_age_dist" in (res.run_dir / "summary.txt").read_text()  # the summary is the merged file's
    # Killed after the last checkpoint, before the last snapshot and the metrics: resume writes both again.
    files[1].unlink()
    (res.run_dir / "metrics.json").unlink()
    again = train(TrainConfig(), resume=res.run_dir)
    assert files[1].is_file() and any("written again from the checkpoint of epoch 4" in n for n in again.notes)
    assert again.metrics["val_age_mae"] == pytest.approx(m["val_age_mae"], rel=1e-5)
    for key in ("best_epoch", "val_age_mae", "val_gender_accuracy"):  # a resumed session knows the best epoch too
        assert again.metrics["snapshots"]["best_single"][key] == pytest.approx(m["snapshots"]["best_single"][key])
    # A snapshot lost further back cannot be made again: refused by name.
    files[0].unlink()
    (res.run_dir / "metrics.json").unlink()
    with pytest.raises(ValueError, match="snapshot-1.keras: missing, and epoch 2"):
        train(TrainConfig(), resume=res.run_dir)


@pytest.mark.slow
def test_resume_finishes_a_run_killed_after_its_last_epoch(tiny_cache, tmp_path):
    # Killed between the last epoch's checkpoint and metrics.json: nothing is left to train, but a resumed
    # refit or benchmark needs the finished run, so resuming writes what the session would have, untrained.
    for full in (False, True):
        first = train(quick_config("scratch", tiny_cache, tmp_path, full=full, patience=0, name=f"k{full}"))
        saved = first.model_path.stat().st_mtime_ns
        (first.run_dir / "metrics.json").unlink()
        (first.run_dir / "age_loss.png").unlink(missing_ok=True)
        assert finished_run(first.run_dir) is None
        recorded = json.loads((first.run_dir / "state.json").read_text())["train_seconds"]  # up to the checkpoint
        again = train(TrainConfig(), resume=first.run_dir)
        assert any("finished the run without training" in n for n in again.notes)
        assert again.model_path.stat().st_mtime_ns == saved and finished_run(first.run_dir) is not None
        assert len(read_history(first.run_dir / "history.csv")) == 2
        for key in ("epochs_run", "best_epoch", "train_images", "val_images"):
            assert again.metrics[key] == first.metrics[key], key
        if not full:
            assert again.metrics["val_age_mae"] == pytest.approx(first.metrics["val_age_mae"], rel=1e-5)
        # The killed session's time is carried over, not restarted (no wall-clock tolerance: a loaded machine
        # stretches the first session's work after its checkpoint, which the record rightly leaves out).
        assert 0 < recorded <= first.metrics["train_seconds"] and again.metrics["train_seconds"] >= recorded
        assert RUN_FILES <= {p.name for p in first.run_dir.iterdir()}
        with pytest.raises(ValueError, match="already trained; epoch 2 of 2 is done"):
            train(TrainConfig(), resume=first.run_dir)


@pytest.mark.slow
def test_resume_restores_the_row_a_kill_after_the_checkpoint_lost(tiny_cache, tmp_path):
    # Killed after the last epoch's checkpoint but before its history row and its hand-in file: the row comes
    # back from the checkpoint's record and the file from the checkpoint (EMA: its averages), untrained.
    for full, ema in ((False, False), (True, True)):
        first = train(quick_config("scratch", tiny_cache, tmp_path, full=full, ema=ema, patience=0,
                                   name=f"row{full}"))
        history = first.run_dir / "history.csv"
        rows = read_history(history)
        handed_in = keras.models.load_model(first.model_path).get_weights()
        lines = history.read_bytes().splitlines(keepends=True)
        history.write_bytes(b"".join(lines[:-1]))
        (first.run_dir / "metrics.json").unlink()
        if full:  # a --full run's file is always its last epoch's, so the kill left the previous one's
            first.model_path.unlink()
        again = train(TrainConfig(), resume=first.run_dir)
        assert any("restored the row" in n for n in again.notes)
        assert any("finished the run without training" in n for n in again.notes)
        restored = read_history(history)
        assert len(restored) == 2 and restored[0] == rows[0] and restored[1].keys() == rows[1].keys()
        assert restored[1] == pytest.approx(rows[1], rel=1e-6)
        assert history.read_bytes().startswith(b"".join(lines[:-1]))
        for key in ("epochs_run", "best_epoch", "val_age_mae"):
            assert again.metrics[key] == first.metrics[key], key
        for a, b in zip(keras.models.load_model(again.model_path).get_weights(), handed_in, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        assert not contract_failures(check_model(again.model_path, isolated=False))  # the rules, in-process


@pytest.mark.slow
def test_interrupt_keeps_best_model_and_history(tiny_cache, tmp_path):
    with pytest.raises(TrainingInterrupted) as info:
        train(quick_config("scratch", tiny_cache, tmp_path, epochs=5), callbacks=[CtrlC(epoch=1)])
    run = info.value.run_dir
    assert (run / "age_gender_A.keras").exists() and len(read_history(run / "history.csv")) == 1
    assert json.loads((run / "metrics.json").read_text())["interrupted"] is True
    assert "best model so far" in str(info.value)


def test_interrupt_before_any_epoch_saves_no_model(tiny_cache, tmp_path):
    with pytest.raises(TrainingInterrupted, match="no model was saved") as info:
        train(quick_config("scratch", tiny_cache, tmp_path), callbacks=[CtrlC()])
    assert not (info.value.run_dir / "age_gender_A.keras").exists()
    assert json.loads((info.value.run_dir / "metrics.json").read_text())["model"] is None


@pytest.mark.slow
def test_full_freeze_and_output_order(tiny_cache, tmp_path):
    res = train(quick_config("finetune", tiny_cache, tmp_path, full=True, freeze_epochs=1,
                             output_order="gender,age"))
    assert res.metrics["val_images"] == 0 and res.metrics["train_images"] == 24 and res.metrics["epochs_run"] == 2
    assert len(read_history(res.run_dir / "history.csv")) == 2  # the frozen phase's row survives
    rep = check_model(res.model_path, isolated=False)  # the rules and the order; test_train_export_and_check
    assert not contract_failures(rep) and rep.output_order == ["gender", "age"]  # probes a fresh process


@pytest.mark.slow
def test_ema_run_exports(tiny_cache, tmp_path):
    res = train(quick_config("scratch", tiny_cache, tmp_path, ema=True))
    assert res.model_path.exists() and res.metrics["epochs_run"] == 2
    assert json.loads((res.run_dir / "args.json").read_text())["ema"] is True


def test_model_b_averages_its_weights_by_default():
    # B's default since three seeds at full length (README, Measured accuracy); A keeps its raw weights,
    # and --no-ema (ema=False) turns B's off.
    assert TrainConfig.for_task("finetune").ema and not TrainConfig.for_task("scratch").ema
    assert not TrainConfig.for_task("finetune", ema=False).ema


def test_ema_half_life_is_one_epoch(tiny_cache, tmp_path):
    model = build_models(quick_config("scratch", tiny_cache, tmp_path)).train
    compile_train(model, quick_config("scratch", tiny_cache, tmp_path, ema=True), steps_per_epoch=63, epochs=10)
    assert model.optimizer.ema_momentum ** 63 == pytest.approx(0.5)  # a fixed 0.999 kept half the start after 10
    compile_train(model, quick_config("scratch", tiny_cache, tmp_path, ema=True, ema_momentum=0.9), 63, 10)
    assert model.optimizer.ema_momentum == 0.9


@pytest.mark.slow
def test_jax_backend_trains_and_loads(tiny_cache, tmp_path):
    pytest.importorskip("jax")
    code = (
        "import sys; from tests.conftest import quick_config; from facekit.engine.train import train; "
        "r = train(quick_config('finetune', sys.argv[1], sys.argv[2], ema=True, freeze_epochs=1, patience=0, "
        "eager=False)); "
        "print('MODEL', r.model_path)"
    )  # EMA across the frozen and full phases once started the second from all-zero weights on JAX. Jitted:
    # JAX op by op is slower than its compile, and the jitted step is what users train.
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    out = subprocess.run([sys.executable, "-c", code, str(tiny_cache), str(tmp_path)], env=env, capture_output=True,
                         text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    model = Path(out.stdout.split("MODEL ")[-1].strip())
    assert json.loads((model.parent / "metrics.json").read_text())["backend"] == "jax"
    stem = find_backbone(keras.models.load_model(model)).get_weights()[0]  # zeroed weights stay within ~1e-3
    assert np.abs(stem).mean() > 0.01 and np.isfinite(stem).all()
    # A JAX-trained file loads on both: on JAX in a fresh interpreter, as the lecturer's would; on TensorFlow
    # in this one (its backend), where facekit's own code is not needed to load it either.
    chips = sorted(TRAIN_VAL.iterdir())[:2]
    assert check_model(model, images=chips, backend="jax").passed
    assert check_model(model, images=chips, isolated=False).passed


@pytest.mark.slow
def test_mixing_mean_variance_and_flip_export(tiny_cache, tmp_path):
    cfg = quick_config("scratch", tiny_cache, tmp_path, mix="cutmix", mean_variance=True, tta=True, epochs=1,
                       patience=0, name="levers", race_weight=0.2)
    first = train(cfg)
    # The auxiliary race head trains (its one-hot targets mixed with the rest) and never reaches the export.
    assert {"race_accuracy", "val_race_accuracy", "race_loss"} <= set(read_history(first.run_dir / "history.csv")[0])
    exported = keras.models.load_model(first.model_path)
    assert len(exported.outputs) == 2 and "race" not in {layer.name for layer in exported.layers}
    rep = check_model(first.model_path, images=sorted(TRAIN_VAL.iterdir())[:4])  # the lecturer's plain load_model
    assert not contract_failures(rep), contract_failures(rep)
    assert any(c.name.startswith("feature map") and c.ok for c in rep.checks)  # the 4 x 4 map is still found
    assert "flip_mirror" in {layer.name for layer in keras.models.load_model(first.model_path).layers}
    hist = read_history(first.run_dir / "history.csv")
    assert "age_loss" in hist[0]  # the mean half of the mean-variance loss trains the age output
    args = json.loads((first.run_dir / "args.json").read_text())
    args["epochs"] = 2
    (first.run_dir / "args.json").write_text(json.dumps(args))
    again = train(TrainConfig(), resume=first.run_dir)  # last.keras carries the custom training loss
    assert again.metrics["epochs_run"] == 2
    assert "flip_mirror" in {layer.name for layer in keras.models.load_model(again.model_path).layers}


def _layer_weights(path: Path, name: str) -> list[np.ndarray]:
    return keras.models.load_model(path).get_layer(name).get_weights()


@pytest.mark.slow
def test_ema_with_freeze_epochs_trains_both_phases(tiny_cache, tmp_path):
    # Once: TensorFlow raised "SwapEMAWeights must be used when use_ema=True" at the second phase, and
    # JAX swapped the new optimizer's unbuilt (zero) averages into the model.
    res = train(quick_config("finetune", tiny_cache, tmp_path, ema=True, freeze_epochs=1, epochs=3, patience=0))
    hist = read_history(res.run_dir / "history.csv")
    assert [int(h["epoch"]) for h in hist] == [0, 1, 2] and all(np.isfinite(h["val_age_mae"]) for h in hist)
    last = keras.models.load_model(res.run_dir / "last.keras")
    assert find_backbone(last).trainable
    kernel = last.get_layer("age_logits").get_weights()[0]
    assert np.abs(kernel).max() > 0 and np.isfinite(kernel).all()
    assert json.loads((res.run_dir / "state.json").read_text())["epochs_done"] == 3


@pytest.mark.slow
def test_resume_with_ema_continues_the_raw_weights(tiny_cache, tmp_path):
    # Without validation every epoch is exported, so the hand-in file holds the last epoch's average.
    first = train(quick_config("scratch", tiny_cache, tmp_path, ema=True, full=True, name="ema"))
    last = first.run_dir / "last.keras"
    raw = _layer_weights(last, "age_logits")[0]
    averaged = _layer_weights(first.model_path, "age_logits")[0]
    assert not np.allclose(raw, averaged)  # last.keras holds the raw trajectory, not the average
    opt = keras.models.load_model(last).optimizer
    averages = [np.asarray(v) for v in opt.variables if "average" in v.path and v.shape == raw.shape]
    assert any(np.allclose(a, averaged, atol=1e-6) for a in averages)  # ... and the average in its optimizer
    args = json.loads((first.run_dir / "args.json").read_text())
    (first.run_dir / "args.json").write_text(json.dumps({**args, "epochs": 3}))
    again = train(TrainConfig(), resume=first.run_dir)
    assert again.metrics["epochs_run"] == 3


@pytest.mark.slow
def test_resume_during_the_frozen_phase_unfreezes_later(tiny_cache, tmp_path):
    cfg = quick_config("finetune", tiny_cache, tmp_path, freeze_epochs=2, epochs=3, patience=0)
    with pytest.raises(TrainingInterrupted) as info:
        train(cfg, callbacks=[CtrlC(epoch=1)])
    run_dir = info.value.run_dir
    frozen = keras.models.load_model(run_dir / "last.keras")
    assert not find_backbone(frozen).trainable
    backbone_before = find_backbone(frozen).get_weights()
    again = train(TrainConfig(), resume=run_dir)
    assert again.metrics["epochs_run"] == 3
    assert json.loads((run_dir / "state.json").read_text())["epochs_done"] == 3
    done = keras.models.load_model(run_dir / "last.keras")
    assert find_backbone(done).trainable  # the old resume counted history rows and never unfroze
    changed = [not np.array_equal(a, b) for a, b in zip(backbone_before, find_backbone(done).get_weights())]
    assert any(changed)


@pytest.mark.slow
def test_resume_restarts_or_refuses_what_it_cannot_continue(tiny_cache, tmp_path):
    with pytest.raises(TrainingInterrupted) as info:
        train(quick_config("scratch", tiny_cache, tmp_path, name="nothing"), callbacks=[CtrlC()])
    # README's main command must work on a second try: a run that saved nothing starts afresh in its folder.
    again = train(TrainConfig(), resume=info.value.run_dir)
    assert again.run_dir == info.value.run_dir and any("starts afresh" in n for n in again.notes)
    assert again.model_path.exists() and again.metrics["epochs_run"] == 2
    assert len(read_history(again.run_dir / "history.csv")) == 2
    with pytest.raises(ValueError, match="not a run folder"):
        train(TrainConfig(), resume=tmp_path)
    split = json.loads((again.run_dir / "split.json").read_text())
    (again.run_dir / "split.json").write_text(json.dumps({**split, "val": split["val"][1:]}))
    args = json.loads((again.run_dir / "args.json").read_text())
    (again.run_dir / "args.json").write_text(json.dumps({**args, "epochs": 3}))
    with pytest.raises(ValueError, match="no longer splits into the images this run started with"):
        train(TrainConfig(), resume=again.run_dir)

    early = train(quick_config("scratch", tiny_cache, tmp_path, epochs=6, patience=1, name="early"))
    if early.metrics["epochs_run"] < 6:  # stopped early: extending the run would undo that decision
        with pytest.raises(ValueError, match="stopped early"):
            train(TrainConfig(), resume=early.run_dir)


def test_checkpoint_state_names_the_epoch_a_kill_left(tmp_path):
    class Model:
        def __init__(self, payload: bytes) -> None:
            self.payload = payload

        def save(self, path):
            Path(path).write_bytes(self.payload)

    save_checkpoint(tmp_path, Model(b"epoch 1"), 1, 10.0)
    save_checkpoint(tmp_path, Model(b"epoch 2"), 2, 20.0)
    assert resume_point(tmp_path) == ResumePoint(2, False, 20.0)
    # Killed after state.json named epoch 3 but before the new file was renamed over last.keras:
    state = json.loads((tmp_path / "state.json").read_text())
    save_checkpoint(tmp_path, Model(b"epoch 3"), 3, 30.0)
    assert json.loads((tmp_path / "state.json").read_text())["previous"] == {
        "epochs_done": 2, "last_sha256": state["last_sha256"], "train_seconds": 20.0}
    new = {"epochs_done": 3, "stopped_early": False, "last_sha256": "0" * 64, "train_seconds": 30.0,
           "previous": {"epochs_done": 2, "last_sha256": state["last_sha256"], "train_seconds": 20.0}}
    (tmp_path / "state.json").write_text(json.dumps(new))
    (tmp_path / "last.keras").write_bytes(b"epoch 2")
    assert resume_point(tmp_path) == ResumePoint(2, False, 20.0)
    (tmp_path / "last.keras").write_bytes(b"edited")
    with pytest.raises(ValueError, match="not the checkpoint state.json describes"):
        resume_point(tmp_path)


def test_checkpoint_state_keeps_its_epochs_row(tmp_path):
    class Model:
        def save(self, path):
            Path(path).write_bytes(b"weights")

    save_checkpoint(tmp_path, Model(), 1, 10.0, {"loss": np.float32(2.5), "val_age_mae": 9.0})
    save_checkpoint(tmp_path, Model(), 1, 11.0)  # a phase's end: the same epoch, its row kept
    point = resume_point(tmp_path)
    assert point.epochs_done == 1 and point.logs == {"loss": 2.5, "val_age_mae": 9.0}
    save_checkpoint(tmp_path, Model(), 2, 20.0, {"loss": 2.0})
    assert json.loads((tmp_path / "state.json").read_text())["previous"]["logs"] == point.logs
    # history.csv lacks epoch 2's row: it comes back under the file's own header; a complete file is left alone
    (tmp_path / "history.csv").write_text("epoch,loss,val_age_mae\r\n0,2.5,9.0\r\n")
    assert align_history(tmp_path, resume_point(tmp_path))
    assert (tmp_path / "history.csv").read_bytes() == b"epoch,loss,val_age_mae\r\n0,2.5,9.0\r\n1,2.0,NA\r\n"
    assert not align_history(tmp_path, resume_point(tmp_path))
    (tmp_path / "history.csv").write_bytes(b"epoch,loss\r\n0,2.5\r\n1,2.0\r\n2,1.5\r\n")  # epoch 3 lost its file
    assert not align_history(tmp_path, resume_point(tmp_path))
    assert (tmp_path / "history.csv").read_bytes() == b"epoch,loss\r\n0,2.5\r\n1,2.0\r\n"


def test_plot_model_draws_or_says_once_how_to_fix(tmp_path, monkeypatch):
    import builtins
    import shutil

    from facekit.engine.runs import plot_model

    model = build_models(quick_config("scratch", Path("unused.h5"), tmp_path)).export
    if shutil.which("dot"):
        pytest.importorskip("pydot")
        assert plot_model(model, tmp_path) == str(tmp_path / "model.png")
        assert (tmp_path / "model.png").stat().st_size > 0
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/dot")
    pytest.importorskip("pydot")

    def dot_crashes(*args, **kwargs):  # what pydot raises when Graphviz dies ("Trapezoid-table overflow")
        raise AssertionError('"dot" with args [\'-Tpng\'] returned code: -6')

    monkeypatch.setattr(keras.utils, "plot_model", dot_crashes)
    note = plot_model(model, tmp_path / "crash")
    assert note.startswith("model.png not drawn: Graphviz's dot failed")
    assert not (tmp_path / "crash" / "model.png").exists()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    note = plot_model(model, tmp_path / "no_dot")
    assert "Graphviz's `dot` program is not installed" in note and note.count("graphviz") == 3
    real_import = builtins.__import__

    def no_pydot(name, *args, **kwargs):
        if name == "pydot":
            raise ImportError("No module named 'pydot'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pydot)
    note = plot_model(model, tmp_path / "no_pydot")
    assert "pip install 'facekit[plot]'" in note and note.count("pydot") == 1  # said once, not Keras's words too


@pytest.mark.slow
def test_streamed_cache_trains_like_the_in_memory_one(tiny_cache, tmp_path):
    runs = {mode: train(quick_config("scratch", tiny_cache, tmp_path, cache_mode=mode, name=mode, epochs=1))
            for mode in ("memory", "stream")}
    for mode, res in runs.items():
        assert res.metrics["cache_mode"] == mode and any(n.startswith(f"cache in {mode}") for n in res.notes)
    rows = {mode: read_history(res.run_dir / "history.csv")[0] for mode, res in runs.items()}
    for key in ("loss", "val_loss", "val_age_mae"):
        assert rows["stream"][key] == pytest.approx(rows["memory"][key], rel=1e-4), key  # the same batches


@pytest.mark.slow
def test_resume_keeps_counting_epochs_without_improvement(tiny_cache, tmp_path):
    first = train(quick_config("scratch", tiny_cache, tmp_path, epochs=2, patience=0, name="patient"))
    args = json.loads((first.run_dir / "args.json").read_text())
    lines = (first.run_dir / "history.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("val_age_mae")] = "0.0"  # epoch 1 is unbeatable: the run is one epoch past its best
    (first.run_dir / "history.csv").write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    # Keras stops when the epochs since the best reach the patience: with patience 1 an uninterrupted run
    # stopped at epoch 2, so there is nothing to continue (training on would be another run).
    (first.run_dir / "args.json").write_text(json.dumps({**args, "epochs": 8, "patience": 1}))
    with pytest.raises(ValueError, match="it stopped at epoch 2 and there is nothing to resume"):
        train(TrainConfig(), resume=first.run_dir)
    metrics = (first.run_dir / "metrics.json").read_text()
    (first.run_dir / "metrics.json").unlink()  # killed after that last epoch: the run is finished, untrained
    ended = train(TrainConfig(), resume=first.run_dir)
    assert ended.metrics["best_epoch"] == 1 and ended.metrics["val_age_mae"] == 0.0
    assert json.loads((first.run_dir / "state.json").read_text())["stopped_early"]
    (first.run_dir / "metrics.json").write_text(metrics)
    state = json.loads((first.run_dir / "state.json").read_text())
    (first.run_dir / "state.json").write_text(json.dumps({**state, "stopped_early": False}))
    (first.run_dir / "args.json").write_text(json.dumps({**args, "epochs": 8, "patience": 2}))
    again = train(TrainConfig(), resume=first.run_dir)
    # With patience 2 an uninterrupted run stops at epoch 3; Keras's own EarlyStopping, reset by the new fit,
    # would have trained on to epoch 4.
    assert again.metrics["epochs_run"] == 3
    assert json.loads((first.run_dir / "state.json").read_text())["stopped_early"]


@pytest.mark.slow
def test_validation_on_raw_files_scores_what_the_lecturer_reads(tiny_cache, tmp_path):
    from facekit.contract import rgb_to_input
    from facekit.data.cache import read_attrs, read_cache
    from facekit.data.labelled import load_labelled
    from facekit.data.split import read_run_split
    from facekit.engine.train import raw_validation

    cfg = quick_config("scratch", tiny_cache, tmp_path, val_images="raw", epochs=1, steps_per_epoch=1)
    r = train(cfg)
    source = Path(read_attrs(tiny_cache)["source_dir"])
    assert any(f"held-out files of {source}" in n for n in r.notes)
    names = read_run_split(r.run_dir).val
    val = load_labelled(source, names=names)
    # What training validates on is the files as `evaluate` reads them, pixel for pixel, not the aligned crops.
    images, ages, genders, races, where = raw_validation(cfg, read_cache(tiny_cache), names)
    np.testing.assert_array_equal(rgb_to_input(images), val.x)
    assert where == source and list(ages) == list(val.ages) and list(genders) == list(val.genders)
    data = read_cache(tiny_cache)
    rows = [list(data.filename).index(n) for n in val.names]
    assert list(races) == list(data.race[rows])  # the auxiliary head's labels: the cache's, for the same files
    crops = data.images[rows]
    assert np.abs(rgb_to_input(crops) - val.x).mean() > 0.01  # 0.022 measured: 6 grey levels on average
    # ... and the recorded validation MAE is the training model's on them.
    model = keras.models.load_model(r.run_dir / "last.keras")
    age = np.asarray(model.predict(val.x, verbose=0)["age"]).ravel()
    recorded = read_history(r.run_dir / "history.csv")[-1]["val_age_mae"]
    assert recorded == pytest.approx(float(np.mean(np.abs(age - val.ages))), rel=1e-5)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(ValueError, match="images the split lists are not in this folder"):
        train(quick_config("scratch", tiny_cache, tmp_path, val_images="raw", raw_dir=str(elsewhere), epochs=1,
                           steps_per_epoch=1))
    with pytest.raises(ValueError, match="val images must be one of crops, raw"):
        quick_config("scratch", tiny_cache, tmp_path, val_images="aligned")
    with pytest.raises(ValueError, match="--full holds nothing out"):
        quick_config("scratch", tiny_cache, tmp_path, val_images="raw", full=True)


@pytest.mark.slow
def test_score_monitor_picks_and_resumes_on_age_and_gender(tiny_cache, tmp_path):
    from facekit.engine.selection import SCORE, choose_epoch, hand_in_score

    first = train(quick_config("scratch", tiny_cache, tmp_path, epochs=2, monitor=SCORE, patience=3, name="s"))
    history = read_history(first.run_dir / "history.csv")
    assert all(SCORE in row for row in history)  # logged for the CSV, the saved best and early stopping alike
    m = first.metrics
    assert m["monitor"] == SCORE and m["best_epoch"] == choose_epoch(history, SCORE, 3).best_epoch
    assert m["val_score"] == pytest.approx(hand_in_score(m["val_age_mae"], m["val_gender_accuracy"]))
    args = json.loads((first.run_dir / "args.json").read_text())
    (first.run_dir / "args.json").write_text(json.dumps({**args, "epochs": 3}))
    again = train(TrainConfig(), resume=first.run_dir)
    history = read_history(first.run_dir / "history.csv")
    assert again.metrics["epochs_run"] == 3 and all(SCORE in row for row in history)
    assert again.metrics["best_epoch"] == choose_epoch(history, SCORE, 3).best_epoch
    with pytest.raises(ValueError, match="monitor must be one of val_age_mae, val_score"):
        quick_config("scratch", tiny_cache, tmp_path, monitor="val_loss")


MALLOC_SCRIPT = """
import ctypes, resource, sys
from pathlib import Path
from tests.conftest import quick_config
from facekit.engine.device import _M_TRIM_THRESHOLD
from facekit.engine.train import train

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]

def faults():  # minor page faults of 50 rounds of a 1 MB buffer taken, written and given back
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        p = libc.malloc(1 << 20)
        ctypes.memset(p, 1, 1 << 20)
        libc.free(p)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

libc.mallopt(_M_TRIM_THRESHOLD, 128 * 1024)  # as TensorFlow 2.21 sets it when a PyDataset starts
patched = faults()
train(quick_config("scratch", Path(sys.argv[1]), Path(sys.argv[2]), epochs=1))
faults()  # the heap grows to hold the buffer once
print(patched, faults())
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux") or keras.backend.backend() != "tensorflow",
                    reason="TensorFlow's malloc patch is glibc's")
def test_training_undoes_tensorflows_malloc_patch(tiny_cache, tmp_path):
    # Under the patch every buffer over 128 KB is mmapped afresh, so each 1 MB round faults in its 256 pages
    # (training steps 1.6x slower on a 2-core CPU without AVX-512, benchmarks.fit_speed); after a fit, glibc's
    # own thresholds hold and the heap serves the buffer again.
    root = ROOT
    out = subprocess.run([sys.executable, "-c", MALLOC_SCRIPT, str(tiny_cache), str(tmp_path)], cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    patched, after = map(int, out.stdout.split()[-2:])
    assert patched > 50 * 200 and after < 50 * 10, (patched, after)
