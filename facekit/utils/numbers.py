"""The one range check for every numeric option: training options (their declarations in engine.recipe) and
the other commands' own numbers (--worst, --limit, --samples, --min-confidence ...) are refused by it, NaN and
infinities included, while the command line is parsed."""

from __future__ import annotations

import math


def check_range(what: str, value: int | float | None, *, low: float | None = None, high: float | None = None,
                above: float | None = None, below: float | None = None) -> None:
    """Raise ValueError naming ``what`` when ``value`` is outside the range. A NaN compares false with every
    bound, so a plain comparison lets it through: any bounded number must be finite first."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    bounded = any(b is not None for b in (low, high, above, below))
    if bounded and not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value}")
    if low is not None and value < low:
        raise ValueError(f"{what} must be at least {low:g}, got {value:g}")
    if high is not None and value > high:
        raise ValueError(f"{what} must be at most {high:g}, got {value:g}")
    if above is not None and value <= above:
        raise ValueError(f"{what} must be greater than {above:g}, got {value:g}")
    if below is not None and value >= below:
        raise ValueError(f"{what} must be less than {below:g}, got {value:g}")
