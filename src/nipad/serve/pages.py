"""What a browser gets from `nipad serve`, all from the service itself (nothing from a CDN or the internet):

    GET /                 the operator's page (static/index.html, operator.js, operator.css): inspect images, list
                          the products, add a product's normal images (with the write token)
    GET /docs             Swagger UI, its script and style served from the fastapi-offline package under /docs/assets/
    GET /redoc            a page saying that ReDoc is not served (its bundle loads its logo from the internet) and
                          where the docs are
    GET /openapi.json     the schema, with the multipart upload of POST /predict and POST /prompts/{class} described
                          (files: array of binary strings) so that "Try it out" can send images, and the write token as
                          a bearer scheme
Every page is sent with a Content-Security-Policy that allows requests to this service only.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

STATIC = resources.files("nipad.serve") / "static"
PAGE_FILES = {"operator.js": "text/javascript; charset=utf-8", "operator.css": "text/css; charset=utf-8"}
DOCS_FILES = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8",
              "favicon.png": "image/png"}
# The operator's page runs no inline code; the docs page (FastAPI's HTML) starts Swagger UI with an inline script,
# and Swagger UI draws with data: images; nothing may leave for another host.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
               "form-action 'self'; frame-ancestors 'none'")
DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
NO_DOCS = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>API docs unavailable</title></head><body>"
           "<h1>API docs unavailable</h1><p>The offline API docs need the Python package <code>fastapi-offline</code>"
           " (part of <code>pip install 'nipad[serve]'</code>), which this installation lacks; the docs are never "
           "loaded from the internet. The schema is at <a href=\"/openapi.json\">/openapi.json</a> and the "
           "operator's page at <a href=\"/\">/</a>.</p></body></html>")
NO_REDOC = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>ReDoc not served</title></head><body>"
            "<h1>ReDoc is not served</h1><p>This service works without the internet, and ReDoc's page loads its logo "
            "from it. The API docs are at <a href=\"/docs\">/docs</a> (Swagger UI, served by this service), the "
            "schema at <a href=\"/openapi.json\">/openapi.json</a> and the operator's page at <a href=\"/\">/</a>."
            "</p></body></html>")
FILES_SCHEMA = {"type": "object", "required": ["files"], "properties": {"files": {
    "type": "array", "items": {"type": "string", "format": "binary"}}}}
UPLOADS = {  # path -> what its multipart parts are
    "/predict": "The images to inspect (PNG, JPEG, BMP, TIFF, WebP...), one file part each, any part name "
                "(e.g. `files`); the limits on their number, size and pixels are the service's settings.",
    "/prompts/{class_name}": "Normal (defect-free) images of the product: some become its prompts, the rest "
                             "calibrate its threshold. Needs the write token (Authorization: Bearer <token>).",
}
WRITE_SCHEME = "writeToken"


def _docs_assets() -> Traversable | None:
    try:
        return resources.files("fastapi_offline") / "static"
    except ModuleNotFoundError:
        return None


def _file(folder: Traversable, name: str, media_type: str) -> Response:
    return Response((folder / name).read_bytes(), media_type=media_type,
                    headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


def describe_uploads(app: FastAPI) -> None:
    """The schema's request body of each upload route (the routes read the multipart stream themselves, so FastAPI
    cannot see their form) and the bearer scheme of the writes."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            for path, description in UPLOADS.items():
                operation = schema.get("paths", {}).get(path, {}).get("post")
                if operation is None:
                    continue
                operation["requestBody"] = {"required": True, "description": description,
                                            "content": {"multipart/form-data": {"schema": FILES_SCHEMA}}}
                if path.startswith("/prompts/"):
                    operation["security"] = [{WRITE_SCHEME: []}]
            schema.setdefault("components", {}).setdefault("securitySchemes", {})[WRITE_SCHEME] = {
                "type": "http", "scheme": "bearer",
                "description": "the service's write token (nipad serve --token-file PATH or NIPAD_SERVE_TOKEN)"}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_pages(app: FastAPI) -> None:
    """The operator's page, the offline docs and the upload schema on `app` (made with docs_url=redoc_url=None)."""
    describe_uploads(app)
    docs = _docs_assets()
    title = app.title

    @app.get("/", include_in_schema=False)
    async def operator_page() -> Response:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"),
                            headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache",
                                     "X-Content-Type-Options": "nosniff"})

    @app.get("/static/{name}", include_in_schema=False)
    async def page_file(name: str) -> Response:
        if name not in PAGE_FILES:
            return Response(status_code=404)
        return _file(STATIC, name, PAGE_FILES[name])

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_file(name: str) -> Response:
        if docs is None or name not in DOCS_FILES:
            return Response(status_code=404)
        return _file(docs, name, DOCS_FILES[name])

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        if docs is None:
            return HTMLResponse(NO_DOCS, status_code=404)
        html = get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{title} - API docs",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js", swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
            oauth2_redirect_url=None, swagger_ui_parameters={"validatorUrl": None})
        html.headers["Content-Security-Policy"] = DOCS_POLICY
        return html

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(NO_REDOC, status_code=404)
