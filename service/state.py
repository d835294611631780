"""What the lifespan hands every request: `request.state[...]`, typed, made of each feature's slice."""

from __future__ import annotations

from service.db.state import DbState
from service.lists.state import ListsState
from service.sync.state import SyncState
from service.tasks.state import TasksState


class AppState(DbState, TasksState, ListsState, SyncState):
    """Made once per worker at start, closed at shutdown; a handler types its request by its own slice."""
