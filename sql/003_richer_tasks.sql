-- Contract §8: due dates, priority, tags, completion time and a manual order on tasks, and a
-- per-user task counter (the quota and stats.total) with the counter new first positions come from.
--
-- Like every migration this file runs in one transaction (service/migrations.py), so its index
-- builds cannot be CONCURRENTLY (PostgreSQL refuses that inside a transaction). ALTER TABLE holds
-- the tasks table's exclusive lock to the end anyway, and the one UPDATE below must touch every
-- task to give it a position, so the table is unavailable for the length of this file: about a
-- second per 100,000 tasks (README, "Upgrading to v2"). The new columns themselves cost nothing:
-- PostgreSQL stores a constant default once, without rewriting the table.

ALTER TABLE users
    ADD COLUMN task_count    integer NOT NULL DEFAULT 0,
    -- The lowest integer part of any of the user's positions (service/positions.py): a new first
    -- task takes position_head - 1, counted down in the statement that inserts it.
    ADD COLUMN position_head bigint  NOT NULL DEFAULT 0;

-- An enum sorts in the order its values are declared: sorting by priority is sorting by rank.
CREATE TYPE task_priority AS ENUM ('none', 'low', 'medium', 'high');

ALTER TABLE tasks
    ADD COLUMN due_at       timestamptz,
    ADD COLUMN priority     task_priority NOT NULL DEFAULT 'none',
    ADD COLUMN tags         text[]        NOT NULL DEFAULT '{}',
    -- The tags case-folded by the service (str.casefold), one per tag: what the tag filter and
    -- the stats compare. Folded in Python, not by lower(), whose result depends on the database's
    -- locale, so every deployment agrees with the service's own de-duplication.
    ADD COLUMN tag_keys     text[]        NOT NULL DEFAULT '{}',
    ADD COLUMN completed_at timestamptz,
    ADD COLUMN position     text COLLATE "C";

-- v1 tasks keep the order they were listed in, newest first: integer parts 0, 1, 2, ...
-- (lpad(to_hex(n + 2^47), 12, '0') is service/positions.py's int_key; a test holds them equal).
-- Completed v1 tasks were completed at their last update at the latest.
UPDATE tasks AS t
SET position = lpad(to_hex(o.n + 140737488355328), 12, '0'),
    completed_at = CASE WHEN t.completed THEN t.updated_at END
FROM (
    SELECT user_id, id, row_number() OVER (PARTITION BY user_id ORDER BY created_at DESC, id DESC) - 1 AS n
    FROM tasks
) AS o
WHERE t.user_id = o.user_id AND t.id = o.id;

UPDATE users AS u
SET task_count = c.n
FROM (SELECT user_id, count(*) AS n FROM tasks GROUP BY user_id) AS c
WHERE u.id = c.user_id;

ALTER TABLE users
    ADD CONSTRAINT users_task_count_range CHECK (task_count >= 0);

ALTER TABLE tasks
    ALTER COLUMN position SET NOT NULL,
    ADD CONSTRAINT tasks_tags_count CHECK (cardinality(tags) <= 20 AND cardinality(tag_keys) = cardinality(tags)),
    ADD CONSTRAINT tasks_completed_at CHECK ((completed_at IS NOT NULL) = completed),
    ADD CONSTRAINT tasks_due_at_finite CHECK (isfinite(due_at)),
    ADD CONSTRAINT tasks_position_format CHECK (position ~ '^[0-9a-f]{12}[0-9A-Za-z]{0,52}$'),
    -- Two tasks of a user never share a position, whatever writes race: this index is the proof.
    -- It also serves sort=position.
    ADD CONSTRAINT tasks_user_position_key UNIQUE (user_id, position);

-- One index per new sort, read in one direction each (keyset pagination, no sort step).
-- A missing due date sorts last both ways: it is indexed as +infinity ascending, -infinity descending.
CREATE INDEX tasks_user_due_idx ON tasks (user_id, coalesce(due_at, 'infinity'::timestamptz), id);
CREATE INDEX tasks_user_due_desc_idx
    ON tasks (user_id, coalesce(due_at, '-infinity'::timestamptz) DESC, id DESC);
-- sort=priority reads it forwards, sort=-priority backwards.
CREATE INDEX tasks_user_priority_idx ON tasks (user_id, priority, created_at, id);
