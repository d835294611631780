-- Keyset pagination for the other sorts; each index is read forwards or backwards.
CREATE INDEX tasks_user_updated_idx ON tasks (user_id, updated_at DESC, id DESC);
CREATE INDEX tasks_user_title_idx ON tasks (user_id, title COLLATE "C", id);

-- Idempotency keys of POST /tasks, per user; status is null while the first request is in flight.
-- No foreign key: a key is claimed before the user's first task exists, and it expires in 24 h anyway.
CREATE TABLE idempotency_keys (
    user_id      text        NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    status       smallint,
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
