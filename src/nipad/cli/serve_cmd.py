"""`nipad serve RUN_DIR`: the HTTP inspection service (FastAPI + uvicorn), the model loaded once."""

from __future__ import annotations

import argparse
import errno
import math
import os
import socket
from pathlib import Path

from nipad.cli.common import add_threshold_arg
from nipad.errors import ConfigError
from nipad.serve.settings import ServeSettings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="HTTP inspection service: POST /predict, POST /prompts/{class}, GET /classes, "
                                     "/health, /metrics")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--max-batch", type=int, default=8, help="most images run through the model together")
    p.add_argument("--max-wait-ms", type=float, default=10.0,
                   help="how long the first image of a batch waits for others (default 10)")
    p.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1),
                   help="CPU threads for the model and for image decoding (default: min(4, cores))")
    p.add_argument("--max-files", type=int, default=16, help="most images per request")
    p.add_argument("--max-file-mb", type=float, default=32.0, help="largest image file accepted")
    p.add_argument("--max-side", type=int, default=8192, help="largest image width or height, read from the header")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="largest width x height of one image")
    p.add_argument("--max-request-pixels", type=int, default=40_000_000,
                   help="largest sum of width x height over the images of one request (default 40000000; with "
                        "?maps and ?overlay a request takes about 50 bytes per pixel: 2 GB at this limit)")
    p.add_argument("--request-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="a request still running after this long is cancelled and answered 504 (default 60)")
    p.add_argument("--token-file", metavar="PATH", help="file holding the write token that POST /prompts/{class} "
                   "asks for (Authorization: Bearer <token>); or set NIPAD_SERVE_TOKEN. Without one, writes are "
                   "refused (403) and reads work")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    add_threshold_arg(p)
    p.set_defaults(run=run)


def write_token(path: str | None) -> str | None:
    """The write token from --token-file (first line, stripped) or $NIPAD_SERVE_TOKEN; None when neither is set."""
    if path is None:
        return os.environ.get("NIPAD_SERVE_TOKEN") or None
    try:
        token = Path(path).read_text(encoding="utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"--token-file {path}: cannot read it ({err})") from err
    if not token or not token[0].strip():
        raise ConfigError(f"--token-file {path} is empty: write the token on its first line")
    return token[0].strip()


def file_bytes(megabytes: float) -> int:
    """--max-file-mb in bytes; ConfigError unless it is a finite number of at least one byte."""
    if not (math.isfinite(megabytes) and megabytes * 2**20 >= 1):
        raise ConfigError(f"--max-file-mb must be a positive number of MiB (e.g. 32), got {megabytes:g}")
    return int(megabytes * 2**20)


def check_port_free(host: str, port: int) -> None:
    """ConfigError unless this process can listen on host:port now (bound and released at once, with the
    SO_REUSEADDR uvicorn sets), so that a port in use is one clear line before "serving ... on" is printed."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise ConfigError(f"--port {port} on {host} is in use by another program (another `nipad serve`?). Fix: "
                              f"stop it, or pick another --port (0 picks a free one)") from err
        raise ConfigError(f"cannot listen on --host {host} --port {port}: {err.strerror or err}. Fix: give an "
                          f"address of this machine (127.0.0.1 for this machine only, 0.0.0.0 for every network)"
                          + (" or a port of 1024 or more" if err.errno == errno.EACCES else "")) from err


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from nipad.serve.app import create_app
    from nipad.serve.service import InspectionService

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a TCP port: give 1-65535 (0 picks a free one)")
    settings = ServeSettings(
        run_dir=Path(args.run_dir), device=args.device, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
        threads=args.threads, max_files=args.max_files, max_file_bytes=file_bytes(args.max_file_mb),
        max_side=args.max_side, max_pixels=args.max_pixels, max_request_pixels=args.max_request_pixels,
        request_timeout_s=args.request_timeout, write_token=write_token(args.token_file),
        thresholds=tuple(args.threshold or ()),
    )
    service = InspectionService(settings)  # a bad run dir fails here, as a one-line error, before the port opens
    check_port_free(args.host, args.port)
    print(f"nipad: serving {settings.run_dir} ({service.snapshot.info.model.model}, {service.device}, image size "
          f"{service.image_size}) on http://{args.host}:{args.port}; writes "
          + ("need the token" if settings.write_token else "off (no --token-file)")
          + (f"; image threshold set by hand: {', '.join(settings.thresholds)}" if settings.thresholds else ""),
          flush=True)
    uvicorn.run(create_app(service), host=args.host, port=args.port, log_level=args.log_level, workers=1)
    return 0
