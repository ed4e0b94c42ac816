"""The published API description: the OpenAPI document and its Swagger UI, both served by the app.

Swagger UI 5 (it reads OpenAPI 3.1) comes from the ``swagger-ui-py`` package and is served under
``/docs-assets``: the docs page loads nothing from outside the app. The request bodies are
published with msgspec's own JSON schema, the rules the decoder enforces: Litestar's generator
drops the constraints of a union's arms and hoists those of an optional field (a ``ge=0`` is lost
on the way), so a generated client or fuzzer would send what the decoder refuses.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components

from webapp.security import API_KEY_SCHEME, API_KEY_SECURITY_SCHEME

DOCS_ASSETS_PATH = "/docs-assets"


def swagger_assets_dir() -> Path:
    """Swagger UI 5's files, found without importing ``swagger_ui`` (its ``__init__`` loads Jinja and YAML)."""
    spec = importlib.util.find_spec("swagger_ui")
    static = (
        Path(next(iter(spec.submodule_search_locations))) / "static"
        if spec is not None and spec.submodule_search_locations
        else None
    )
    if static is None or not (static / "swagger-ui-bundle.js").is_file():
        # a dependency of the package: the docs never fall back to a CDN
        raise RuntimeError("swagger-ui-py's static files are missing: reinstall the project")
    return static


def openapi_config(version: str) -> OpenAPIConfig:
    """The OpenAPI document at ``/docs/openapi.json`` and Swagger UI at ``/docs/swagger``."""
    swagger = SwaggerRenderPlugin(
        js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-standalone-preset.js",
        path="/swagger",
        favicon=f"<link rel='icon' type='image/png' href='{DOCS_ASSETS_PATH}/favicon-32x32.png'>",
    )
    return OpenAPIConfig(
        title="Fraud detector",
        version=version,
        description=(
            "Real-time credit-card fraud scoring. `POST /predict` scores one transaction in the Kaggle "
            "schema against the card's history in the warehouse; `POST /predict/batch` up to 1,000. "
            "The dashboard is at `/dashboard/`."
        ),
        path="/docs",
        render_plugins=[swagger],
        components=Components(security_schemes={API_KEY_SCHEME: API_KEY_SECURITY_SCHEME}),
    )


def publish_decoder_schemas(app: Litestar, *structs: type[msgspec.Struct]) -> None:
    """Publish ``structs`` (and the structs they hold) with msgspec's JSON schema instead of Litestar's.

    The generated document is built here once (Litestar would build it at the first docs request);
    components of the same name are replaced, examples and descriptions included.
    """
    openapi = app.openapi_schema
    _, components = msgspec.json.schema_components(structs, ref_template="#/components/schemas/{name}")
    schemas: dict[str, Any] = openapi.components.schemas
    for name, schema in components.items():
        if name in schemas:
            # a plain dict serialises as itself in Litestar's spec objects
            schemas[name] = schema
