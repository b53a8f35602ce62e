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
The routes are in nipad.serve.routes, the pages and docs in nipad.serve.pages; this module puts them together with
the error answers and the request metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from nipad import __version__
from nipad.errors import CheckpointError, NipadError
from nipad.serve.inputs import RequestError
from nipad.serve.pages import add_pages
from nipad.serve.routes import Serving, router
from nipad.serve.service import BrokenModelError, InspectionService

log = logging.getLogger("nipad.serve")


def create_app(service: InspectionService) -> FastAPI:
    """The app serving `service` (already loaded: the model loads once, before the port opens)."""
    app = FastAPI(title="nipad inspection service", version=__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None)
    app.state.serving = Serving.start(service)
    add_pages(app)  # GET / (the operator's page), /docs from local assets (/redoc off), the upload schema
    app.middleware("http")(observe)
    for kind, handler in HANDLERS.items():
        app.add_exception_handler(kind, handler)
    app.include_router(router)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The batcher runs while the app does; the service's threads stop with it."""
    serving: Serving = app.state.serving
    serving.batcher.start()
    yield
    await serving.batcher.stop()
    serving.service.close()


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


async def observe(request: Request, call_next: Any) -> Response:
    """Refuse a declared body over the limit (413), answer an unexpected failure with a JSON 500 and keep serving,
    and count every request by route, status and duration."""
    serving: Serving = request.app.state.serving
    limit = serving.settings.max_body_bytes
    start = time.perf_counter()
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        response: Response = error_response(413, f"request body of {length} bytes is over the limit of {limit}")
    else:
        try:
            response = await call_next(request)
        except Exception as err:  # a bug, not the client's fault: answer 500 and keep serving
            log.exception("unexpected failure on %s %s", request.method, request.url.path)
            response = error_response(500, f"internal error ({type(err).__name__}: {err})")
    route = request.scope.get("route")
    serving.metrics.observe_request(getattr(route, "path", "other"), response.status_code, time.perf_counter() - start)
    return response


async def refused(_: Request, err: RequestError) -> JSONResponse:
    return error_response(err.status, err.message)


async def nipad_error(_: Request, err: NipadError) -> JSONResponse:
    status = 503 if isinstance(err, BrokenModelError) else 409 if isinstance(err, CheckpointError) else 400
    return error_response(status, str(err))


async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
    return error_response(err.status_code, str(err.detail))


async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
    return error_response(422, f"invalid request: {problems}")


HANDLERS: dict[type[Exception], Any] = {RequestError: refused, NipadError: nipad_error,
                                        StarletteHTTPException: http_error, RequestValidationError: invalid}
"""The JSON error answer of each kind of refusal."""
