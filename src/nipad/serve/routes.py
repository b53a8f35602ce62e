"""The HTTP routes of `nipad serve` (listed in nipad.serve.app), each taking what the app serves (`Serving`) as a
dependency: the loaded service, its upload limits, metrics and micro-batcher, and the lock that runs one prompt
update at a time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from nipad import __version__
from nipad.engine.prompts import check_class_name
from nipad.errors import ConfigError
from nipad.serve.batching import MicroBatcher
from nipad.serve.guards import check_write_token, deadline, unless_disconnected
from nipad.serve.inputs import RequestError, check_request_pixels, check_upload, decode_upload, model_inputs
from nipad.serve.metrics import Metrics
from nipad.serve.responses import image_result
from nipad.serve.service import InspectionService
from nipad.serve.settings import ServeSettings
from nipad.serve.uploads import UploadLimits, read_files


@dataclass
class Serving:
    """What the routes share, made once per app (`start`) and kept in `app.state.serving`."""

    service: InspectionService
    limits: UploadLimits
    metrics: Metrics
    batcher: MicroBatcher
    update_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def start(cls, service: InspectionService) -> Serving:
        s = service.settings
        metrics = Metrics()
        batcher = MicroBatcher(service.score, service.model_thread, s.max_batch, s.max_wait_ms / 1000,
                               metrics.observe_batch)
        return cls(service, UploadLimits(s.max_files, s.max_file_bytes, s.max_body_bytes), metrics, batcher)

    @property
    def settings(self) -> ServeSettings:
        return self.service.settings


def serving(request: Request) -> Serving:
    """The app's `Serving` (the routes' dependency)."""
    return request.app.state.serving


Served = Annotated[Serving, Depends(serving)]
router = APIRouter()


@router.get("/health")
async def health(served: Served) -> JSONResponse:
    service, settings = served.service, served.settings
    model = service.snapshot.model
    problem = service.problem
    return JSONResponse({
        "status": "broken" if problem else "ok", "problem": problem, "model_loaded": model is not None,
        "device": str(service.device), "model": model.model_name,
        "image_size": service.image_size, "run_dir": str(settings.run_dir),
        "classes": len(service.known_classes()), "max_batch": settings.max_batch,
        "max_wait_ms": settings.max_wait_ms, "threads": settings.threads, "version": __version__,
    }, status_code=503 if problem else 200)


@router.get("/classes")
async def classes(served: Served) -> dict[str, Any]:
    return {"classes": served.service.classes()}


@router.get("/metrics")
async def prometheus(served: Served) -> Response:
    return Response(served.metrics.render(), media_type=served.metrics.content_type)


@router.post("/predict")
async def predict(request: Request, served: Served, maps: bool = False, overlay: bool = False,
                  class_name: str | None = Query(None, alias="class")) -> dict[str, Any]:
    if class_name is not None and class_name not in served.service.known_classes():
        raise RequestError(404, f"unknown class {class_name!r}; GET /classes lists them")
    async with deadline(served.settings.request_timeout_s):
        files = await read_files(request, served.limits)
        return await unless_disconnected(request, predict_files(served, files, maps, overlay, class_name))


async def check_sizes(served: Serving, files: list[tuple[str, bytes]]) -> None:
    """Every upload's size and header, then the request's pixel sum, before anything is decoded."""
    loop = asyncio.get_running_loop()
    sizes = await loop.run_in_executor(served.service.io_threads, lambda: [
        check_upload(data, name, served.settings) for name, data in files])
    check_request_pixels(sizes, served.settings)


async def predict_files(served: Serving, files: list[tuple[str, bytes]], maps: bool, overlay: bool,
                        class_name: str | None) -> dict[str, Any]:
    """Check, decode, score (through the batcher) and answer every image of one /predict request."""
    await check_sizes(served, files)
    loop = asyncio.get_running_loop()
    service, keep = served.service, maps or overlay
    decoded = await asyncio.gather(*(
        loop.run_in_executor(service.io_threads, model_inputs, data, name, served.settings, service.image_size, keep)
        for name, data in files))
    scored = await asyncio.gather(*(served.batcher.submit(image) for image, _ in decoded))
    results = await asyncio.gather(*(  # one job per image, so a cancelled request stops between images
        loop.run_in_executor(service.io_threads, image_result, name, s, class_name, original, maps, overlay)
        for (name, _), s, (_, original) in zip(files, scored, decoded, strict=True)))
    return {"results": list(results)}


@router.post("/prompts/{class_name}")
async def add_prompts(request: Request, served: Served, class_name: str, prompts: int = Query(1, ge=1),
                      false_alarm_rate: float | None = Query(None, gt=0, lt=1)) -> dict[str, Any]:
    service = served.service
    check_write_token(request, served.settings.write_token)
    if not service.has_prompt_pool:
        raise RequestError(409, "this run's model family has no prompt pool (only OneNIP/UniAD runs have one)")
    try:
        check_class_name(class_name)
    except ConfigError as err:
        raise RequestError(400, str(err)) from err
    async with deadline(served.settings.request_timeout_s):  # the update itself runs to its end: it writes the run
        files = await read_files(request, served.limits)
        await unless_disconnected(request, check_prompt_images(served, files))
    async with served.update_lock:
        done = await asyncio.to_thread(service.add_prompts, class_name, files, prompts, false_alarm_rate)
    return {**done, "classes": service.classes()}


async def check_prompt_images(served: Serving, files: list[tuple[str, bytes]]) -> None:
    """Sizes as /predict's, then every image must decode, before the run is touched."""
    await check_sizes(served, files)
    await asyncio.get_running_loop().run_in_executor(served.service.io_threads, decode_all, served, files)


def decode_all(served: Serving, files: list[tuple[str, bytes]]) -> None:
    """Decode every uploaded image at the model size (RequestError 400 for one that does not decode)."""
    for name, data in files:
        decode_upload(data, name, served.service.image_size, served.settings.max_pixels)
