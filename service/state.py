"""What the lifespan hands every request: `request.state[...]`, typed."""

from __future__ import annotations

from typing import TypedDict

import asyncpg

from service.db.schema_state import SchemaState
from service.sync.hub import ChangeHub
from service.sync.tokens import SyncTokens
from service.tasks.cursors import CursorCodec
from service.tasks.store import ChangeStore, TaskStore


class AppState(TypedDict):
    """Made once per worker at start, closed at shutdown; handlers take `Request[AppState]`."""

    pool: asyncpg.Pool
    store: TaskStore
    cursors: CursorCodec
    schema: SchemaState
    changes: ChangeStore
    sync_tokens: SyncTokens
    sync_retention: int
    hub: ChangeHub
