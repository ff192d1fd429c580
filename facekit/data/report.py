"""The quality report of a prep run: counts, rejections, duplicates, label histograms, contact sheets."""

from __future__ import annotations

import collections
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from PIL import Image, ImageDraw

from facekit.data.labels import AGE_BANDS, age_band
from facekit.utils.atomic import atomic_path

CAPTION_H = 16


LABELS = ("age", "gender", "race")


def find_duplicates(kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Groups of files with identical pixels; ``differs`` names the labels they disagree on.

    ``conflict`` is true only where age or gender differ, the labels the models
    learn; a group differing in race alone is listed but not called a conflict.
    """
    groups: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in kept:
        groups[row["sha"]].append(row)
    out = []
    for rows in groups.values():
        if len(rows) < 2:
            continue
        differs = [k for k in LABELS if len({r[k] for r in rows}) > 1]
        out.append({
            "files": [{"file": r["file"], "age": r["age"], "gender": r["gender"], "race": r["race"]} for r in rows],
            "differs": differs,
            "conflict": bool({"age", "gender"} & set(differs)),
        })
    return out


def build_report(
    folder: Path,
    cache: Path,
    files: list[Path],
    kept: list[dict[str, Any]],
    rejected: list[dict[str, str]],
    repaired: list[dict[str, Any]],
    unreadable: list[dict[str, str]],
    dropped: list[str],
    options: Any,
) -> dict[str, Any]:
    dups = find_duplicates(kept)
    ages = [r["age"] for r in kept]
    bands = collections.Counter(age_band(a) for a in ages)
    no_face = [r["file"] for r in kept if not r["aligned"]] if options.align else []
    return {
        "source_dir": str(folder.resolve()),
        "cache": str(cache),
        "options": asdict(options),
        "counts": {
            "files": len(files),
            "labelled": len(files) - len(rejected),
            "rejected_names": len(rejected),
            "repaired_names": len(repaired),
            "unreadable": len(unreadable),
            "cached": len(kept),
            "aligned": sum(r["aligned"] for r in kept),
            "no_face": len(no_face) + len(dropped),
            "dropped_no_face": len(dropped),
            "several_faces": sum(r["n_faces"] > 1 for r in kept),
            "duplicate_groups": len(dups),
            "conflicting_duplicate_groups": sum(d["conflict"] for d in dups),  # age or gender differ
            "race_only_duplicate_groups": sum(d["differs"] == ["race"] for d in dups),
        },
        "rejections_by_reason": dict(collections.Counter(r["reason"] for r in rejected)),
        "rejected": rejected,
        "repaired": repaired,
        "unreadable": unreadable,
        "no_face": no_face + dropped,
        "duplicates": dups,
        "histograms": {
            "age_band": {b: bands[b] for b in AGE_BANDS if b in bands},
            "gender": {"male": sum(r["gender"] == 0 for r in kept), "female": sum(r["gender"] == 1 for r in kept)},
            "race": {str(k): v for k, v in sorted(collections.Counter(r["race"] for r in kept).items())},
            "age": {"min": min(ages), "max": max(ages), "mean": round(float(np.mean(ages)), 2),
                    "median": float(np.median(ages))},
        },
    }


def tile(img: np.ndarray, caption: str) -> Image.Image:
    tile = Image.new("RGB", (img.shape[1], img.shape[0] + CAPTION_H), "white")
    tile.paste(Image.fromarray(img), (0, 0))
    ImageDraw.Draw(tile).text((4, img.shape[0] + 2), caption, fill="black")
    return tile


def save_grid(tiles: list[Image.Image], dest: Path, cols: int) -> Path:
    rows = (len(tiles) + cols - 1) // cols
    w, h = tiles[0].size
    sheet = Image.new("RGB", (cols * w, rows * h), "white")
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * w, (i // cols) * h))
    with atomic_path(dest) as tmp:
        sheet.save(tmp, format="PNG")
    return dest


def contact_sheet(cache: Path, dest: Path, n: int = 24, seed: int = 0, cols: int = 6) -> Path:
    """Random cached crops with their age and gender, as the course asks to show."""
    with h5py.File(cache, "r") as f:
        total = f["age"].shape[0]
        idx = sorted(random.Random(seed).sample(range(total), min(n, total)))
        images = f["images"][idx]
        ages, genders = f["age"][idx], f["gender"][idx]
        aligned = f["aligned"][idx]
    tiles = [
        tile(img, f"{a} {'F' if g else 'M'}{'' if al else ' (unaligned)'}")
        for img, a, g, al in zip(images, ages, genders, aligned)
    ]
    return save_grid(tiles, dest, cols)


def pairs_sheet(pairs: list[tuple[np.ndarray, np.ndarray, str]], dest: Path, cols: int = 4) -> Path:
    """Original (letterboxed) next to aligned crop, to see what alignment did."""
    tiles = []
    for orig, aligned, caption in pairs:
        both = np.concatenate([orig, aligned], axis=1)
        tiles.append(tile(both, f"original | aligned   {caption}"))
    return save_grid(tiles, dest, cols)


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A short human summary, shared by the CLI and anything else that prints a report."""
    c = report["counts"]
    lines = [
        f"files {c['files']}, labelled {c['labelled']}, cached {c['cached']} "
        f"(aligned {c['aligned']}, no face {c['no_face']}, dropped {c['dropped_no_face']})",
        f"rejected names {c['rejected_names']}, repaired names {c['repaired_names']}, unreadable {c['unreadable']}",
        f"duplicate groups {c['duplicate_groups']} ({c['conflicting_duplicate_groups']} with a different age or "
        f"gender, {c.get('race_only_duplicate_groups', 0)} differing in race only)",
    ]
    if report["rejections_by_reason"]:
        by_reason = report["rejections_by_reason"].items()
        lines.append("rejections by reason: " + ", ".join(f"{k} {v}" for k, v in by_reason))
    for r in report["rejected"][:10]:
        lines.append(f"  rejected  {r['file']}: {r['detail']}")
    for r in report["repaired"][:10]:
        lines.append(f"  repaired  {r['file']}: {', '.join(r['notes'])}")
    for r in report["unreadable"][:10]:
        lines.append(f"  unreadable {r['reason']}")
    for name in report["no_face"][:10]:
        lines.append(f"  no face   {name}")
    for d in [d for d in report["duplicates"] if d["conflict"]][:5]:
        labels = "; ".join(f"{f['file']} ({f['age']}, {'F' if f['gender'] else 'M'})" for f in d["files"])
        differs = " and ".join(d.get("differs", [])) or "labels"
        lines.append(f"  duplicate, {differs} differ: {labels}")
    shown = {"rejected": 10, "unreadable": 10, "no_face": 10}
    if any(len(report[k]) > n for k, n in shown.items()) or sum(d["conflict"] for d in report["duplicates"]) > 5:
        lines.append("  (more in the report JSON)")
    h = report["histograms"]
    lines.append("age bands " + ", ".join(f"{k}: {v}" for k, v in h["age_band"].items()))
    lines.append(f"gender male {h['gender']['male']}, female {h['gender']['female']}; "
                 "race " + ", ".join(f"{k}: {v}" for k, v in h["race"].items()))
    return lines
