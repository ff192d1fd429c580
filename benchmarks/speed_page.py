"""The results page's "Speed" section: one line of figures per speed results file, read from it.

The speed benchmarks each write their own JSON shape; ``HEADLINES`` maps a results file's name (its
benchmark, before any ``-tag``) to the function that says what it measured in one table cell, so
docs/benchmarks.md and docs/predict.md link to the figures instead of typing them a second time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.common import RESULTS, model_letter, table


def _prep(d: dict[str, Any]) -> str:
    return (f"{d['images']:,} chips: one process {d['serial_images_per_s']} images/s, {d['workers']} workers "
            f"{d['parallel_images_per_s']} images/s (x{d['speedup']})")


def _pipeline(d: dict[str, Any]) -> str:
    each = "; ".join(f"{r['workers']} thread{'s' if r['workers'] > 1 else ''} {r['images_per_s']:,.0f} images/s"
                     for r in d["rows"])
    return f"{d['augment']} augmentation, batches of {d['batch_size']}: {each}"


def _predict(d: dict[str, Any]) -> str:
    parts = []
    for letter in ("B", "A"):
        if m := d.get(f"model_{letter}"):
            one, folder = m["single_image"], m["folder"]
            parts.append(f"Model {letter} ({m['engine']}): {one['median_ms_per_face']} ms a face one image at a time "
                         f"(median; p90 {one['p90_ms_per_face']}), {folder['faces_per_second']} faces/s over a "
                         f"folder of {folder['faces']}")
    return "; ".join(parts)


def _train(d: dict[str, Any]) -> str:
    changed = ", ".join(f"{k}={v}" for k, v in (d.get("overrides") or {}).items())
    rows = "; ".join(f"{design}: {r['train_images_per_second']} training images/s, {r['predict_ms_per_image']} ms an "
                     "image exported" for design, r in d["rows"].items())
    return f"{d['backend']}{f' ({changed})' if changed else ''}: {rows}"


def _fit(d: dict[str, Any]) -> str:
    mine, patched = d["rows"]["facekit"], d["rows"]["patched"]
    return (f"Model {model_letter(d['task'])}, {d['steps']} steps: as shipped {mine['seconds_per_step']} s a step "
            f"({mine['images_per_second']} images/s, peak {mine['peak_rss_mb']:,.0f} MB); with TensorFlow's malloc "
            f"patch {patched['seconds_per_step']} s ({patched['images_per_second']} images/s, "
            f"{patched['minor_faults_per_step']:,.0f} page faults a step against "
            f"{mine['minor_faults_per_step']:,.0f}): x{d['speedup']}")


def _scale(d: dict[str, Any]) -> str:
    parts = [f"{d['images']:,} images"]
    if p := d.get("prep"):
        parts.append(f"prep {p['seconds']:,.0f} s ({p['images_per_second']} images/s, peak {p['peak_rss_mb']:,.0f} MB)")
    if p := d.get("prep_after_adding_1_percent"):
        parts.append(f"prep again after adding 1 % {p['seconds']:,.0f} s")
    for mode in ("memory", "stream"):
        if t := d.get(f"train_{mode}"):
            parts.append(f"training, crops {'in memory' if mode == 'memory' else 'streamed'}: "
                         f"{t['train_images_per_second']} images/s, peak {t['peak_rss_mb']:,.0f} MB")
    return "; ".join(parts)


def _serve(d: dict[str, Any]) -> str:
    http = "; ".join(f"{r['clients']} client{'s' if r['clients'] > 1 else ''} {r['requests_per_second']} requests/s "
                     f"(p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms)" for r in d["http"])
    return f"{d['model']} ({d['engine']}) over HTTP: {http}"


def _video(d: dict[str, Any]) -> str:
    rows = "; ".join(f"{r['fps']:g} fps{' annotated' if r['annotate'] else ''}: {r['frames_per_second']} frames/s "
                     f"({r['video_seconds_per_second']}x real time)" for r in d["rows"])
    return f"a {d['clip']['seconds']:g} s clip, {d['clip']['faces']} faces: {rows}"


HEADLINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "prep": _prep,
    "pipeline": _pipeline,
    "predict_speed": _predict,
    "train_speed": _train,
    "fit_speed": _fit,
    "scale": _scale,
    "serve_speed": _serve,
    "video_speed": _video,
}


# Results files written before benchmarks.common.cpu_model named AVX-512 (2026-12-06) on machines that had it;
# docs/benchmarks.md said so beside their figures until their figures moved to this section.
AVX512_BEFORE_LABEL = frozenset({"fit_speed", "train_speed-a-residual", "train_speed-wide-a"})


def machine(name: str, data: dict[str, Any]) -> str:
    named = str(data.get("machine", "-"))
    return f"{named}, AVX-512" if name in AVX512_BEFORE_LABEL and "AVX-512" not in named else named


def benchmark_of(name: str) -> str | None:
    """The benchmark a results file belongs to (``train_speed-cpu-jax`` -> ``train_speed``), if a speed one."""
    head = name.split("-", 1)[0]
    return head if head in HEADLINES else None


def speed_block(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    for name, data in results.items():
        if (bench := benchmark_of(name)) is None:
            continue
        md = RESULTS / f"{name}.md"
        link = f"[{name}](../benchmarks/results/{name}.md)" if md.exists() else f"`{name}.json`"
        rows.append([f"`benchmarks.{bench}`", HEADLINES[bench](data), machine(name, data),
                     str(data.get("date", "-"))[:10], str(data.get("commit", "-")), link])
    return table(["benchmark", "measured", "machine", "date", "commit", "results"], rows)
