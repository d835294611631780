"""service/ops/metrics.py: /metrics is off by default, behind a token of its own, and counts by route."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.support.metrics import metric_samples
from tests.support.servers import LiveServer
from tests.support.tokens import auth, new_user


def test_metrics_are_off_by_default(client: httpx.Client) -> None:
    assert client.get("/metrics").status_code == 404


def test_metrics_behind_their_own_token(make_server: Callable[..., LiveServer]) -> None:
    live = make_server(metrics_enabled=True, metrics_token="metrics-token-0123456789-Vq7hZ2kX")
    user = new_user()
    with live.client() as client:
        client.post(f"/api/{user}/tasks", json={"title": "counted"}, headers=auth(user))
        client.get(f"/api/{user}/tasks", headers=auth(user))
        client.get(f"/api/{user}/tasks")  # refused before routing, still counted under its route
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=auth(user)).status_code == 401  # an API token is not enough
        response = client.get(
            "/metrics", headers={"Authorization": "Bearer metrics-token-0123456789-Vq7hZ2kX"}
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = metric_samples(response.text)
    tasks = "/api/{user_id}/tasks"
    assert samples[("http_requests_total", (("method", "POST"), ("route", tasks), ("status", "201")))] == 1
    assert samples[("http_requests_total", (("method", "GET"), ("route", tasks), ("status", "401")))] == 1
    assert samples[("http_request_duration_seconds_bucket", (("le", "+Inf"), ("route", tasks)))] == 3
    assert samples[("db_pool_max_connections", ())] == 20
    assert ("db_pool_connections", (("state", "idle"),)) in samples
    assert user not in response.text
