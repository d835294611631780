"""Everything under tests/system/ is marked `system`, so `python -m tests -m "not system"` leaves it out.

A system test needs more than the suite's PostgreSQL and in-process servers: Node, a browser,
PostgreSQL clusters or PgBouncer of its own, `python -m service` in a subprocess, or seconds of load
or data. A test like that belongs in this folder; the marker follows from where it lives.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.system)
