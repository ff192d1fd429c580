"""How fast ``facekit serve`` answers over HTTP on this machine, against the predictor called directly.

    python -m benchmarks.serve_speed [--model PATH] [--requests 100] [--clients 1 4] [--tag NAME]

Starts ``facekit serve`` as users do (its own process, 127.0.0.1, a free port), then for each client count
sends ``--requests`` chips, each client one request at a time, and records requests per second and the
latency's median and 95th percentile, measured at the client (upload, detection, alignment, the model and
the JSON answer). Then, the server stopped, ``Predictor.image`` on the same chips in this process: what the
HTTP layer costs. Without ``--model``, the default Model B recipe's export, untrained (speed does not depend
on the weights). Bounded loops against 127.0.0.1 only. Writes benchmarks/results/serve_speed[-TAG].json and
.md; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import TRAIN_VAL, report, save
from benchmarks.predict_speed import default_models


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, server: subprocess.Popen, timeout: float = 180.0) -> float:
    """Seconds until ``facekit serve`` answers /health; RuntimeError with its stderr if it stops or never does."""
    import httpx

    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"facekit serve stopped: {server.stderr.read()[-2000:] if server.stderr else ''}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            time.sleep(0.5)
    raise RuntimeError(f"facekit serve did not answer {url}/health in {timeout:.0f} s")


def latency_figures(seconds: list[float], wall: float) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {"requests": len(ms), "requests_per_second": round(len(ms) / wall, 2),
            "p50_ms": round(statistics.median(ms), 1),
            "p95_ms": round(ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))], 1)}


def load_test(url: str, chips: list[Path], clients: int) -> dict[str, float]:
    """Each of ``clients`` threads posts its share of ``chips`` one after the other."""
    import httpx

    bodies = [(p.name, p.read_bytes()) for p in chips]

    def one_client(share: list[tuple[str, bytes]]) -> list[float]:
        took = []
        with httpx.Client(timeout=120) as client:
            for name, body in share:
                t = time.perf_counter()
                res = client.post(f"{url}/predict", files={"file": (name, body)})
                took.append(time.perf_counter() - t)
                if res.status_code not in (200, 422):  # 422: a chip where no face was found
                    raise RuntimeError(f"{name}: the service answered {res.status_code}: {res.text[:300]}")
        return took

    shares = [bodies[i::clients] for i in range(clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        seconds = [s for part in pool.map(one_client, shares) for s in part]
    return {"clients": clients, **latency_figures(seconds, time.perf_counter() - start)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="a Model B (or A) file; default: the untrained default B")
    ap.add_argument("--requests", type=int, default=100, help="chips sent per client count")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    os.environ.setdefault("FACEKIT_MODEL_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "models"))
    import httpx

    from facekit.inference.load import load
    from facekit.inference.predict import Predictor

    every = sorted(TRAIN_VAL.iterdir())
    chips = every[:: max(1, len(every) // args.requests)][: args.requests]
    name = "serve_speed" + (f"-{args.tag}" if args.tag else "")
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or default_models(Path(tmp))["B"]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "facekit_cli.main", "serve", "-m", str(model), "--port",
                                   str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            startup = wait_until_serving(url, server)
            engine = httpx.get(f"{url}/models").json()[0]["engine"]
            load_test(url, chips[:3], 1)  # warm: the first requests trace the model's predict step
            rows = [load_test(url, chips, n) for n in args.clients]
        finally:
            server.terminate()
            server.wait(timeout=60)
        with Predictor([load(model)]) as predictor:  # the same chips, no HTTP, the server gone
            predictor.image(chips[0])
            took = []
            start = time.perf_counter()
            for p in chips:
                t = time.perf_counter()
                predictor.image(p)
                took.append(time.perf_counter() - t)
            direct = latency_figures(took, time.perf_counter() - start)
    result = {"model": str(args.model) if args.model else "untrained default Model B export", "engine": engine,
              "startup_s": round(startup, 1), "http": rows, "direct_predictor": direct}
    for r in rows:
        print(f"{r['clients']} client(s): {r['requests_per_second']} requests/s, p50 {r['p50_ms']} ms, "
              f"p95 {r['p95_ms']} ms")
    print(f"Predictor.image, no HTTP: {direct['requests_per_second']} images/s, p50 {direct['p50_ms']} ms")
    print(f"wrote {save(name, result)}")
    table = ["| clients | requests/s | p50 ms | p95 ms |", "| --- | --- | --- | --- |",
             *(f"| {r['clients']} | {r['requests_per_second']} | {r['p50_ms']} | {r['p95_ms']} |" for r in rows),
             f"| Predictor.image (no HTTP) | {direct['requests_per_second']} | {direct['p50_ms']} | "
             f"{direct['p95_ms']} |"]
    report(name, [f"{result['model']}, engine {engine}, {len(chips)} chips per row; the server started in "
                  f"{result['startup_s']} s (models, face finder and LiteRT conversion)."], table)


if __name__ == "__main__":
    main()
