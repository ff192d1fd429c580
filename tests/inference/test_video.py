"""Video in ``facekit predict``: sampling, tracking, pooling, records, the annotated copy, damaged files, Ctrl-C.

The clips are built from real chips moving over a background (``benchmarks.video_speed.make_clip``), so every
face, track and frame count is known.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks.video_speed import make_clip
from facekit.data.video import VideoReadError, VideoSource, is_video
from facekit.inference.load import load
from facekit.inference.predict import FrameResult, Predictor, VideoResult, count_units, expand_inputs
from facekit.inference.records import ModelInfo, records
from facekit.inference.tracking import MAX_MISSED, Tracker, quality
from facekit_cli.main import app
from tests.conftest import ROOT
from tests.inference.test_predict import _validator

runner = CliRunner()
GONE = range(12, 28)  # face 1 leaves for 16 sampled frames (> MAX_MISSED) and comes back


def leaves_and_returns(f: int) -> list[tuple[int, float, float]]:
    """Face 0 crosses the top left for the whole clip; face 1 sits on the right, gone during GONE."""
    return [(0, 10 + 6 * f, 30)] + ([] if f in GONE else [(1, 440, 150)])


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, chip_sample: list[Path]) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    faces = chip_sample[4:6]
    made = {
        "clip": make_clip(d / "clip.mp4", faces, 40, 10, leaves_and_returns),  # 4 s at 10 frames a second
        "fast": make_clip(d / "fast.mp4", faces, 30, 30, leaves_and_returns),  # 1 s at 30: sampled at 10
        "mjpg": make_clip(d / "whole.avi", faces, 40, 10, leaves_and_returns),
    }
    data = made["mjpg"].read_bytes()
    (d / "cut.avi").write_bytes(data[: len(data) // 2])  # Motion JPEG cut half-way: the first frames decode
    data = made["clip"].read_bytes()
    (d / "cut.mp4").write_bytes(data[: len(data) // 2])  # MP4 cut half-way: its index is gone, nothing opens
    (d / "zero.mp4").write_bytes(b"")
    (d / "text.mov").write_text("not a video\n" * 50)
    writer = cv2.VideoWriter(str(d / "no_frames.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    writer.release()  # a valid container holding zero frames
    return {**made, **{p.stem: p for p in d.iterdir() if p.stem in ("cut", "zero", "text", "no_frames")},
            "cut_avi": d / "cut.avi", "cut_mp4": d / "cut.mp4"}


@pytest.fixture(scope="module")
def loaded(tiny_models):
    return [load(tiny_models["A"]), load(tiny_models["B"])]


def _face(x: float, y: float, side: float = 100.0, turn: float = 0.0, score: float = math.nan):
    """A detection as the finder gives it: a box and five points (eyes, nose shifted by ``turn`` eye widths)."""
    eye = side * 0.3
    points = np.array([[x + side * 0.35, y + side * 0.4], [x + side * 0.35 + eye, y + side * 0.4],
                       [x + side * 0.5 + turn * eye, y + side * 0.6], [x + side * 0.38, y + side * 0.8],
                       [x + side * 0.62, y + side * 0.8]], np.float32)
    return SimpleNamespace(box=(x, y, x + side, y + side), points=points, score=score)


def test_tracks_follow_moving_faces_and_end_after_missed_frames():
    tracker = Tracker()
    ids = []
    for f in range(30):
        faces = [_face(10 + 8 * f, 20)]  # moving right, 8 px a frame
        if f < 5 or 5 + MAX_MISSED <= f < 12 or f >= 12 + MAX_MISSED + 1:
            faces.append(_face(400, 200))  # gone for MAX_MISSED frames (kept), then MAX_MISSED + 1 (ended)
        ids.append([t.id for t in tracker.update(f, f / 10, faces)])
    assert all(row[0] == 1 for row in ids)
    assert {row[1] for row in ids[:12] if len(row) > 1} == {2}  # the short gap kept the track
    assert {row[1] for row in ids[12:] if len(row) > 1} == {3}  # the long gap ended it
    assert [t.frames for t in tracker.tracks] == [30, 5 + 12 - (5 + MAX_MISSED), 30 - (12 + MAX_MISSED + 1)]


def test_overlapping_faces_keep_their_tracks_by_landmarks_and_velocity():
    """Two faces that pass each other: boxes overlap half-way, the velocity and points keep them apart."""
    tracker = Tracker()
    for f in range(20):
        order = sorted([("a", _face(50 + 15 * f, 100)), ("b", _face(350 - 15 * f, 110))],
                       key=lambda named: named[1].box[0])  # as the finder lists them: left to right
        got = tracker.update(f, f / 10, [face for _, face in order])
        assert {name: t.id for (name, _), t in zip(order, got)} == {"a": 1, "b": 2}, f
    assert len(tracker.tracks) == 2


def test_pooling_weights_large_frontal_confident_faces():
    big, small, turned = _face(0, 0, 200), _face(0, 0, 40), _face(0, 0, 200, turn=0.6)
    assert quality(big.box, big.points) == pytest.approx(1.0)
    assert quality(small.box, small.points) < quality(big.box, big.points)
    assert quality(turned.box, turned.points) < quality(big.box, big.points)
    assert quality(big.box, big.points, 0.5) == pytest.approx(0.5)
    tracker = Tracker()
    faces = [big, small, turned, _face(0, 0, 200, score=0.7)]
    answers = [(30.0, 0.9), (60.0, 0.2), (45.0, 0.4), (35.0, 0.8)]
    (track,) = tracker.update(0, 0.0, [faces[0]])
    for face, (age, p) in zip(faces, answers):
        tracker.observe(track, face, {"B": {"age": age, "p_female": p}})
    w = np.array([quality(f.box, f.points, f.score) for f in faces])
    ages, ps = np.array([a for a, _ in answers]), np.array([p for _, p in answers])
    est = track.estimate()["B"]
    assert est["age"] == pytest.approx(np.average(ages, weights=w), abs=0.05)
    assert est["age_std"] == pytest.approx(math.sqrt(np.average((ages - np.average(ages, weights=w)) ** 2,
                                                                 weights=w)), abs=0.01)
    assert est["p_female"] == pytest.approx(np.average(ps, weights=w), abs=1e-4)
    assert est["gender"] == ("female" if np.average(ps, weights=w) >= 0.5 else "male")


def test_sampling_follows_the_rate_asked(clips):
    with VideoSource(clips["fast"]) as src:  # 30 frames a second, default sampling: at most 10 a second
        picked = [(f.index, f.time_s) for f in src.frames()]
        assert src.expected_samples == len(picked) == 10
    assert [i for i, _ in picked] == list(range(0, 30, 3)) and picked[1][1] == pytest.approx(0.1)
    with VideoSource(clips["fast"], fps=4) as src:
        assert [f.index for f in src.frames()] == [0, 8, 15, 23] and src.expected_samples == 4
    with VideoSource(clips["clip"], fps=50) as src:  # never more than the video has
        assert sum(1 for _ in src.frames()) == 40 and src.rate == 10


def test_damaged_and_empty_videos_say_why(clips):
    with VideoSource(clips["cut_avi"]) as src:
        decoded = sum(1 for _ in src.frames())
        assert 0 < decoded < 40 and src.frame_count == 40
        assert f"decoding stopped at frame {decoded} of the 40" in src.warning and "cut.avi" in src.warning
    for name, words, kind in (("cut_mp4", "cannot be read as a video", "not_video"),
                              ("zero", "empty file", "empty"),
                              ("text", "cannot be read as a video", "not_video"),
                              ("no_frames", "no frame could be decoded", "damaged")):
        with pytest.raises(VideoReadError, match=words) as err:
            with VideoSource(clips[name]) as src:
                list(src.frames())
        assert str(clips[name]) in str(err.value) and err.value.kind == kind, name
    with pytest.raises(VideoReadError, match="file not found"):
        VideoSource(clips["clip"].with_name("missing.mp4"))


def test_folders_and_odd_names_reach_the_video_path(clips, tmp_path: Path):
    odd = tmp_path / "camera.bin"
    odd.write_bytes(clips["clip"].read_bytes())
    assert is_video(odd) and is_video(clips["text"]) and not is_video(tmp_path / "x.jpg")
    found = expand_inputs([clips["clip"].parent])
    assert {p.name for p in found} >= {"clip.mp4", "whole.avi", "cut.avi", "text.mov"}
    assert count_units([clips["fast"], clips["clip"], clips["zero"], tmp_path / "x.jpg"]) == 10 + 40 + 1 + 1


def test_clip_tracks_summaries_records_and_annotated_video(clips, loaded, tmp_path: Path):
    """Two known faces, one leaving for 16 frames and returning: three tracks, each pooled over its frames."""
    with Predictor(loaded, annotate_dir=tmp_path / "ann", engine="keras") as predictor:
        results = list(predictor.stream([clips["clip"]]))
    frames = [r for r in results if isinstance(r, FrameResult)]
    (video,) = [r for r in results if isinstance(r, VideoResult)]
    assert results[-1] is video and len(frames) == 40 and video.frames == 40 and video.size == (640, 360)
    assert [len(fr.faces) for fr in frames] == [1 if f in GONE else 2 for f in range(40)]
    assert [(t.track, t.frames, t.first_frame, t.last_frame) for t in video.tracks] == [
        (1, 40, 0, 39), (2, 12, 0, 11), (3, 12, 28, 39)]
    assert video.tracks[2].first_time_s == pytest.approx(2.8) and video.tracks[2].last_time_s == pytest.approx(3.9)
    assert all(f.track == 1 for fr in frames for f in fr.faces if f.box[0] < 320)
    infos = [ModelInfo.of(lm) for lm in loaded]
    recs = [r for res in results for r in records(res, infos)]
    validator = _validator("record")
    for r in recs:
        assert not [e.message for e in validator.iter_errors(r)], r
    by_kind = {k: [r for r in recs if r["kind"] == k] for k in ("frame", "track")}
    assert len(by_kind["frame"]) == 2 * (40 + 24) and len(by_kind["track"]) == 2 * 3
    for t in by_kind["track"]:  # the summary is the quality-weighted mean of the track's own frame records
        own = [r for r in by_kind["frame"] if r["track"] == t["track"] and r["model"] == t["model"]]
        assert len(own) == t["frames"]
        w = [quality(r["box"], np.array(list(r["landmarks"].values()))) for r in own]
        assert t["age"] == pytest.approx(np.average([r["age"] for r in own], weights=w), abs=0.06)
        assert t["p_female"] == pytest.approx(np.average([r["p_female"] for r in own], weights=w), abs=2e-4)
    cap = cv2.VideoCapture(video.annotated)
    assert Path(video.annotated).name == "clip.annotated.mp4" and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 40 == sum(1 for _ in iter(lambda: cap.read()[0], False))
    assert not list((tmp_path / "ann").glob(".*"))  # no temporary file left


@pytest.mark.slow
def test_predict_cli_on_a_folder_of_photos_and_videos(clips, tiny_models, chip_sample, tmp_path: Path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("clip", "cut_avi", "zero", "text"):
        (folder / clips[name].name).write_bytes(clips[name].read_bytes())
    (folder / "a_photo.jpg").write_bytes(chip_sample[4].read_bytes())
    args = ["predict", str(folder), "-m", str(tiny_models["B"]), "--engine", "keras", "--fps", "5"]
    res = runner.invoke(app, [*args, "--jsonl"])
    assert res.exit_code == 0, res.output
    with VideoSource(clips["cut_avi"], fps=5) as src:
        cut_frames = sum(1 for _ in src.frames())
    recs = [json.loads(line) for line in res.stdout.splitlines()]
    kinds = {}
    for r in recs:
        kinds.setdefault((Path(r["image"]).name, r["kind"], r["status"]), []).append(r)
    assert set(kinds) == {("a_photo.jpg", "image", "ok"), ("clip.mp4", "frame", "ok"), ("clip.mp4", "track", "ok"),
                          ("cut.avi", "frame", "ok"), ("cut.avi", "track", "ok"),
                          ("text.mov", "video", "unreadable"), ("zero.mp4", "video", "unreadable")}
    assert sorted({r["frame"] for r in kinds[("clip.mp4", "frame", "ok")]}) == list(range(0, 40, 2))  # 5 of 10 a s
    assert len(kinds[("clip.mp4", "track", "ok")]) == 3 and len(kinds[("cut.avi", "track", "ok")]) == 2
    assert "cut.avi: decoding stopped at frame" in res.stderr and "empty file" in res.stderr
    assert "text.mov: cannot be read as a video" in res.stderr and "Traceback" not in res.output
    assert "2 unreadable" in res.stderr
    assert f"1 of 1 image and 4 videos ({20 + cut_frames} frames, 5 tracks)" in res.stderr
    doc = runner.invoke(app, [*args, "-o", str(tmp_path / "out.json")])
    data = json.loads((tmp_path / "out.json").read_text())
    assert doc.exit_code == 0 and not [e.message for e in _validator("document").iter_errors(data)]
    summary = data["summary"]
    assert summary["videos"] == 4 and summary["tracks"] == 5 and summary["frames"] == 20 + cut_frames
    assert any("decoding stopped" in w for w in data["warnings"])
    text = runner.invoke(app, ["predict", str(clips["clip"]), "-m", str(tiny_models["B"]), "--engine", "keras",
                               "--annotate", str(tmp_path / "ann")])
    assert text.exit_code == 0, text.output
    assert "track" in text.stdout and "0.0-3.9" in text.stdout and "clip.annotated.mp4" in text.stdout
    assert "3 tracks" in text.stderr
    broken = runner.invoke(app, ["predict", str(clips["cut_mp4"]), "-m", str(tiny_models["B"]), "--engine", "keras"])
    assert broken.exit_code == 1 and "cut.mp4: cannot be read as a video" in broken.stderr


@pytest.mark.slow
def test_ctrl_c_keeps_every_record_and_frame_answered(chip_sample, tiny_models, tmp_path: Path):
    """SIGINT half-way through a long clip: exit 130, valid JSON lines up to there with the tracks so far, and an
    annotated video holding exactly the frames answered."""
    clip = make_clip(tmp_path / "long.mp4", chip_sample[4:6], 600, 10,
                     lambda f: [(0, 10 + 4 * abs(f % 120 - 60), 30)])  # one face gliding to and fro
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "facekit_cli.main", "predict", str(clip), "-m",
                             str(tiny_models["B"]), "--engine", "keras", "--jsonl", "--annotate",
                             str(tmp_path / "ann")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    # stdout is read to its end through the one file object: communicate() after a break would read the pipe
    # behind the lines this object had already buffered, and lose them. stderr drains in a thread meanwhile.
    said: list[str] = []
    drain = threading.Thread(target=lambda: said.append(proc.stderr.read()), daemon=True)
    drain.start()
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if len(lines) == 15:
            proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    drain.join(60)
    err = said[0]
    assert proc.returncode == 130, err[-3000:]
    recs = [json.loads(line) for line in lines]
    frames = [r for r in recs if r["kind"] == "frame"]
    (track,) = [r for r in recs if r["kind"] == "track"]
    assert 15 <= len(frames) < 600 and "interrupted" in err and track["first_frame"] == 0
    cap = cv2.VideoCapture(str(tmp_path / "ann" / "long.annotated.mp4"))
    annotated = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    # A frame is pooled and drawn before it is handed to the writer of records; a Ctrl-C landing in between
    # leaves it in the summary and the video but not in the lines: one frame at most.
    assert len(frames) <= track["frames"] <= len(frames) + 1 and annotated in (track["frames"], track["frames"] - 1)
    assert not list((tmp_path / "ann").glob(".*"))
