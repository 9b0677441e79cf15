"""`.env.example` documents every setting, and only real ones."""

from __future__ import annotations

import re
from pathlib import Path

from core.settings import Settings


def test_env_example_matches_settings(repo_root: Path) -> None:
    text = (repo_root / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    settings = {str(field.validation_alias) for field in Settings.model_fields.values()}
    test_only = {"COLDCHAIN_TEST_DATABASE_URL", "COLDCHAIN_TEST_MQTT_URL"}
    assert settings - documented == set(), "settings missing from .env.example"
    assert documented - settings - test_only == set(), ".env.example names unknown variables"
