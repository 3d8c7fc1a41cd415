"""The OpenAPI document of the app: ``python -m landscope_service.api.openapi``.

The committed copy (``api/openapi.json``) is checked against the app by a test, and the
SDK's options classes are generated from it (``make sdk``).
"""

from __future__ import annotations

import json
from typing import Any

from ..settings import load_settings

__all__ = ["generate"]


def generate() -> dict[str, Any]:
    from . import create_app

    app = create_app(settings=load_settings(environ={}))
    spec: dict[str, Any] = app.extensions["landscope_api"].spec.to_dict()
    return spec


def main() -> None:
    print(json.dumps(generate(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
