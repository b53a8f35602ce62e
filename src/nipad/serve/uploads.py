"""The image files of a multipart/form-data request, read from the stream with every limit enforced WHILE it arrives.

The body is parsed chunk by chunk (python-multipart's streaming parser, as Starlette uses it) and kept in memory,
never spooled to disk: a file over the per-file limit, a file past the count limit or a body past the total limit
(`Content-Length` or not: chunked uploads too) is refused as soon as the chunk that crosses it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from nipad.serve.inputs import RequestError

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks  # defined for type checkers only


@dataclass(frozen=True)
class UploadLimits:
    max_files: int
    max_file_bytes: int
    max_body_bytes: int
    max_fields: int = 100


@dataclass
class _Part:
    name: str | None = None  # file name; None for a plain form field
    data: bytearray = field(default_factory=bytearray)
    headers: dict[bytes, bytes] = field(default_factory=dict)


class _Collector:
    """python-multipart callbacks: collects file parts, raising RequestError the moment a limit is crossed."""

    def __init__(self, limits: UploadLimits) -> None:
        self.limits = limits
        self.files: list[tuple[str, bytes]] = []
        self.fields = 0
        self.part = _Part()
        self.header_name = b""
        self.header_value = b""

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[self.header_name.lower()] = self.header_value
        self.header_name = self.header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b"").decode("latin-1"))
        if b"filename" in options:
            if len(self.files) >= self.limits.max_files:
                raise RequestError(413, f"too many files: at most {self.limits.max_files} per request")
            self.part.name = options[b"filename"].decode("utf-8", "replace") or f"file {len(self.files) + 1}"
        else:
            self.fields += 1
            if self.fields > self.limits.max_fields:
                raise RequestError(413, f"too many form fields: at most {self.limits.max_fields} per request")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.part.data += data[start:end]
        limit = self.limits.max_file_bytes if self.part.name is not None else 2**20
        if len(self.part.data) > limit:
            what = self.part.name if self.part.name is not None else "a form field"
            raise RequestError(413, f"{what}: over the limit of {limit} bytes per "
                                    f"{'file' if self.part.name is not None else 'field'}")

    def on_part_end(self) -> None:
        if self.part.name is not None:
            self.files.append((self.part.name, bytes(self.part.data)))
        self.part = _Part()


async def read_files(request: Request, limits: UploadLimits) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every file part of a multipart request, within the limits; RequestError otherwise."""
    media, options = parse_options_header(request.headers.get("content-type", ""))
    if media != b"multipart/form-data":
        if request.headers.get("content-length", "") == "0":
            raise RequestError(400, "the request body is empty: send the images as multipart/form-data file parts")
        raise RequestError(415, "send the images as multipart/form-data file parts (e.g. named `files`)")
    if b"boundary" not in options:
        raise RequestError(400, "malformed multipart body: no boundary in the Content-Type header")
    collector = _Collector(limits)
    callbacks: MultipartCallbacks = {
        "on_part_begin": collector.on_part_begin, "on_part_data": collector.on_part_data,
        "on_part_end": collector.on_part_end, "on_header_field": collector.on_header_field,
        "on_header_value": collector.on_header_value, "on_header_end": collector.on_header_end,
        "on_headers_finished": collector.on_headers_finished}
    parser = MultipartParser(options[b"boundary"], callbacks)
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limits.max_body_bytes:
                raise RequestError(413, f"request body over the limit of {limits.max_body_bytes} bytes")
            parser.write(chunk)
        parser.finalize()
    except FormParserError as err:
        raise RequestError(400, f"malformed multipart body ({err})") from err
    except ClientDisconnect as err:
        raise RequestError(499, "the client closed the connection during the upload") from err
    if received == 0:
        raise RequestError(400, "the request body is empty: send the images as multipart/form-data file parts")
    if not collector.files:
        raise RequestError(400, "no file in the request: send the images as multipart file parts")
    return collector.files
