"""What the lifespan hands every request: `request.state[...]`, typed."""

from __future__ import annotations

from typing import TypedDict

import asyncpg

from .cursors import CursorCodec
from .schema_state import SchemaState
from .task_store import TaskStore


class AppState(TypedDict):
    """Made once per worker at start, closed at shutdown; handlers take `Request[AppState]`."""

    pool: asyncpg.Pool
    store: TaskStore
    cursors: CursorCodec
    schema: SchemaState
