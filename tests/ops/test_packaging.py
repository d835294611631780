"""The lock files, pyproject.toml and what a platform reads agree with one another."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
PROJECT = PYPROJECT["project"]
# Which extras each lock holds, as the README's `pip-compile` commands make them.
LOCKS = {"requirements.txt": (), "requirements-dev.txt": ("local", "test")}
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)")
_DIRECT = "todo-service (pyproject.toml)"


def _pins(lock: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / lock).read_text("utf-8").splitlines():
        if match := _PIN.match(line):
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _declared(extras: tuple[str, ...]) -> list[Requirement]:
    found = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in extras:
        found += [Requirement(r) for r in PROJECT["optional-dependencies"][extra]]
    return found


def _direct_in_lock(lock: str) -> set[str]:
    """The packages a lock says it took from pyproject.toml (pip-compile's `# via` notes)."""
    direct, current = set(), None
    for line in (ROOT / lock).read_text("utf-8").splitlines():
        if match := _PIN.match(line):
            current = canonicalize_name(match.group(1))
        elif current and line.strip().lstrip("#").strip().removeprefix("via ") == _DIRECT:
            direct.add(current)
    return direct


@pytest.mark.parametrize(("lock", "extras"), LOCKS.items())
def test_every_declared_dependency_is_pinned_within_its_range(lock: str, extras: tuple[str, ...]) -> None:
    pins = _pins(lock)
    for requirement in _declared(extras):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{lock} lacks {name}: rerun pip-compile (README, 'Dependencies')"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{lock} pins {name}=={pins[name]}, outside pyproject.toml's {requirement}"
        )


@pytest.mark.parametrize(("lock", "extras"), LOCKS.items())
def test_the_lock_holds_nothing_pyproject_dropped(lock: str, extras: tuple[str, ...]) -> None:
    declared = {canonicalize_name(r.name) for r in _declared(extras)}
    assert _direct_in_lock(lock) == declared


def test_production_pins_are_the_development_pins() -> None:
    production, development = _pins("requirements.txt"), _pins("requirements-dev.txt")
    assert {name: development.get(name) for name in production} == production


def test_production_leaves_out_the_embedded_database_and_test_tools() -> None:
    production = _pins("requirements.txt")
    assert "pgserver" not in production
    assert not {"pytest", "playwright", "locust", "ruff"} & production.keys()


def test_locks_name_no_machine_local_index() -> None:
    for lock in LOCKS:
        text = (ROOT / lock).read_text("utf-8")
        assert "--find-links" not in text and "--index-url" not in text and "file://" not in text


def test_what_a_platform_reads() -> None:
    python = (ROOT / ".python-version").read_text("utf-8").strip()
    assert re.fullmatch(r"3\.\d+", python)
    assert f">={python}" == PROJECT["requires-python"]
    app = json.loads((ROOT / "app.json").read_text("utf-8"))
    assert {"plan": "heroku-postgresql"} in app["addons"]
    assert app["env"]["BETTER_AUTH_SECRET"]["generator"] == "secret"
    # Behind Heroku's router every connection comes from the router: its forwarded headers are the truth.
    assert app["env"]["FORWARDED_ALLOW_IPS"]["value"] == "*"
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text("utf-8").splitlines())
    assert procfile["release"] == "python -m service migrate"
    assert procfile["web"].endswith("python -m service")


def test_dependency_floors_are_past_known_advisories() -> None:
    floors = {canonicalize_name(r.name): r.specifier for r in _declared(()) if r.name in ("starlette", "h11")}
    assert not floors["starlette"].contains("0.49.0") and floors["starlette"].contains("0.49.1")
    assert not floors["h11"].contains("0.15.0")


def test_app_json_names_what_a_first_deploy_needs() -> None:
    env = json.loads((ROOT / "app.json").read_text("utf-8"))["env"]
    assert env["CURSOR_SECRET"]["generator"] == "secret"
    assert {"JWT_ISSUER", "JWT_AUDIENCE", "BETTER_AUTH_URL", "CORS_ORIGINS", "DB_MAX_CONNECTIONS"} <= set(env)
    # Pinned, so the connection budget a deploy gets does not depend on the dyno Heroku picks.
    assert env["WEB_CONCURRENCY"]["value"].isdigit()
