from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import StartupError
from core.settings import MqttTarget, load_settings


def test_reads_contract_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_DATABASE_URL", "postgresql://u@db:5432/cc")
    monkeypatch.setenv("COLDCHAIN_MQTT_URL", "mqtts://ingest:s%40cret@broker.example:8883")
    monkeypatch.setenv("COLDCHAIN_TOPIC_PREFIX", "acme/v2/")
    settings = load_settings()
    assert settings.database_url == "postgresql://u@db:5432/cc"
    assert settings.topic_prefix == "acme/v2"
    target = settings.mqtt
    assert (target.host, target.port, target.tls) == ("broker.example", 8883, True)
    assert (target.username, target.password) == ("ingest", "s@cret")
    assert "s@cret" not in target.redacted()


def test_secret_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("k" * 40 + "\n")
    monkeypatch.delenv("COLDCHAIN_SECRET_KEY", raising=False)
    monkeypatch.setenv("COLDCHAIN_SECRET_KEY_FILE", str(secret))
    settings = load_settings()
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "k" * 40


def test_unreadable_secret_file_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(StartupError, match="TWILIO_AUTH_TOKEN_FILE"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("COLDCHAIN_DATABASE_URL", "mysql://x"),
        ("COLDCHAIN_MQTT_URL", "http://broker:1883"),
        ("COLDCHAIN_TOPIC_PREFIX", "coldchain/#"),
        ("COLDCHAIN_PUBLIC_URL", "ftp://x"),
        ("COLDCHAIN_LOG_FORMAT", "xml"),
    ],
)
def test_malformed_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(StartupError, match=name):
        load_settings()


def test_production_refuses_insecure_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_ENV", "production")
    monkeypatch.setenv("COLDCHAIN_SECRET_KEY", "short")
    monkeypatch.setenv("COLDCHAIN_PUBLIC_URL", "https://cc.example")
    with pytest.raises(StartupError, match="COLDCHAIN_SECRET_KEY must be at least 32"):
        load_settings()
    monkeypatch.setenv("COLDCHAIN_SECRET_KEY", "x" * 32)
    monkeypatch.setenv("COLDCHAIN_PUBLIC_URL", "http://cc.example")
    with pytest.raises(StartupError, match="https"):
        load_settings()


def test_partial_twilio_settings_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC123")
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("TWILIO_FROM_NUMBER", raising=False)
    with pytest.raises(StartupError, match="must be set together"):
        load_settings()


def test_missing_urls_explain_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLDCHAIN_DATABASE_URL", raising=False)
    monkeypatch.delenv("COLDCHAIN_MQTT_URL", raising=False)
    settings = load_settings()
    with pytest.raises(StartupError, match="COLDCHAIN_DATABASE_URL is not set"):
        settings.require_database_url()
    with pytest.raises(StartupError, match="COLDCHAIN_MQTT_URL is not set"):
        settings.mqtt  # noqa: B018


def test_mqtt_protocol_option() -> None:
    assert MqttTarget("mqtt://h:1884?protocol=3.1.1").mqtt_v5 is False
    assert MqttTarget("mqtt://h").mqtt_v5 is True
    with pytest.raises(ValueError, match="protocol"):
        MqttTarget("mqtt://h?protocol=4")


def test_empty_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_FROM_NUMBER",
        "COLDCHAIN_DATABASE_URL",
    ):
        monkeypatch.setenv(name, "")
    settings = load_settings()
    assert settings.twilio_enabled is False and settings.database_url is None


def test_trusted_proxies_are_addresses_or_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLDCHAIN_TRUSTED_PROXIES", raising=False)
    assert load_settings().trusted_proxies == "127.0.0.1,::1"
    monkeypatch.setenv("COLDCHAIN_TRUSTED_PROXIES", " 172.30.80.1 , 10.0.0.0/8,fd00::/8 ")
    assert load_settings().trusted_proxies == "172.30.80.1,10.0.0.0/8,fd00::/8"
    # uvicorn would take these as literal names that never match: refused, named.
    for bad in ("proxy.internal", "10.0.0.1/8", "", "127.0.0.1,*"):
        monkeypatch.setenv("COLDCHAIN_TRUSTED_PROXIES", bad)
        with pytest.raises(StartupError, match="COLDCHAIN_TRUSTED_PROXIES"):
            load_settings()


def test_production_refuses_trusting_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDCHAIN_TRUSTED_PROXIES", "*")
    monkeypatch.setenv("COLDCHAIN_ENV", "development")
    assert load_settings().trusted_proxies == "*"
    monkeypatch.setenv("COLDCHAIN_ENV", "production")
    monkeypatch.setenv("COLDCHAIN_SECRET_KEY", "x" * 32)
    monkeypatch.setenv("COLDCHAIN_PUBLIC_URL", "https://cc.example")
    with pytest.raises(StartupError, match='COLDCHAIN_TRUSTED_PROXIES must not be "\\*"'):
        load_settings()
    monkeypatch.setenv("COLDCHAIN_TRUSTED_PROXIES", "172.30.80.1")
    assert load_settings().trusted_proxies == "172.30.80.1"
