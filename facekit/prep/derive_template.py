"""``facekit template``: re-derive the alignment template from the chips themselves, with prep's workers."""

from __future__ import annotations

import datetime as dt
import os
import random
from pathlib import Path

import numpy as np

from facekit import __version__
from facekit.data.imageio import list_files
from facekit.data.labels import Label, parse_name
from facekit.face.template import Template, load_template
from facekit.prep.workers import PrepOptions, Progress, map_files


def derive_template(
    folder: str | Path,
    limit: int | None = None,
    workers: int | None = None,
    model_dir: str | None = None,
    progress: Progress | None = None,
    seed: int = 0,
) -> Template:
    """Measure the five points on the chips of ``folder`` and take their median as the template.

    All images must share one square size (the chips' own framing is what is
    being measured). ``limit`` takes a random sample for a quicker estimate.
    """
    from facekit.face.template import template_from_points

    folder = Path(folder)
    files = [p for p in list_files(folder) if isinstance(parse_name(p.name), Label)]
    if not files:
        raise ValueError(f"{folder}: no file with a UTKFace label in its name, so no chip to measure")
    if limit and limit < len(files):
        files = sorted(random.Random(seed).sample(files, limit))
    options = PrepOptions()
    current = load_template()
    points, sizes = [], set()
    for i, rec in enumerate(map_files([str(p) for p in files], options, current, workers or os.cpu_count() or 1,
                                      model_dir)):
        if progress:
            progress(i + 1, len(files))
        if rec.error:
            continue
        points.append(rec.points)
        sizes.add(rec.size)
    if not sizes:
        raise ValueError(f"{folder}: none of the {len(files)} images could be read")
    if len(sizes) != 1:
        raise ValueError(f"{folder}: images of several sizes {sorted(sizes)}; a template needs chips of one size")
    (h, w), = sizes
    if h != w:
        raise ValueError(f"{folder}: chips are {w} x {h}; a template needs square chips")
    meta = {
        "source_dir": folder.name,
        "images": len(points),
        "statistic": "median over chips of the FaceFinder points (padded detection)",
        "command": f"facekit template {folder.name}" + (f" --limit {limit}" if limit else ""),
        "facekit_version": __version__,
        "created": dt.date.today().isoformat(),
    }
    return template_from_points(np.stack(points), h, meta)
