"""`facekit serve` over real HTTP on 127.0.0.1: the same records as `predict --json`, 4xx JSON errors for bad
uploads, concurrent requests on models loaded once; and its page in a real browser."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facekit_cli.main import app

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from benchmarks.serve_speed import free_port, wait_until_serving  # noqa: E402
from facekit.inference.load import load  # noqa: E402
from facekit.serve.app import Service, create_app, is_loopback  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, chip_sample: list[Path]) -> Path:
    d = tmp_path_factory.mktemp("photos")
    chips = [np.asarray(Image.open(p)) for p in chip_sample[4:6]]
    Image.fromarray(np.concatenate(chips, axis=1)).save(d / "two.jpg")  # two faces side by side
    Image.fromarray(chips[0]).save(d / "one.png")
    Image.new("RGB", (300, 200), (90, 90, 90)).save(d / "blank.jpg")
    (d / "notes.jpg").write_bytes(b"\xff\xd8 not really an image")
    Image.new("L", (12_000, 10_000)).save(d / "bomb.png")  # 120 megapixels in a small file
    return d


@pytest.fixture(scope="module")
def server(tiny_models: dict[str, Path]) -> Iterator[tuple[str, Service]]:
    """The service on a free port of 127.0.0.1, models loaded once, in this process's thread."""
    service = Service.load([load(tiny_models["A"], "A"), load(tiny_models["B"], "B")], max_upload_mb=1.0)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}", service
    srv.should_exit = True
    thread.join(timeout=30)
    service.predictor.close()


def post(url: str, path: Path, name: str | None = None, data: bytes | None = None) -> httpx.Response:
    body = path.read_bytes() if data is None else data
    return httpx.post(f"{url}/predict", files={"file": (name or path.name, body)}, timeout=120)


@pytest.mark.slow
def test_predict_answers_what_predict_json_prints(server, photos: Path, tiny_models: dict[str, Path]):
    url, _ = server
    res = post(url, photos / "two.jpg")
    assert res.status_code == 200, res.text
    served = res.json()
    cli = CliRunner().invoke(app, ["predict", str(photos / "two.jpg"), "-m", str(tiny_models["A"]), "-m",
                                   str(tiny_models["B"]), "--json"])
    assert cli.exit_code == 0, cli.output
    printed = json.loads(cli.stdout)
    assert served["schema_version"] == printed["schema_version"] and served["models"] == printed["models"]
    assert len(served["records"]) == 4  # two faces, two models

    def comparable(r: dict) -> dict:
        return {k: v for k, v in r.items() if k != "image"}

    for got, want in zip(served["records"], printed["records"]):
        assert got["image"] == "two.jpg"
        assert comparable(got).keys() == comparable(want).keys()
        assert got["box"] == want["box"] and got["model"] == want["model"] and got["gender"] == want["gender"]
        assert got["age"] == pytest.approx(want["age"], abs=0.11) and got["p_female"] == pytest.approx(
            want["p_female"], abs=2e-3)  # LiteRT in both; one decimal of age


@pytest.mark.slow
def test_bad_uploads_get_json_errors_with_4xx(server, photos: Path):
    url, _ = server
    cases = {
        "notes.jpg": (post(url, photos / "notes.jpg"), 415, "not_an_image"),
        "empty": (post(url, photos / "notes.jpg", "empty.jpg", b""), 415, "not_an_image"),
        "bomb.png": (post(url, photos / "bomb.png"), 413, "too_large"),
        "big upload": (post(url, photos / "one.png", "big.png", b"\0" * (2**20 + 10)), 413, "too_large"),
        "blank.jpg": (post(url, photos / "blank.jpg"), 422, "no_face"),
        "no file": (httpx.post(f"{url}/predict", data={"x": "1"}, timeout=60), 422, "bad_request"),
    }
    for name, (res, status, error) in cases.items():
        assert res.status_code == status, (name, res.status_code, res.text)
        body = res.json()
        assert body["error"] == error and body["detail"] and "Traceback" not in res.text, (name, body)
    assert "megapixels" in cases["bomb.png"][0].json()["detail"]
    assert "/tmp" not in cases["notes.jpg"][0].json()["detail"]  # the upload's own name, not the temp file


@pytest.mark.slow
def test_health_models_and_concurrent_requests(server, photos: Path, tiny_models: dict[str, Path]):
    url, service = server
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    listed = httpx.get(f"{url}/models").json()
    assert [(m["label"], m["kind"]) for m in listed] == [("A", "A"), ("B", "B")]
    assert all(len(m["sha256"]) == 64 and m["engine"] in ("litert", "keras") for m in listed)
    assert "/predict" in httpx.get(f"{url}/openapi.json").json()["paths"]
    predictor = service.predictor
    before = service.requests
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: post(url, photos / "two.jpg"), range(8)))
    assert all(a.status_code == 200 for a in answers)
    first = answers[0].json()["records"]
    assert all(a.json()["records"] == first for a in answers)  # the same answer, whatever ran alongside
    assert service.predictor is predictor and service.requests == before + 8  # nothing loaded twice


def test_only_loopback_is_served_without_a_warning():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_serve_refuses_a_port_in_use_before_loading_anything():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = CliRunner().invoke(app, ["serve", "-m", "nothing.keras", "--port", str(port)])
    assert res.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in res.output


@pytest.mark.slow
def test_the_page_draws_a_labelled_box_per_face(tiny_models: dict[str, Path], photos: Path, tmp_path: Path):
    """The page in headless Chromium (Debian's, driven by Playwright): a photo with two faces is picked, and
    two labelled boxes are drawn. The service runs as users start it, `facekit serve`, in its own process."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no browser at {CHROMIUM}: .ci/run installs Debian's chromium (apt-get install chromium)")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "facekit_cli.main", "serve", "-m", str(tiny_models["A"]), "-m",
                             str(tiny_models["B"]), "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", proc)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.set_input_files("#file", str(photos / "two.jpg"))
            page.wait_for_function("document.getElementById('canvas').dataset.faces !== undefined", timeout=120_000)
            faces = page.eval_on_selector("#canvas", "c => Number(c.dataset.faces)")
            labels = json.loads(page.eval_on_selector("#canvas", "c => c.dataset.labels"))
            size = page.eval_on_selector("#canvas", "c => [c.width, c.height]")
            shot = page.screenshot(full_page=True)
            (tmp_path / "page.png").write_bytes(shot)
            status = page.inner_text("#status")
            browser.close()
        assert faces == 2 and len(labels) == 2, (faces, labels, status)
        assert all(label.startswith("A: ") and "  B: " in label and "%" in label for label in labels), labels
        assert size[0] == 2 * size[1] >= 256 and "2 faces in two.jpg" in status, (size, status)  # 256 x 128
        assert Image.open(io.BytesIO(shot)).size[0] > 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
