"""Where stderr is not a terminal (Colab's plain output, nohup, CI), progress is appended lines, not silence."""

from facekit_cli.train_progress import RichProgress
from facekit_cli.ui import ProgressLines, progress_bar


def test_training_prints_a_line_every_tenth_of_an_epoch(capsys):
    cb = RichProgress(epochs=2, live=False)
    cb.set_params({"epochs": 2, "steps": 40})
    cb.on_train_begin()
    for epoch in range(2):
        cb.on_epoch_begin(epoch)
        for batch in range(40):
            cb.on_train_batch_end(batch, {"loss": 1.5, "age_mae": 9.0})
        cb.on_epoch_end(epoch, {"age_mae": 8.0, "val_age_mae": 7.5})
    cb.on_train_end()
    lines = capsys.readouterr().err.splitlines()
    batch_lines = [ln for ln in lines if ": batch " in ln]
    assert len(batch_lines) == 18  # 10 %, 20 %, ... 90 % of each epoch; the epoch line reports the end
    assert batch_lines[0].startswith("epoch 1/2: batch 4/40 (10%)") and "loss 1.500 MAE 9.00" in batch_lines[0]
    assert "left" in batch_lines[0]
    assert sum(ln.startswith("epoch 2/2: val_age_mae") or ln.startswith("epoch 2/2: age_mae") for ln in lines) == 1


def test_progress_bar_falls_back_to_lines(capsys):
    with progress_bar("prep faces") as update:
        assert isinstance(update, ProgressLines)  # pytest's stderr is not a terminal
        for done in range(1, 1001):
            update(done, 1000)
    lines = capsys.readouterr().err.splitlines()
    assert [ln.split(" (")[0] for ln in lines] == [f"prep faces {n}/1000" for n in range(100, 1001, 100)]
