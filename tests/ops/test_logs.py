"""The access log as the service writes it: one JSON line per request, under its route's template,
without tokens, secrets, task text or user ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.app import create_app
from tests.support.clients import preflight
from tests.support.postgres import Database
from tests.support.servers import LiveServer, settings_for
from tests.support.tokens import SECRET, make_token, new_user

APP = "https://app.example.com"


def _access_lines(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if line["logger"] == "service.access"]


def test_one_json_line_per_request_without_secrets(database: Database, tmp_path: Path) -> None:
    user = new_user()
    token = make_token(user)
    title, description = "PRIVATE-TITLE-7f3a", "PRIVATE-DESCRIPTION-91bc"
    log_path = tmp_path / "access.log"
    settings = settings_for(database.url, cors_origins=(APP,))
    with (
        log_path.open("wb") as log,
        LiveServer(settings, create_app(settings, access_log_fd=log.fileno())) as live,
        live.client() as client,
    ):
        created = client.post(
            f"/api/{user}/tasks",
            json={"title": title, "description": description},
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "log-test-1"},
        )
        task = created.json()["data"]["id"]
        client.get(f"/api/{user}/tasks?q={title}", headers={"Authorization": f"Bearer {token}"})
        client.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}x"})  # a bad token
        client.get(
            f"/api/{user}/tasks/{task}",
            headers={"Authorization": f"Bearer {make_token(user, secret='x' * 40)}"},
        )
        client.get(f"/api/{new_user()}/tasks/{task}", headers={"Authorization": f"Bearer {token}"})
        preflight(client, APP, f"/api/{user}/tasks/{task}/complete")
        client.get("/nowhere", headers={"Authorization": f"Bearer {token}"})
    lines = _access_lines(log_path)
    assert len(lines) == 7
    first = lines[0]
    assert first["message"] == "request"
    assert first["level"] == "info"
    assert first["method"] == "POST"
    assert first["route"] == "/api/{user_id}/tasks"  # the template: the raw path holds the user id
    assert first["status"] == 201
    assert first["request_id"] == "log-test-1"
    assert isinstance(first["duration_ms"], float)
    assert first["user"] and first["user"] != user
    assert first["user"] == lines[1]["user"]  # one user's requests correlate
    # Answered before routing, yet logged under the route they were for, not "unmatched".
    assert [(line["status"], line["route"]) for line in lines[2:]] == [
        (401, "/api/{user_id}/tasks"),
        (401, "/api/{user_id}/tasks/{task_id}"),
        (403, "/api/{user_id}/tasks/{task_id}"),
        (200, "/api/{user_id}/tasks/{task_id}/complete"),
        (404, "unmatched"),
    ]
    everything = log_path.read_text()
    for secret in (token, token.split(".")[2], SECRET, title, description, user, task):
        assert secret not in everything
