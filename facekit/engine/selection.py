"""Which epoch a run hands in: the monitored validation figure, and early stopping on it.

The lecturer scores both heads of the hand-in file, age by MAE and gender by
accuracy, but a run that picks its epoch on age MAE alone ignores the second:
seed 2 of Model B's defaults kept epoch 10, its best age MAE (5.56), where
gender accuracy had dipped to 80.7 % between epochs at 91-93 %, and handed in
79.1 % (benchmarks/results/accuracy-cpu-full-seed2.md). ``val_score`` weighs
both in the units of the first: age MAE plus ``GENDER_POINT_YEARS`` for every
point of gender error. At 0.1 a point, both figures move the score by about
as much as their own noise on 1,000 validation images (the MAE's standard
error there is about 0.14 years, the accuracy's about 0.85 points), so
neither drowns the other. Light (no Keras), so the CLI's help can quote the weight.

Training adds the score to each epoch's logs (``train.ScoreEpoch``) for Keras's
``EarlyStopping`` and ``train.SaveBest``; a resumed run and ``benchmarks.monitors``
(a finished run's history replayed under another monitor or patience) choose
with ``choose_epoch``, which follows ``EarlyStopping`` exactly: strict
improvement, stop once ``patience`` epochs in a row brought none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from facekit.choices import MONITORS

AGE, SCORE = MONITORS
GENDER = "val_gender_accuracy"
GENDER_POINT_YEARS = 0.1  # years of age MAE one point (1 %) of gender accuracy is worth in val_score


def hand_in_score(age_mae: float, gender_accuracy: float) -> float:
    """Age MAE plus ``GENDER_POINT_YEARS`` per point of gender error; lower is better."""
    return float(age_mae) + GENDER_POINT_YEARS * 100.0 * (1.0 - float(gender_accuracy))


def monitored(row: dict[str, float], monitor: str) -> float:
    """An epoch's value of ``monitor``; ``val_score`` is recomputed from its parts, so histories written
    before the score existed can be replayed under it."""
    if monitor == SCORE and SCORE not in row and AGE in row and GENDER in row:
        return hand_in_score(row[AGE], row[GENDER])
    return row.get(monitor, math.inf)


@dataclass(frozen=True)
class Choice:
    best_epoch: int | None  # 1-based; None when no epoch has the monitored figure
    best: float  # its value (inf when none)
    stopped_at: int | None  # the epoch early stopping ended the run at, or None if it ran every epoch given


def choose_epoch(history: list[dict[str, float]], monitor: str, patience: int) -> Choice:
    """The epoch a run with this monitor and patience keeps, given the per-epoch rows of ``history.csv``."""
    best, best_epoch = math.inf, None
    for epoch, row in enumerate(history, start=1):
        value = monitored(row, monitor)
        if not math.isfinite(value):  # Keras's EarlyStopping skips an epoch without the figure
            continue
        if value < best:
            best, best_epoch = value, epoch
        elif patience and epoch - (best_epoch or 0) >= patience:
            return Choice(best_epoch, best, epoch)
    return Choice(best_epoch, best, None)
