"""Test helpers, one module per job. The names the single support.py had are re-exported here, so
`from tests.support import X` keeps working; the other helpers are imported from their modules.

- tokens: the shared secret, signed tokens, new user ids, a clock tests move
- postgres: the PostgreSQL the suite runs on, fresh migrated databases, a row held locked
- servers: the app on a live uvicorn server, in-process, or as `python -m service`
- assertions: an error in the envelope, a refused field, a statement past its timeout
- clients: one user's view of the API, bursts, walks under churn, racing workers, a CORS preflight
- raw_http: HTTP over a raw socket, for request heads that arrive in pieces or never end
- metrics: a Prometheus exposition read back into its samples
- readme: the README's blocks marked for testing
- pg_cluster: a PostgreSQL of a test's own, to stop and start, and PgBouncer before it
- sse: a reader for the event stream, and writes that a stream should announce
- jwks_server: a stand-in JWKS endpoint, and tokens forged against public keys
- better_auth: the real Better Auth under Node
"""

from tests.support.assertions import assert_error, assert_statement_timeout, invalid_field
from tests.support.clients import UserClient, burst, create_task, run_together, walk_under_churn
from tests.support.postgres import (
    Database,
    _with_database,
    create_database,
    fresh_database,
    postgres_server,
    row_locked,
)
from tests.support.servers import (
    InProcessApp,
    LiveServer,
    free_port,
    run_cli,
    settings_for,
    start_service,
)
from tests.support.tokens import SECRET, FakeClock, auth, make_token, new_user

__all__ = [
    "SECRET",
    "Database",
    "FakeClock",
    "InProcessApp",
    "LiveServer",
    "UserClient",
    "_with_database",
    "assert_error",
    "assert_statement_timeout",
    "auth",
    "burst",
    "create_database",
    "create_task",
    "free_port",
    "fresh_database",
    "invalid_field",
    "make_token",
    "new_user",
    "postgres_server",
    "row_locked",
    "run_cli",
    "run_together",
    "settings_for",
    "start_service",
    "walk_under_churn",
]
