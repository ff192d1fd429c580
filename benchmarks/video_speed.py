"""How fast ``facekit predict`` reads a video on this machine: sampled frames per second, end to end.

    python -m benchmarks.video_speed [--model PATH] [--seconds 20] [--fps 10 30] [--tag NAME]

Builds a clip as the tests do (``make_clip``: two UTKFace chips moving over a
textured background, 640x360 at 30 frames a second, ``--seconds`` long), then
runs ``Predictor.stream`` on it at each ``--fps`` (10 is predict's default
sampling; 30 is every frame), with and without ``--annotate``: decoding,
detection, alignment, the model, tracking, pooling and (annotated) the MP4
written. Reports sampled frames per second, how many seconds of video a
second of work covers, and the share of each stage. Model loading and the
once-per-model LiteRT conversion are excluded and reported apart. Without
``--model``, the default Model B recipe's export, untrained (speed does not
depend on the weights). Writes benchmarks/results/video_speed[-TAG].json and
.md; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import TRAIN_VAL, report, save
from benchmarks.predict_speed import default_models, shares

Placement = tuple[int, float, float]  # chip index, x, y of its top-left corner


def make_clip(dest: Path, chips: list[Path], frames: int, fps: float, placements: Callable[[int], list[Placement]],
              size: tuple[int, int] = (640, 360), chip_side: int = 150, seed: int = 0) -> Path:
    """A video of ``chips`` (face images) pasted where ``placements(frame)`` says, over a fixed textured
    background: faces with known identities and paths, for the tests and this benchmark. MP4 (mp4v) or, for a
    ``.avi`` name, Motion JPEG."""
    import cv2
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    noise = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
    background = np.asarray(Image.fromarray(noise).resize((w, h), Image.BILINEAR)) // 2 + 40
    faces = [np.asarray(Image.open(p).convert("RGB").resize((chip_side, chip_side), Image.BICUBIC)) for p in chips]
    codec = "MJPG" if dest.suffix.lower() == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(dest), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"{dest}: OpenCV cannot write {codec} here")
    try:
        for f in range(frames):
            frame = background.copy()
            for index, x, y in placements(f):
                x0, y0 = int(round(x)), int(round(y))
                frame[y0:y0 + chip_side, x0:x0 + chip_side] = faces[index]
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return dest


def two_faces(frames: int, size: tuple[int, int] = (640, 360), chip_side: int = 150) -> Callable[[int], list]:
    """Face 0 crosses the left half and back; face 1 bobs on the right: two tracks for the whole clip."""
    w, h = size

    def where(f: int) -> list[Placement]:
        phase = f / max(1, frames - 1)
        x0 = 10 + (w / 2 - chip_side - 20) * (1 - abs(2 * phase - 1))
        y1 = (h - chip_side) / 2 + 30 * np.sin(2 * np.pi * phase)
        return [(0, x0, 40), (1, w - chip_side - 20, y1)]
    return where


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="a Model B (or A) file; default: the untrained default B")
    ap.add_argument("--seconds", type=float, default=20.0, help="clip length (30 frames a second)")
    ap.add_argument("--fps", type=float, nargs="+", default=[10.0, 30.0], help="sampling rates to measure")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    os.environ.setdefault("FACEKIT_MODEL_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "models"))
    from facekit.inference.load import load
    from facekit.inference.predict import FrameResult, Predictor, VideoResult

    every = sorted(TRAIN_VAL.iterdir())
    chips = every[:: len(every) // 24][4:6]  # the tests' pair: found in every frame, so two tracks
    native, frames = 30.0, int(args.seconds * 30)
    name = "video_speed" + (f"-{args.tag}" if args.tag else "")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", chips, frames, native, two_faces(frames))
        model = args.model or default_models(Path(tmp))["B"]
        t = time.perf_counter()
        loaded = [load(model)]
        for fps in args.fps:
            for annotated in (False, True):
                ann = Path(tmp) / f"ann-{fps:g}" if annotated else None
                with Predictor(loaded, annotate_dir=ann) as predictor:
                    startup = time.perf_counter() - t
                    list(predictor.stream([chips[0]]))  # warm: the first batch traces the model
                    before = predictor.timings
                    start = time.perf_counter()
                    sampled = tracks = 0
                    for res in predictor.stream([clip], fps):
                        sampled += isinstance(res, FrameResult)
                        tracks += len(res.tracks) if isinstance(res, VideoResult) else 0
                    wall = time.perf_counter() - start
                    spent = {k: v - before[k] for k, v in predictor.timings.items()}
                    engine = "litert" if predictor.engines else "keras"
                rows.append({"fps": fps, "annotate": annotated, "frames": sampled, "tracks": tracks,
                             "seconds": round(wall, 2), "frames_per_second": round(sampled / wall, 1),
                             "video_seconds_per_second": round(args.seconds / wall, 2), "shares": shares(spent),
                             "startup_s": round(startup, 1)})
                t = time.perf_counter()
                r = rows[-1]
                print(f"fps {fps:g}{' annotated' if annotated else ''}: {r['frames']} frames in {r['seconds']} s, "
                      f"{r['frames_per_second']} frames/s, {r['video_seconds_per_second']} s of video a second, "
                      f"{r['tracks']} tracks")
    result = {"model": str(args.model) if args.model else "untrained default Model B export", "engine": engine,
              "clip": {"seconds": args.seconds, "native_fps": native, "size": [640, 360], "faces": 2}, "rows": rows}
    print(f"wrote {save(name, result)}")
    table = ["| sampling | annotated video | frames | frames/s | s of video per s | read / detect / align / model |",
             "| --- | --- | --- | --- | --- | --- |",
             *(f"| {r['fps']:g} a second | {'yes' if r['annotate'] else 'no'} | {r['frames']} | "
               f"{r['frames_per_second']} | {r['video_seconds_per_second']} | "
               + " / ".join(f"{r['shares'].get(s, 0):.0%}" for s in ("read", "detect", "align", "model")) + " |"
               for r in rows)]
    report(name, [f"{result['model']}, engine {engine}; a {args.seconds:g} s clip, 640x360 at 30 frames a second, "
                  "two faces (``benchmarks.video_speed.make_clip``). Frames per second count sampled frames, "
                  "end to end: decoding, detection, alignment, the model, tracking and (annotated) the MP4 "
                  "written. Decoding of the frames skipped is in the wall time; the stage shares cover the "
                  "sampled frames only ('read' is zero for video: decoding runs inside the reader thread)."], table)


if __name__ == "__main__":
    main()
