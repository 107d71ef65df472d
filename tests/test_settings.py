"""Start-up settings: production refuses to run without SECRET_KEY; development warns."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import SecretStr, ValidationError

from app.settings import Settings


def _start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "APP_ENV"}}
    return subprocess.run(
        [sys.executable, "-c", "import app.main"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_production_without_a_secret_key_refuses_to_start() -> None:
    started = _start({"APP_ENV": "production"})
    assert started.returncode != 0
    assert "SECRET_KEY must be set when APP_ENV=production" in started.stderr


def test_development_without_a_secret_key_warns_and_starts() -> None:
    started = _start({"APP_ENV": "development"})
    assert started.returncode == 0, started.stderr
    assert "SECRET_KEY is not set" in started.stderr


def test_production_with_a_secret_key_starts() -> None:
    started = _start({"APP_ENV": "production", "SECRET_KEY": "a-long-production-secret-key"})
    assert started.returncode == 0, started.stderr
    assert "SECRET_KEY is not set" not in started.stderr


def test_an_empty_secret_key_counts_as_none_in_production() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY must be set"):
        Settings(app_env="production", secret_key=SecretStr(""))


def test_a_bad_setting_is_reported_without_the_values_it_holds() -> None:
    # e.g. a URL with its password pasted into the wrong variable: named, not echoed.
    with pytest.raises(ValidationError, match="smtp_timeout") as raised:
        Settings(
            secret_key=SecretStr("k" * 40),
            smtp_timeout="smtp://mailer:mail-password@mail:25",  # type: ignore[arg-type]
        )
    assert "mail-password" not in str(raised.value)
