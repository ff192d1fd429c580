"""Matplotlib figures written as PNG files: one place for the headless backend and atomic saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facekit.utils.atomic import atomic_path


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (training and evaluation run on machines with no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, dest: Path) -> Path:
    """Lay out, write atomically as PNG, and close the figure."""
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png")
    pyplot().close(fig)
    return dest
