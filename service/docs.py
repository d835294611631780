"""`/openapi.json` and `/docs`: the document, and Swagger UI served from an installed package (no CDN)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

# mkdocs-swagger-ui-tag ships Swagger UI 5 (which renders OpenAPI 3.1); only its files are used.
SWAGGER_UI = Path(str(files("mkdocs_swagger_ui_tag") / "swagger-ui"))

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Todo API</title>
  <link rel="stylesheet" href="/docs/assets/stylesheets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/javascripts/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""
# In a file of its own, so the page's CSP can forbid inline script.
_INIT = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  tryItOutEnabled: true
});
"""
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
_SECURITY = {"content-security-policy": _CSP, "x-content-type-options": "nosniff"}


async def openapi_json(request: Request) -> Response:
    document: bytes = request.app.state.openapi
    return Response(document, media_type="application/json", headers={"x-content-type-options": "nosniff"})


async def docs_page(request: Request) -> Response:
    return HTMLResponse(_PAGE, headers=_SECURITY)


async def docs_init(request: Request) -> Response:
    return Response(_INIT, media_type="text/javascript", headers=_SECURITY)


routes = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs_page, methods=["GET"]),
    Route("/docs/init.js", docs_init, methods=["GET"]),
    Mount("/docs/assets", app=StaticFiles(directory=SWAGGER_UI), name="docs-assets"),
]
