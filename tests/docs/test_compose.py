"""compose.yaml: syncd and PostgreSQL, wired so that the mounted config talks to the db service."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from syncd.config import load_config
from tests.docs.support import REPO

COMPOSE = REPO / "compose.yaml"
# Compose's own interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}.
_COMPOSE_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if isinstance(value, str):
        return _COMPOSE_VAR.sub(lambda m: env.get(m.group(1), ""), value)
    return value


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_compose_file_runs_syncd_after_a_healthy_postgres() -> None:
    """compose.yaml parses as YAML; syncd builds from this repo and waits for the db's healthcheck."""
    services = _compose()["services"]
    assert set(services) == {"db", "syncd"}
    assert services["db"]["image"].startswith("postgres:")
    assert services["db"]["healthcheck"]["test"]
    assert services["syncd"]["build"] == "."
    assert services["syncd"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_compose_config_points_the_ledger_at_the_db_service() -> None:
    """The config compose mounts exists, passes validation with compose's environment, uses PostgreSQL
    on the db service with the db's own credentials, and listens on the published port."""
    compose = _compose()
    operator_env = {name: f"{name.lower()}-0123456789" for name in _COMPOSE_VAR.findall(COMPOSE.read_text())}
    services = _interpolate(compose["services"], operator_env)
    syncd = services["syncd"]
    (mount,) = [v for v in syncd["volumes"] if v.split(":")[1] == "/etc/syncd/syncd.yaml"]
    config_path = REPO / Path(mount.split(":")[0])
    assert config_path.is_file(), f"compose mounts {config_path}, which does not exist"

    config = load_config(config_path, env={k: str(v) for k, v in syncd["environment"].items()})
    db = services["db"]["environment"]
    assert config.database_url == (
        f"postgresql+psycopg://{db['POSTGRES_USER']}:{db['POSTGRES_PASSWORD']}@db:5432/{db['POSTGRES_DB']}"
    )
    published = {int(p.split(":")[-1]) for p in syncd["ports"]}
    assert config.server.port in published
    # Inside the container loopback is unreachable from the published port: every interface, and
    # then the token that guards status and metrics.
    assert config.server.host == "0.0.0.0"
    assert config.api.token is not None
    assert not config.warnings()
    volumes = {v.split(":")[0] for v in syncd["volumes"]}
    assert set(compose["volumes"]) >= {v for v in volumes if not v.startswith(".")}
