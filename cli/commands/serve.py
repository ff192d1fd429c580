"""`facekit serve`: the predictor as a local HTTP service with a web page (docs/serve.md)."""

from __future__ import annotations

import importlib.util
import socket
from typing import Annotated

import typer
from rich.markup import escape

from facekit_cli.options import Engine, ModelDirOpt, load_models, ranged, value_of
from facekit_cli.ui import console, err_console, fail, reason

SERVE_PACKAGES = ("fastapi", "uvicorn", "multipart")  # python-multipart imports as `multipart`


def serve(
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="A, B or a .keras path; repeat for "
                                                    "several (default: B).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on. Only this machine can reach the default; "
                                      "another address is served with a warning.")] = "127.0.0.1",
    port: Annotated[int, ranged(low=1, high=65535, help="Port to listen on.")] = 8000,
    max_upload_mb: Annotated[float, ranged(above=0, help="Largest upload accepted, in MB.")] = 20.0,
    engine: Annotated[Engine, typer.Option(help="What runs the models, as for predict.")] = Engine("auto"),
    model_dir: ModelDirOpt = None,
    project: Annotated[str, typer.Option(help="Runs folder searched for A / B.")] = "runs",
) -> None:
    """Serve age and gender over HTTP: a page at / to try a photo, POST /predict for programs (the records
    of `predict --json`), GET /health and /models, and the API's own page at /docs."""
    missing = [p for p in SERVE_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        fail("facekit serve needs FastAPI, uvicorn and python-multipart: pip install 'facekit[serve]'")
    import uvicorn

    from facekit.serve.app import Service, create_app, is_loopback
    from facekit.utils.modelfiles import ModelFileError

    if not is_loopback(host):
        err_console.print(f"[bold yellow]warning:[/] serving on {escape(host)}: other machines on the network can "
                          "send photos to this service and read its answers; it has no login", highlight=False,
                          soft_wrap=True)
    try:  # before the models load: a port in use is said in a second, not after the loading
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:  # the port is taken, or the address is not this machine's
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    try:
        models = load_models(model or ["B"], project)
        with err_console.status("loading the models and the face finder", spinner="dots"):
            service = Service.load(models, engine=value_of(engine), model_dir=str(model_dir) if model_dir else None,
                                   max_upload_mb=max_upload_mb)
    except (FileNotFoundError, ValueError, ModelFileError, OSError) as exc:
        fail(reason(exc))
    for lm in models:
        console.print(f"model {lm.label}: {lm.path}", highlight=False)
    for note in [*service.predictor.notes, *service.warnings]:
        err_console.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"[green]serving[/] on http://{shown}:{port}/ (the page), http://{shown}:{port}/docs (the API); "
                  "Ctrl-C stops", highlight=False, soft_wrap=True)
    try:
        uvicorn.run(create_app(service), host=host, port=port, log_level="warning")
    finally:
        service.predictor.close()
