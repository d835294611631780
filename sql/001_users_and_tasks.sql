-- Users are Better Auth's; we only keep their id, made on a user's first write.
CREATE TABLE users (
    id         text        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Keyed by (user_id, id): every lookup names its owner, and the table can be sharded by user.
CREATE TABLE tasks (
    user_id     text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id          uuid        NOT NULL,
    title       text        NOT NULL,
    description text,
    completed   boolean     NOT NULL DEFAULT false,
    version     integer     NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, id),
    CONSTRAINT tasks_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
    CONSTRAINT tasks_description_length CHECK (char_length(description) <= 2000)
);

-- The default listing: one user's tasks, newest first.
CREATE INDEX tasks_user_created_idx ON tasks (user_id, created_at DESC, id DESC);
