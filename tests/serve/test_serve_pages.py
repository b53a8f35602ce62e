"""What a browser gets from the service, over plain HTTP: the operator's page and the API docs come with every asset
from the service itself (no CDN, no internet), and the OpenAPI schema describes the multipart uploads."""

import re

import pytest
from fastapi.testclient import TestClient

from nipad.serve import pages
from nipad.serve.app import create_app
from nipad.serve.service import InspectionService
from nipad.serve.settings import ServeSettings


@pytest.fixture(scope="module")
def app(untrained_onenip_run):
    service = InspectionService(ServeSettings(run_dir=untrained_onenip_run, threads=1))
    return create_app(service)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as client:
        yield client


def _links(html: str) -> list[str]:
    return re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', html)


def _local(url: str) -> bool:
    return url.startswith("/") and not url.startswith("//")


def test_operator_page_is_html_from_the_service_alone(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    links = [url for url in _links(page.text) if url != "data:,"]  # the empty icon, so no /favicon.ico is asked
    assert "/static/operator.js" in links and "/static/operator.css" in links
    assert all(_local(url) for url in links), links
    for url in ["/", *links]:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert not re.search(r"(?:https?:)?//[a-z0-9]", asset.text, re.I), f"{url} names another host"
    for form in ('id="inspect-files"', 'id="prompt-form"', 'id="prompt-token"', 'id="classes"'):
        assert form in page.text


@pytest.mark.parametrize("name", ["app.py", "..%2fapp.py", "index.html.bak", "swagger-ui-bundle.js"])
def test_only_the_pages_own_files_are_served(client, name):
    assert client.get(f"/static/{name}").status_code == 404


def test_docs_load_their_assets_from_the_service(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert "cdn" not in page.text and "googleapis" not in page.text
    links = _links(page.text) + re.findall(r"""url\s*:\s*['"]([^'"]+)""", page.text)
    assert "/openapi.json" in links
    assert all(_local(url) for url in links), links
    scripts = [url for url in links if url.endswith(".js")]
    assert scripts and all(url.startswith("/docs/assets/") for url in scripts)
    for url in links:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 100, url


def test_redoc_is_off_with_a_page_that_says_where_the_docs_are(client):
    page = client.get("/redoc")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "internet" in page.text and 'href="/docs"' in page.text
    assert all(_local(url) for url in _links(page.text))


def test_without_the_docs_package_the_docs_page_says_so(untrained_onenip_run, monkeypatch):
    monkeypatch.setattr(pages, "_docs_assets", lambda: None)
    app = create_app(InspectionService(ServeSettings(run_dir=untrained_onenip_run, threads=1)))
    with TestClient(app) as client:
        page = client.get("/docs")
        assert page.status_code == 404 and "fastapi-offline" in page.text and "/openapi.json" in page.text
        assert client.get("/").status_code == 200 and client.get("/docs/assets/swagger-ui.css").status_code == 404


def test_openapi_describes_the_multipart_uploads(app, client):
    schema = app.openapi()
    assert client.get("/openapi.json").json() == schema
    for path in ("/predict", "/prompts/{class_name}"):
        body = schema["paths"][path]["post"]["requestBody"]
        assert body["required"] is True
        files = body["content"]["multipart/form-data"]["schema"]
        assert files["required"] == ["files"]
        assert files["properties"]["files"] == {"type": "array", "items": {"type": "string", "format": "binary"}}
    assert schema["paths"]["/prompts/{class_name}"]["post"]["security"] == [{"writeToken": []}]
    assert "security" not in schema["paths"]["/predict"]["post"]
    scheme = schema["components"]["securitySchemes"]["writeToken"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer" and "--token-file" in scheme["description"]
    assert {"/", "/docs", "/redoc", "/static/{name}"}.isdisjoint(schema["paths"])
