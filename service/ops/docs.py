"""`/openapi.json` and `/docs`: the document, and Swagger UI served from an installed package (no CDN)."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from msgspec import Struct
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from service.openapi.operation import EXAMPLE_META, ApiRoute, Operation, header
from service.web.envelope import json_response, meta
from service.web.schemas import ResponseMeta

# mkdocs-swagger-ui-tag ships Swagger UI 5 (which renders OpenAPI 3.1); only its files are used.
SWAGGER_UI = Path(str(files("mkdocs_swagger_ui_tag") / "swagger-ui"))
# The folder also holds an unrendered page template and an OAuth redirect page: only these are served.
ASSETS = frozenset({"javascripts/swagger-ui-bundle.js", "stylesheets/swagger-ui.css"})


class ServiceIndex(Struct):
    """Where to go from `/`: the interactive docs and the OpenAPI document."""

    docs: str
    openapi: str


class IndexEnvelope(Struct):
    data: ServiceIndex
    meta: ResponseMeta


_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Todo API</title>
  <link rel="stylesheet" href="/docs/assets/stylesheets/swagger-ui.css">
</head>
<body>
  <p style="font-family: sans-serif; margin: 1em 2em">
    To try a call, press <b>Authorize</b> and paste a bearer token. Locally,
    <code>python -m service token USER_ID</code> prints one; from the app, Better Auth's
    <code>GET /api/auth/token</code> returns one for the signed-in user. This page forgets the
    token when it is closed.
  </p>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/javascripts/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""
# In a file of its own, so the page's CSP can forbid inline script. A pasted token stays in memory:
# persisted, it would sit in localStorage where any script on this origin could read it.
_INIT = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
  tryItOutEnabled: true
});
"""
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
_SECURITY = {"content-security-policy": _CSP}


class DocsAssets(StaticFiles):
    """The page's own files from the Swagger UI folder, revalidated by ETag rather than never stored."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path not in ASSETS:
            return "", None
        return super().lookup_path(path)

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = "no-cache"
        return response


async def openapi_json(request: Request) -> Response:
    document: bytes = request.app.state.openapi
    return Response(document, media_type="application/json")


INDEX = ServiceIndex(docs="/docs", openapi="/openapi.json")


async def index(request: Request) -> Response:
    """`/` sends a browser to the docs; a relative Location, so no Host header is ever reflected."""
    return json_response(
        request.scope, 307, IndexEnvelope(INDEX, meta(request.scope)), {"location": INDEX.docs}
    )


async def docs_page(request: Request) -> Response:
    return HTMLResponse(_PAGE, headers=_SECURITY)


async def docs_init(request: Request) -> Response:
    return Response(_INIT, media_type="text/javascript", headers=_SECURITY)


def _page(
    operation_id: str, summary: str, media_type: str, schema: dict[str, object] | None = None
) -> Operation:
    content: dict[str, object] = {} if schema is None else {"schema": schema}
    return Operation(
        operation_id, summary, 200, None, (), ok_content={media_type: content}, authenticated=False
    )


INDEX_OPERATION = Operation(
    "index",
    "Points to the docs: a redirect to /docs, with the way in as JSON",
    307,
    IndexEnvelope,
    (),
    ok_example=IndexEnvelope(INDEX, EXAMPLE_META),
    ok_headers={"Location": header("`/docs`, relative")},
    authenticated=False,
)

routes = [
    ApiRoute("/", index, get=INDEX_OPERATION),
    ApiRoute(
        "/openapi.json",
        openapi_json,
        get=_page("openapi", "This document", "application/json", {"type": "object"}),
    ),
    ApiRoute("/docs", docs_page, get=_page("docs", "Interactive documentation", "text/html")),
    ApiRoute(
        "/docs/init.js",
        docs_init,
        get=_page("docsScript", "Script of the documentation page", "text/javascript"),
    ),
    Mount("/docs/assets", app=DocsAssets(directory=SWAGGER_UI), name="docs-assets"),
]
