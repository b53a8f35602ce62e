"""The FastAPI app of `nipad serve`.

    POST /predict[?maps=true&overlay=true&class=NAME]  images as multipart parts -> per image pred_score,
                                                        pred_label, pred_score_normalized, class, threshold_class
    POST /prompts/{class}[?prompts=1&false_alarm_rate=R] normal images of a (new) class -> prompts + thresholds
    GET  /classes   GET /health   GET /metrics (Prometheus text)
Every refusal is a 4xx with JSON {"error": message, "status": code}; an unexpected failure is a JSON 500 and the
service goes on.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from nipad import __version__
from nipad.errors import CheckpointError, NipadError
from nipad.serve.batching import MicroBatcher
from nipad.serve.inputs import RequestError, check_upload, decode_upload, model_inputs
from nipad.serve.metrics import Metrics
from nipad.serve.responses import image_result
from nipad.serve.service import InspectionService

log = logging.getLogger("nipad.serve")
CLASS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


async def read_files(request: Request, max_files: int, max_file_bytes: int) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every file part of a multipart request, within the count and size limits."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise RequestError(415, "send the images as multipart/form-data file parts (e.g. named `files`)")
    try:
        form = await request.form(max_files=max_files, max_fields=100)
    except StarletteHTTPException as err:
        if "Too many files" in str(err.detail):
            raise RequestError(413, f"too many files: at most {max_files} per request") from err
        raise RequestError(400, f"malformed multipart body: {err.detail}") from err
    try:
        uploads = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not uploads:
            raise RequestError(400, "no file in the request: send the images as multipart file parts")
        files = []
        for i, upload in enumerate(uploads):
            name = upload.filename or f"file {i + 1}"
            if upload.size is not None and upload.size > max_file_bytes:
                raise RequestError(413, f"{name}: {upload.size} bytes is over the limit of {max_file_bytes} per file")
            files.append((name, await upload.read()))
        return files
    finally:
        await form.close()


def create_app(service: InspectionService) -> FastAPI:
    """The app serving `service` (already loaded: the model loads once, before the port opens)."""
    settings = service.settings
    metrics = Metrics()
    batcher = MicroBatcher(service.score, service.model_thread, settings.max_batch, settings.max_wait_ms / 1000,
                           metrics.observe_batch)
    update_lock = asyncio.Lock()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()
        service.close()

    app = FastAPI(title="nipad inspection service", version=__version__, lifespan=lifespan)

    @app.middleware("http")
    async def observe(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > settings.max_body_bytes:
            response: Response = error_response(413, f"request body of {length} bytes is over the limit of "
                                                     f"{settings.max_body_bytes}")
        else:
            try:
                response = await call_next(request)
            except Exception as err:  # a bug, not the client's fault: answer 500 and keep serving
                log.exception("unexpected failure on %s %s", request.method, request.url.path)
                response = error_response(500, f"internal error ({type(err).__name__}: {err})")
        route = request.scope.get("route")
        metrics.observe_request(getattr(route, "path", "other"), response.status_code, time.perf_counter() - start)
        return response

    @app.exception_handler(RequestError)
    async def refused(_: Request, err: RequestError) -> JSONResponse:
        return error_response(err.status, err.message)

    @app.exception_handler(NipadError)
    async def nipad_error(_: Request, err: NipadError) -> JSONResponse:
        return error_response(409 if isinstance(err, CheckpointError) else 400, str(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return error_response(err.status_code, str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        return error_response(422, f"invalid request: {problems}")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        model = service.snapshot.model
        return {"status": "ok", "model_loaded": model is not None, "device": str(service.device),
                "model": getattr(model.config, "model", type(model).__name__), "image_size": service.image_size,
                "run_dir": str(settings.run_dir), "classes": len(service.known_classes()),
                "max_batch": settings.max_batch, "max_wait_ms": settings.max_wait_ms, "threads": settings.threads,
                "version": __version__}

    @app.get("/classes")
    async def classes() -> dict[str, Any]:
        return {"classes": service.classes()}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.post("/predict")
    async def predict(request: Request, maps: bool = False, overlay: bool = False,
                      class_name: str | None = Query(None, alias="class")) -> dict[str, Any]:
        if class_name is not None and class_name not in service.known_classes():
            raise RequestError(404, f"unknown class {class_name!r}; GET /classes lists them")
        files = await read_files(request, settings.max_files, settings.max_file_bytes)
        loop = asyncio.get_running_loop()
        keep = maps or overlay
        decoded = await asyncio.gather(*(
            loop.run_in_executor(service.io_threads, model_inputs, data, name, settings, service.image_size, keep)
            for name, data in files))
        scored = await asyncio.gather(*(batcher.submit(image) for image, _ in decoded))
        results = await loop.run_in_executor(service.io_threads, lambda: [
            image_result(name, s, class_name, original, maps, overlay)
            for (name, _), s, (_, original) in zip(files, scored, decoded, strict=True)])
        return {"results": results}

    @app.post("/prompts/{class_name}")
    async def add_prompts(request: Request, class_name: str, prompts: int = Query(1, ge=1),
                          false_alarm_rate: float | None = Query(None, gt=0, lt=1)) -> dict[str, Any]:
        if not service.has_prompt_pool:
            raise RequestError(409, "this run's model family has no prompt pool (only OneNIP/UniAD runs have one)")
        if not CLASS_NAME.fullmatch(class_name):
            raise RequestError(400, f"invalid class name {class_name!r}: use 1-64 letters, digits, '_', '-', '.'")
        files = await read_files(request, settings.max_files, settings.max_file_bytes)
        loop = asyncio.get_running_loop()

        def check_all() -> None:  # every image must decode before the run is touched
            for name, data in files:
                check_upload(data, name, settings)
                decode_upload(data, name, service.image_size)

        await loop.run_in_executor(service.io_threads, check_all)
        async with update_lock:
            done = await asyncio.to_thread(service.add_prompts, class_name, files, prompts, false_alarm_rate)
        return {**done, "classes": service.classes()}

    return app
