"""service/app.py at start: the objects made while starting are frozen out of the garbage collector."""

from __future__ import annotations

import gc
from collections.abc import Callable

from service.app import GC_YOUNG_THRESHOLD
from tests.support.servers import LiveServer


def test_a_started_worker_keeps_its_start_objects_out_of_the_collector(
    make_server: Callable[..., LiveServer],
) -> None:
    """Full collections would walk every module and table made at start (see README, Performance)."""
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    server = make_server()
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
