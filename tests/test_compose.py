"""Static checks of docker-compose.yml, the Dockerfile and deploy/mosquitto (no Docker needed).

Docker cannot run in CI, so these tests hold the deployment files to the code they deploy:
every command is a real `coldchain` subcommand whose arguments parse, every variable is a
setting the settings object reads, and the production settings validate.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.cli import build_parser
from core.settings import Environment, Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
MOSQUITTO_DIR = ROOT / "deploy" / "mosquitto"
LOCAL_IMAGE = "coldchain:local"

# Services that must run the coldchain image (the file may add more).
EXPECTED_APP_SERVICES = {"migrate", "ingest", "monitor", "alerts", "api", "dashboard", "simulator"}

# Stand-ins for what the operator writes into .env and secrets/ (docs/deployment.md).
SAMPLE_DOTENV = {
    "COLDCHAIN_PUBLIC_URL": "https://coldchain.example.org",
    "COLDCHAIN_DASHBOARD_URL": "https://dashboard.coldchain.example.org",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_FROM_NUMBER": "+15005550006",
}
SAMPLE_SECRETS = {
    "database_url": "postgresql://coldchain:sample-password@db:5432/coldchain",
    "secret_key": "k" * 48,
    "mqtt_ingest_url": "mqtt://ingest:sample-password@broker:1883",
    "mqtt_simulator_url": "mqtt://simulator:sample-password@broker:1883",
    "twilio_auth_token": "sample-auth-token",
    "postgres_password": "sample-password",
}
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")
FULL_VERSION_TAG = re.compile(r"^\d+\.\d+\.\d+")


# -- helpers ---------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


COMPOSE = _compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = sorted(name for name, svc in SERVICES.items() if svc.get("image") == LOCAL_IMAGE)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- NAME=value` form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def _secret_names(service: dict[str, Any]) -> list[str]:
    return [s if isinstance(s, str) else s["source"] for s in service.get("secrets") or []]


def _secret_target(secret: str | dict[str, Any]) -> str:
    if isinstance(secret, str):
        return f"/run/secrets/{secret}"
    target = secret.get("target", secret["source"])
    return target if target.startswith("/") else f"/run/secrets/{target}"


def _setting_names() -> set[str]:
    names = {f.validation_alias for f in Settings.model_fields.values()}
    assert all(isinstance(n, str) for n in names), "every setting needs a string alias"
    return {str(n) for n in names}


def _subcommand_paths(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> set[tuple[str, ...]]:
    """Every runnable path of nested subcommands, e.g. ('db', 'migrate'), ('ingest',)."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        return {prefix}
    paths: set[tuple[str, ...]] = set()
    for group in groups:
        for name, sub in group.choices.items():
            paths |= _subcommand_paths(sub, (*prefix, name))
    return paths


def _command_path(parser: argparse.ArgumentParser, tokens: list[str]) -> tuple[str, ...]:
    """The subcommand tokens at the head of ``tokens`` (stops at the first option)."""
    path: list[str] = []
    current = parser
    for token in tokens:
        groups = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if not groups or token not in groups[0].choices:
            break
        path.append(token)
        current = groups[0].choices[token]
    return tuple(path)


def _tokens(command: Any) -> list[str]:
    assert isinstance(command, list), f"use the exec form (a list) for commands, got {command!r}"
    return [str(t) for t in command]


def _dockerfile_instructions(keyword: str) -> list[str]:
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    return [line.split(None, 1)[1] for line in lines if line.upper().startswith(keyword + " ")]


