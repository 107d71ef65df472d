"""The OpenAPI document as the app generates it: `python -m app.openapi [PATH]` writes it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from app.settings import Settings

COMMITTED = Path(__file__).resolve().parent / "openapi.json"


def document() -> dict[str, Any]:
    from app.main import create_app

    # The document does not depend on settings; fixed ones keep start-up quiet.
    settings = Settings(app_env="test", secret_key=SecretStr("openapi-document-only"))
    return create_app(settings).openapi()


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.openapi", description="Write the app's OpenAPI document."
    )
    parser.add_argument(
        "path", nargs="?", type=Path, default=COMMITTED, help=f"where (default: {COMMITTED})"
    )
    target: Path = parser.parse_args(argv).path
    target.write_text(render(document()), encoding="utf-8")
    print(f"Wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
