"""``facekit serve``: the predictor behind a local HTTP service, for other programs and for a web page.

The models and the face finder are loaded once (``Service.load``), before the server accepts a request;
every request then reuses them. FastAPI answers requests on its thread pool; the predictor itself runs one
image at a time under a lock (MediaPipe's landmarker is not safe to share between threads, and a second
copy of everything per thread would double the memory for no gain on a CPU that one image already fills).

``POST /predict`` answers with the document ``facekit predict --json`` prints for the same file. An upload
that is not an image (415), too large in bytes or pixels (413) or shows no face (422) gets a JSON error
with a 4xx status, never a traceback. ``GET /`` is a page that draws the answer on the photo: plain HTML
and JavaScript from facekit's own assets, no build step and nothing fetched from elsewhere.
"""

from __future__ import annotations

import ipaddress
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from facekit import __version__
from facekit.contract import INPUT_SIZE, hand_in_kind
from facekit.data.imageio import IMAGE_SUFFIXES, ImageReadError, read_rgb
from facekit.face.template import framing_for
from facekit.inference.load import LoadedModel
from facekit.inference.predict import Predictor
from facekit.inference.records import ModelInfo, Tally, document_header, records

PAGE = Path(__file__).parents[1] / "assets" / "serve.html"
MAX_UPLOAD_MB = 20.0


class Problem(BaseModel):
    """Every error the service answers: ``error`` for programs, ``detail`` for people."""

    error: str
    detail: str


class Health(BaseModel):
    status: str
    facekit_version: str
    models: int
    uptime_s: float
    requests: int


class ModelEntry(BaseModel):
    label: str
    file: str
    kind: str | None
    sha256: str
    engine: str  # "litert" or "keras": what answers for this model


class Record(BaseModel):
    """One face seen by one model, as ``facekit predict`` writes it (facekit/assets/predict.schema.json)."""

    schema_version: int
    facekit_version: str
    kind: str  # "image": the service answers photos only (videos are for `facekit predict`)
    image: str
    width: int | None
    height: int | None
    status: str
    error: str | None
    face: int | None
    box: list[float] | None
    score: float | None
    landmarks: dict[str, list[float]] | None
    model: str | None
    model_file: str | None
    model_sha256: str | None
    age: float | None
    p_female: float | None
    gender: str | None


class Document(BaseModel):
    """``facekit predict --json``'s document for the one uploaded image."""

    schema_version: int
    facekit_version: str
    models: list[dict[str, str]]
    template: str
    warnings: list[str]
    records: list[Record]
    summary: dict[str, float | int]


class UploadError(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


@dataclass
class Service:
    """What the server holds from start-up to shutdown: one predictor, used under a lock."""

    models: list[LoadedModel]
    predictor: Predictor
    warnings: list[str]
    max_upload_bytes: int
    started: float = field(default_factory=time.monotonic)
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, models: list[LoadedModel], engine: str = "auto", model_dir: str | None = None,
             max_upload_mb: float = MAX_UPLOAD_MB) -> Service:
        template, framing_warnings = framing_for([lm.path for lm in models], INPUT_SIZE)
        predictor = Predictor(models, template, model_dir=model_dir, engine=engine)
        return cls(models, predictor, [*(lm.note for lm in models if lm.note), *framing_warnings],
                   int(max_upload_mb * 2**20))

    @property
    def infos(self) -> list[ModelInfo]:
        return [ModelInfo.of(lm) for lm in self.models]

    def predict(self, data: bytes, name: str) -> dict[str, Any]:
        """The ``--json`` document for one uploaded image, or UploadError saying why there is none."""
        if len(data) > self.max_upload_bytes:
            raise UploadError(413, "too_large", f"{name}: {len(data) / 2**20:.1f} MB, over the service's limit "
                                                f"of {self.max_upload_bytes / 2**20:g} MB")
        if not data:
            raise UploadError(415, "not_an_image", f"{name}: an empty upload")
        suffix = Path(name).suffix.lower()
        with tempfile.TemporaryDirectory(prefix="facekit-serve-") as tmp:
            path = Path(tmp) / f"upload{suffix if suffix in IMAGE_SUFFIXES else ''}"
            path.write_bytes(data)
            try:  # refused here with its reason, before the face finder sees it (a second decode: milliseconds)
                read_rgb(path)
            except ImageReadError as exc:
                status, error = (413, "too_large") if exc.kind == "too_large" else (415, "not_an_image")
                raise UploadError(status, error, str(exc).replace(str(path), name)) from None
            start = time.perf_counter()
            with self._lock:
                result = self.predictor.image(path)
                self.requests += 1
        result.path = name
        result.error = result.error.replace(str(path), name) if result.error else None
        if not result.faces:
            raise UploadError(422, "no_face", result.error or f"{name}: no face found")
        tally = Tally()
        tally.add(result)
        tally.seconds = time.perf_counter() - start
        return {**document_header(self.infos, self.predictor.template.digest(), self.warnings),
                "records": records(result, self.infos), "summary": tally.to_json()}


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (anything else is asked for, and warned about)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(service: Service) -> FastAPI:
    app = FastAPI(title="facekit", version=__version__,
                  description="Age and gender for every face in a photo. The page at / draws the answers; "
                              "POST /predict returns what `facekit predict --json` prints.")

    @app.exception_handler(UploadError)
    def upload_error(request: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse(Problem(error=exc.error, detail=exc.detail).model_dump(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        said = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors())
        return JSONResponse(Problem(error="bad_request", detail=said or "malformed request").model_dump(),
                            status_code=422)

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> JSONResponse:  # a bug of ours: said, not a traceback
        return JSONResponse(Problem(error="internal", detail=f"{type(exc).__name__}: {exc}").model_dump(),
                            status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return PAGE.read_text()

    @app.get("/health", response_model=Health)
    def health() -> Health:
        return Health(status="ok", facekit_version=__version__, models=len(service.models),
                      uptime_s=round(time.monotonic() - service.started, 1), requests=service.requests)

    @app.get("/models", response_model=list[ModelEntry])
    def models() -> list[ModelEntry]:
        engines = service.predictor.engines
        return [ModelEntry(label=lm.label, file=str(lm.path), kind=hand_in_kind(lm.path), sha256=lm.sha256,
                           engine="litert" if lm.label in engines else "keras") for lm in service.models]

    @app.post("/predict", response_model=Document,
              responses={413: {"model": Problem}, 415: {"model": Problem}, 422: {"model": Problem}})
    def predict(file: UploadFile = File(..., description="the photo (JPEG, PNG, WebP, BMP, TIFF or GIF)")
                ) -> dict[str, Any]:
        # Read one byte past the limit: enough to know it is too large without holding a huge upload.
        data = file.file.read(service.max_upload_bytes + 1)
        return service.predict(data, Path(file.filename or "upload").name)

    return app