def _bind_sources(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount, short or long syntax."""
    binds = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/", "~")):
                binds.append((source, target))
        elif volume.get("type") == "bind":
            binds.append((volume["source"], volume["target"]))
    return binds


def _named_volumes(service: dict[str, Any]) -> list[str]:
    names = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source = volume.split(":")[0]
            if not source.startswith((".", "/", "~")):
                names.append(source)
        elif volume.get("type") == "volume":
            names.append(volume["source"])
    return names


def _conf_options(path: Path) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            options.setdefault(key, []).append(value.strip())
    return options


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []


# -- the image ---------------------------------------------------------------------------------


def test_app_services_are_found() -> None:
    assert EXPECTED_APP_SERVICES <= set(APP_SERVICES), (
        f"services running {LOCAL_IMAGE}: {APP_SERVICES}"
    )


def test_dockerfile_entrypoint_is_the_coldchain_cli() -> None:
    entrypoints = _dockerfile_instructions("ENTRYPOINT")
    assert entrypoints, "the Dockerfile has no ENTRYPOINT"
    assert json.loads(entrypoints[-1]) == ["coldchain"]


def test_dockerfile_runs_as_non_root() -> None:
    users = _dockerfile_instructions("USER")
    assert users, "the Dockerfile never switches away from root"
    assert users[-1].strip() not in ("root", "0", "0:0")


def test_dockerfile_copies_every_package_and_only_existing_files() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    sources: set[str] = set()
    for copy in _dockerfile_instructions("COPY"):
        parts = [p for p in copy.split() if not p.startswith("--")]
        sources.update(p.rstrip("/") for p in parts[:-1])
    missing_packages = packages - sources
    assert not missing_packages, f"packages not copied into the image: {sorted(missing_packages)}"
    missing_files = sorted(s for s in sources if not (ROOT / s).exists())
    assert not missing_files, f"the Dockerfile copies files that do not exist: {missing_files}"


def test_app_services_share_one_image_and_keep_its_entrypoint() -> None:
    for name in APP_SERVICES:
        service = SERVICES[name]
        assert service.get("build") in (".", {"context": "."}), f"{name}: build the repo image"
        assert "entrypoint" not in service, f"{name}: overriding the coldchain entrypoint"


# -- commands ----------------------------------------------------------------------------------


def test_subcommand_walk_finds_the_contract_commands() -> None:
    paths = _subcommand_paths(build_parser())
    contract = {
        ("db", "migrate"),
        ("ingest",),
        ("monitor", "run"),
        ("monitor", "evaluate"),
        ("alerts", "run"),
        ("api",),
        ("dashboard",),
        ("simulate",),
        ("devices", "register"),
        ("demo",),
        ("run",),
    }
    assert contract <= paths, f"missing: {sorted(contract - paths)}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_command_is_a_coldchain_subcommand_whose_arguments_parse(name: str) -> None:
    parser = build_parser()
    tokens = _tokens(SERVICES[name].get("command"))
    path = _command_path(parser, tokens)
    assert path in _subcommand_paths(parser), (
        f"{name}: {' '.join(tokens)!r} is not a complete coldchain subcommand"
    )
    try:
        args = parser.parse_args(tokens)
    except SystemExit as exc:  # argparse reports the error on stderr and exits
        pytest.fail(f"{name}: `coldchain {' '.join(tokens)}` does not parse (exit {exc.code})")
    assert callable(getattr(args, "handler", None)), f"{name}: the subcommand has no handler"


@pytest.mark.parametrize("name", ["api", "dashboard"])
def test_servers_listen_on_all_interfaces_of_the_container(name: str) -> None:
    args = build_parser().parse_args(_tokens(SERVICES[name]["command"]))
    assert args.host == "0.0.0.0", f"{name} must listen beyond the container's loopback"
    published = [str(p).rsplit(":", 1)[-1] for p in SERVICES[name].get("ports", [])]
    assert str(args.port) in published, f"{name}: port {args.port} is not the published one"


# -- environment and secrets -------------------------------------------------------------------


@pytest.mark.parametrize("name", APP_SERVICES)
def test_environment_holds_only_known_settings(name: str) -> None:
    known = _setting_names()
    allowed = known | {f"{n}_FILE" for n in known}
    unknown = sorted(set(_environment(SERVICES[name])) - allowed)
    assert not unknown, f"{name}: variables that no setting reads: {unknown}"


def test_database_container_takes_only_postgres_variables() -> None:
    env = _environment(SERVICES["db"])
    assert env, "the db service sets no POSTGRES_* variables"
    assert all(key.startswith("POSTGRES_") for key in env), sorted(env)
    assert "POSTGRES_PASSWORD" not in env, "give the password as POSTGRES_PASSWORD_FILE"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_file_settings_point_at_the_services_own_secrets(name: str) -> None:
    service = SERVICES[name]
    mounted = {_secret_target(s) for s in service.get("secrets") or []}
    declared = COMPOSE.get("secrets") or {}
    for key, value in _environment(service).items():
        if key.endswith("_FILE"):
            assert value in mounted, f"{name}: {key}={value} is not one of its secrets {mounted}"
            assert key.removesuffix("_FILE") not in _environment(service), (
                f"{name}: both {key} and {key.removesuffix('_FILE')} are set"
            )
    for secret in _secret_names(service):
        assert secret in declared, f"{name}: secret {secret!r} is not declared at the top level"


def test_secret_files_live_under_secrets_dir() -> None:
    declared = COMPOSE.get("secrets") or {}
    assert declared, "no secrets declared"
    for name, spec in declared.items():
        # Path drops a leading "./": ./secrets/x has the parts ("secrets", "x").
        assert Path(spec["file"]).parts[0] == "secrets", (
            f"secret {name}: {spec['file']} is outside ./secrets/ (not committed)"
        )


@pytest.mark.parametrize("name", APP_SERVICES)
def test_production_settings_validate_from_the_compose_environment(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's variables, with sample .env and secret values, pass production checks."""
    for setting in _setting_names():
        monkeypatch.delenv(setting, raising=False)
        monkeypatch.delenv(f"{setting}_FILE", raising=False)
    service = SERVICES[name]
    targets = {
        _secret_target(s): n
        for s, n in zip(service.get("secrets") or [], _secret_names(service), strict=True)
    }
    for key, value in _environment(service).items():

        def interpolate(match: re.Match[str]) -> str:
            variable = match["name"]
            assert variable in SAMPLE_DOTENV, f"{name}: add a sample for ${{{variable}}}"
            return SAMPLE_DOTENV[variable]

        value = INTERPOLATION.sub(interpolate, value)
        if key.endswith("_FILE"):
            secret = targets[value]
            assert secret in SAMPLE_SECRETS, f"{name}: add a sample for secret {secret!r}"
            local = tmp_path / secret
            local.write_text(SAMPLE_SECRETS[secret] + "\n", encoding="utf-8")
            value = str(local)
        monkeypatch.setenv(key, value)

    settings = Settings()

    assert settings.environment is Environment.PRODUCTION
    assert settings.log_format == "json"
    assert settings.database_url == SAMPLE_SECRETS["database_url"]
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == SAMPLE_SECRETS["secret_key"]
    assert settings.trusted_proxies != "*"


def test_api_trusts_only_the_gateway_the_host_proxy_connects_from() -> None:
    """X-Forwarded-For names the client only when it comes from the host's reverse proxy.

    The proxy reaches the published loopback port through the gateway of the default
    network, so that gateway, fixed in the file, is the one trusted address.
    """
    ipam = COMPOSE["networks"]["default"]["ipam"]["config"]
    [network] = ipam
    subnet = ipaddress.ip_network(network["subnet"])
    gateway = ipaddress.ip_address(network["gateway"])
    assert gateway in subnet
    trusted = _environment(SERVICES["api"]).get("COLDCHAIN_TRUSTED_PROXIES")
    assert trusted == str(gateway), f"api trusts {trusted!r}, the gateway is {gateway}"
    for name in APP_SERVICES:  # only the api reads client addresses
        if name != "api":
            assert "COLDCHAIN_TRUSTED_PROXIES" not in _environment(SERVICES[name]), name


@pytest.mark.parametrize("name", ["ingest", "simulator"])
def test_mqtt_clients_get_a_broker_url(name: str) -> None:
    env = _environment(SERVICES[name])
    assert "COLDCHAIN_MQTT_URL_FILE" in env or "COLDCHAIN_MQTT_URL" in env
    assert (SERVICES[name].get("depends_on") or {}).get("broker", {}).get(
        "condition"
    ) == "service_healthy"


def test_dollar_signs_are_escaped_or_interpolations() -> None:
    """Compose treats `$` as interpolation: a shell's `$?` must be written `$$?`."""
    for text in _strings(COMPOSE):
        stripped = INTERPOLATION.sub("", text).replace("$$", "")
        assert "$" not in stripped, f"unescaped $ in {text!r}"


# -- images, mounts, dependencies ----------------------------------------------------------------


def _assert_pinned(image: str, where: str) -> None:
    if "@sha256:" in image:
        return
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"{where}: image {image!r} has no tag"
    assert tag != "latest" and FULL_VERSION_TAG.match(tag), (
        f"{where}: image {image!r} is not pinned to a full version"
    )


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        image = service.get("image")
        assert image, f"{name}: no image"
        if "build" in service:
            assert image == LOCAL_IMAGE, f"{name}: built services are tagged {LOCAL_IMAGE}"
        else:
            _assert_pinned(image, name)
    base = _dockerfile_instructions("FROM")
    assert base, "the Dockerfile has no FROM"
    _assert_pinned(base[0].split()[0], "Dockerfile")


def test_bind_mounts_exist_in_the_repo() -> None:
    binds = [(name, src, dst) for name, svc in SERVICES.items() for src, dst in _bind_sources(svc)]
    assert binds, "no bind mounts found (the broker mounts its configuration)"
    for name, source, _target in binds:
        path = (ROOT / source).resolve()
        assert ROOT in path.parents, f"{name}: {source} is outside the repository"
        if path.exists():
            continue
        # Operator-made files (deploy/mosquitto/passwd) ship an example with instructions.
        example = path.with_name(path.name + ".example")
        assert example.exists(), f"{name}: {source} does not exist and has no {example.name}"


def test_operator_made_mounts_fail_loudly_when_missing() -> None:
    """A missing bind source must not silently become an empty directory."""
    for name, service in SERVICES.items():
        for volume in service.get("volumes") or []:
            source = volume if isinstance(volume, str) else volume.get("source", "")
            source = source.split(":")[0]
            if source.startswith(".") and not (ROOT / source).exists():
                assert isinstance(volume, dict), f"{name}: use the long syntax for {source}"
                assert volume.get("bind", {}).get("create_host_path") is False, (
                    f"{name}: set bind.create_host_path: false for {source}"
                )


def test_named_volumes_are_declared() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for volume in _named_volumes(service):
            assert volume in declared, f"{name}: volume {volume!r} is not declared"


def test_healthy_dependencies_have_healthchecks() -> None:
    checked = 0
    for name, service in SERVICES.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: give depends_on conditions"
        for target, spec in depends.items():
            assert target in SERVICES, f"{name} depends on unknown service {target}"
            if spec.get("condition") == "service_healthy":
                checked += 1
                health = SERVICES[target].get("healthcheck") or {}
                assert health.get("test") and not health.get("disable"), (
                    f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
                )
    assert checked, "no service waits for a healthy dependency"


def test_http_services_check_their_health_endpoint() -> None:
    for name in ("api", "dashboard"):
        args = build_parser().parse_args(_tokens(SERVICES[name]["command"]))
        test = " ".join(map(str, SERVICES[name]["healthcheck"]["test"]))
        assert f"http://127.0.0.1:{args.port}/healthz" in test, f"{name}: {test}"


def test_migrate_runs_once_and_gates_the_services() -> None:
    migrate = SERVICES["migrate"]
    assert _tokens(migrate["command"]) == ["db", "migrate"]
    assert str(migrate.get("restart")) == "no", "migrate is one-shot"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    dependants = [name for name in APP_SERVICES if name != "migrate"]
    assert dependants
    for name in dependants:
        condition = (SERVICES[name].get("depends_on") or {}).get("migrate", {}).get("condition")
        assert condition == "service_completed_successfully", (
            f"{name} must wait for migrate to complete, not {condition!r}"
        )


def test_simulator_is_opt_in() -> None:
    assert "simulators" in SERVICES["simulator"].get("profiles", [])
    for name in APP_SERVICES:
        if name != "simulator":
            assert not SERVICES[name].get("profiles"), f"{name} should run by default"


# -- deploy/mosquitto ------------------------------------------------------------------------


def test_broker_mounts_what_mosquitto_conf_reads() -> None:
    options = _conf_options(MOSQUITTO_DIR / "mosquitto.conf")
    broker = SERVICES["broker"]
    targets = {dst: src for src, dst in _bind_sources(broker)}
    assert targets.get("/mosquitto/config/mosquitto.conf") == "./deploy/mosquitto/mosquitto.conf"
    for option in ("password_file", "acl_file"):
        (path,) = options[option]
        assert path in targets, f"mosquitto.conf reads {path}, which the broker does not mount"
    (data_dir,) = options["persistence_location"]
    mounted_dirs = {v.split(":")[1] for v in broker["volumes"] if isinstance(v, str)}
    assert data_dir.rstrip("/") in mounted_dirs, "the persistence directory is not a volume"
    assert options["allow_anonymous"] == ["false"]


THROUGHPUT = (
    "max_inflight_messages",
    "max_queued_messages",
    "max_queued_bytes",
    "max_packet_size",
    "persistent_client_expiration",
)


def test_broker_throughput_settings() -> None:
    options = _conf_options(MOSQUITTO_DIR / "mosquitto.conf")
    # Ingest acknowledges after each batch commit; 20 (the default) would throttle it.
    assert int(options["max_inflight_messages"][0]) >= 1000
    # A 10,000-reading store-and-forward batch is about 2 MB.
    assert int(options["max_packet_size"][0]) >= 2 * 1024 * 1024
    assert options["persistence"] == ["true"]


def test_dev_conf_matches_production_throughput_and_has_only_global_options() -> None:
    production = _conf_options(MOSQUITTO_DIR / "mosquitto.conf")
    dev = _conf_options(MOSQUITTO_DIR / "dev.conf")
    for option in THROUGHPUT:
        assert dev.get(option) == production.get(option), f"dev.conf differs on {option}"
    # Callers prepend the listener and persistence lines (see the header of dev.conf).
    for option in (
        "listener",
        "port",
        "persistence_location",
        "password_file",
        "acl_file",
        "allow_anonymous",
    ):
        assert option not in dev, f"dev.conf must not set {option}"
    assert dev.get("per_listener_settings") == ["false"]


def test_acl_confines_loggers_to_their_own_topics() -> None:
    lines = [
        line.split()
        for line in (MOSQUITTO_DIR / "acl").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    patterns = {" ".join(parts[1:]) for parts in lines if parts[0] == "pattern"}
    assert patterns == {"write coldchain/v1/+/%u/telemetry", "write coldchain/v1/+/%u/status"}
    assert ["user", "ingest"] in lines
    ingest_grants = lines[lines.index(["user", "ingest"]) + 1]
    assert ingest_grants == ["topic", "read", "coldchain/v1/#"]
