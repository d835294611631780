"""The database's slice of the lifespan state: the pool, the runner every store shares, the schema's state."""

from __future__ import annotations

from typing import TypedDict

import asyncpg

from service.db.schema_state import SchemaState
from service.db.statements import Runner


class DbState(TypedDict):
    pool: asyncpg.Pool
    runner: Runner
    schema: SchemaState
