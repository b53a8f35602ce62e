"""The FastAPI app of `nipad serve`.

    POST /predict[?maps=true&overlay=true&class=NAME]  images as multipart parts -> per image pred_score,
                                                        pred_label, pred_score_normalized, class, threshold_class,
                                                        threshold_from
    POST /prompts/{class}[?prompts=1&false_alarm_rate=R] normal images of a (new) class -> prompts + thresholds
    GET  /classes   GET /health   GET /metrics (Prometheus text)
Every refusal is a 4xx with JSON {"error": message, "status": code}; an unexpected failure is a JSON 500 and the
service goes on. Bodies are size-checked while they stream in (nipad.serve.uploads); image dimensions are checked
from the headers, per image and summed per request, before decoding; a request still running after
`request_timeout_s` is cancelled (504), and so is one whose client disconnects (499): work not yet started (decodes,
model batches, response images) is dropped. A model that gives NaN makes /health answer 503 "broken".
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from nipad import __version__
from nipad.engine.prompts import check_class_name
from nipad.errors import CheckpointError, ConfigError, NipadError
from nipad.serve.batching import MicroBatcher
from nipad.serve.inputs import RequestError, check_request_pixels, check_upload, decode_upload, model_inputs
from nipad.serve.metrics import Metrics
from nipad.serve.pages import add_pages
from nipad.serve.responses import image_result
from nipad.serve.service import BrokenModelError, InspectionService
from nipad.serve.uploads import UploadLimits, read_files

log = logging.getLogger("nipad.serve")
T = TypeVar("T")


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


async def _disconnected(request: Request) -> None:
    """Return when the client has gone (call only after the body has been read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """The result of `work`, or RequestError 499 (and `work` cancelled) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, gone):
            t.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    raise RequestError(499, "the client closed the connection: its work was cancelled")


@asynccontextmanager
async def deadline(seconds: float) -> AsyncIterator[None]:
    """RequestError 504 if the block runs longer than `seconds` (its awaits are cancelled)."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as err:
        raise RequestError(504, f"the request took longer than {seconds:g} s and was cancelled: send fewer or smaller "
                                f"images per request") from err


def check_write_token(request: Request, token: str | None) -> None:
    """RequestError 403 when the service takes no writes, 401 unless the request carries the token as
    `Authorization: Bearer <token>`; compared in constant time, never logged. Checked before the body is read."""
    if token is None:
        raise RequestError(403, "this service takes no writes: start it with --token-file PATH (or the environment "
                                "variable NIPAD_SERVE_TOKEN) and send the token as 'Authorization: Bearer <token>'")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise RequestError(401, "this endpoint changes the model: send the service's write token as "
                                "'Authorization: Bearer <token>'")


def create_app(service: InspectionService) -> FastAPI:
    """The app serving `service` (already loaded: the model loads once, before the port opens)."""
    settings = service.settings
    limits = UploadLimits(settings.max_files, settings.max_file_bytes, settings.max_body_bytes)
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

    app = FastAPI(title="nipad inspection service", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None)
    add_pages(app)  # GET / (the operator's page), /docs from local assets (/redoc off), the upload schema

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
        status = 503 if isinstance(err, BrokenModelError) else 409 if isinstance(err, CheckpointError) else 400
        return error_response(status, str(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return error_response(err.status_code, str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        return error_response(422, f"invalid request: {problems}")

    @app.get("/health")
    async def health() -> JSONResponse:
        model = service.snapshot.model
        problem = service.problem
        return JSONResponse({
            "status": "broken" if problem else "ok", "problem": problem, "model_loaded": model is not None,
            "device": str(service.device), "model": getattr(model.config, "model", type(model).__name__),
            "image_size": service.image_size, "run_dir": str(settings.run_dir),
            "classes": len(service.known_classes()), "max_batch": settings.max_batch,
            "max_wait_ms": settings.max_wait_ms, "threads": settings.threads, "version": __version__,
        }, status_code=503 if problem else 200)

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
        async with deadline(settings.request_timeout_s):
            files = await read_files(request, limits)
            return await unless_disconnected(request, predict_files(files, maps, overlay, class_name))

    async def check_sizes(files: list[tuple[str, bytes]]) -> None:
        """Every upload's size and header, then the request's pixel sum, before anything is decoded."""
        loop = asyncio.get_running_loop()
        sizes = await loop.run_in_executor(service.io_threads, lambda: [
            check_upload(data, name, settings) for name, data in files])
        check_request_pixels(sizes, settings)

    async def predict_files(files: list[tuple[str, bytes]], maps: bool, overlay: bool,
                            class_name: str | None) -> dict[str, Any]:
        await check_sizes(files)
        loop = asyncio.get_running_loop()
        keep = maps or overlay
        decoded = await asyncio.gather(*(
            loop.run_in_executor(service.io_threads, model_inputs, data, name, settings, service.image_size, keep)
            for name, data in files))
        scored = await asyncio.gather(*(batcher.submit(image) for image, _ in decoded))
        results = await asyncio.gather(*(  # one job per image, so a cancelled request stops between images
            loop.run_in_executor(service.io_threads, image_result, name, s, class_name, original, maps, overlay)
            for (name, _), s, (_, original) in zip(files, scored, decoded, strict=True)))
        return {"results": list(results)}

    @app.post("/prompts/{class_name}")
    async def add_prompts(request: Request, class_name: str, prompts: int = Query(1, ge=1),
                          false_alarm_rate: float | None = Query(None, gt=0, lt=1)) -> dict[str, Any]:
        check_write_token(request, settings.write_token)
        if not service.has_prompt_pool:
            raise RequestError(409, "this run's model family has no prompt pool (only OneNIP/UniAD runs have one)")
        try:
            check_class_name(class_name)
        except ConfigError as err:
            raise RequestError(400, str(err)) from err
        loop = asyncio.get_running_loop()

        def decode_all(files: list[tuple[str, bytes]]) -> None:  # every image must decode before the run is touched
            for name, data in files:
                decode_upload(data, name, service.image_size, settings.max_pixels)

        async def check_all(files: list[tuple[str, bytes]]) -> None:
            await check_sizes(files)
            await loop.run_in_executor(service.io_threads, decode_all, files)

        async with deadline(settings.request_timeout_s):  # the update itself runs to its end: it writes the run
            files = await read_files(request, limits)
            await unless_disconnected(request, check_all(files))
        async with update_lock:
            done = await asyncio.to_thread(service.add_prompts, class_name, files, prompts, false_alarm_rate)
        return {**done, "classes": service.classes()}

    return app
