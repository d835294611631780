-- Sync across devices: the changes feed and its notifications.
--
-- Every write to a user's tasks takes the next number of that user's change counter
-- (users.change_seq), inside the writing transaction, by writing the user's row. The row lock
-- taken there is held until commit, so a second writer of the same user waits for the first to
-- commit before it can take a number: one user's numbers are handed out in commit order, and a
-- reader that sees number n sees every number below it. Other users' writes never wait.
-- Triggers do it, so every statement that writes tasks, today's and tomorrow's, is covered.
--
-- The user's row is written once when a transaction takes its first number, and once more at
-- the end of each statement that took several: the numbers in between are counted in a
-- transaction-local setting. (Writing the row once per task would leave one row version per
-- task in the transaction, and each write would walk all of them: a statement on thousands of
-- tasks would take minutes.)
--
-- Lock order: a row trigger runs after its task row is locked, so a write locks the task, then
-- the user. A statement that UPDATEs several tasks of a user would lock the user at its first
-- row and then wait for the next rows, while a single-task write holding one of those rows
-- waits for the user: a deadlock. Such a statement must first lock its rows in the same
-- transaction (SELECT ... FOR UPDATE), before any trigger runs. A DELETE needs nothing: its
-- AFTER triggers run once all its rows are locked.

ALTER TABLE users ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;

ALTER TABLE tasks ADD COLUMN change_seq bigint;

-- Existing tasks are numbered in the order they last changed.
UPDATE tasks t
SET change_seq = numbered.seq
FROM (
    SELECT user_id, id, row_number() OVER (PARTITION BY user_id ORDER BY updated_at, id) AS seq
    FROM tasks
) numbered
WHERE t.user_id = numbered.user_id AND t.id = numbered.id;

UPDATE users u
SET change_seq = latest.seq
FROM (SELECT user_id, max(change_seq) AS seq FROM tasks GROUP BY user_id) latest
WHERE u.id = latest.user_id;

ALTER TABLE tasks ALTER COLUMN change_seq SET NOT NULL;
CREATE INDEX tasks_user_change_idx ON tasks (user_id, change_seq);

-- A deleted task, remembered (for SYNC_RETENTION) so that clients learn of the deletion.
CREATE TABLE task_tombstones (
    user_id    text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    change_seq bigint      NOT NULL,
    id         uuid        NOT NULL,
    deleted_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, change_seq)
);
CREATE INDEX task_tombstones_deleted_idx ON task_tombstones (deleted_at);

-- The next `n` numbers of a user's counter; returns the last. The transaction's state is
-- {"user id": [number written to the user's row, last number taken]}.
CREATE FUNCTION take_change_numbers(uid text, n bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    state jsonb := coalesce(nullif(current_setting('todo.change_numbers', true), ''), '{}')::jsonb;
    last  bigint;
BEGIN
    IF state ? uid THEN
        last := (state -> uid ->> 1)::bigint + n;
        state := jsonb_set(state, ARRAY[uid, '1'], to_jsonb(last));
    ELSE
        -- The first number of this transaction: lock the user's row until commit (creating it on
        -- the user's first task), and wake their event streams once the transaction commits
        -- (with the user id only: a stream re-reads from its position, so it needs no task data).
        INSERT INTO users AS u (id, change_seq) VALUES (uid, n)
        ON CONFLICT (id) DO UPDATE SET change_seq = u.change_seq + n
        RETURNING u.change_seq INTO last;
        state := state || jsonb_build_object(uid, jsonb_build_array(last, last));
        PERFORM pg_notify('task_changes', uid);
    END IF;
    PERFORM set_config('todo.change_numbers', state::text, true);
    RETURN last;
END
$$;

-- At the end of a statement: write each user's last number taken to their row.
CREATE FUNCTION write_change_numbers() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    state   jsonb := coalesce(nullif(current_setting('todo.change_numbers', true), ''), '{}')::jsonb;
    entry   record;
    written boolean := false;
BEGIN
    FOR entry IN SELECT key, value FROM jsonb_each(state) WHERE (value ->> 1)::bigint > (value ->> 0)::bigint LOOP
        UPDATE users SET change_seq = (entry.value ->> 1)::bigint WHERE id = entry.key;
        state := jsonb_set(state, ARRAY[entry.key, '0'], entry.value -> 1);
        written := true;
    END LOOP;
    IF written THEN
        PERFORM set_config('todo.change_numbers', state::text, true);
    END IF;
END
$$;

-- Inserts and updates: number each row.
CREATE FUNCTION tasks_number_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_seq := take_change_numbers(NEW.user_id, 1);
    RETURN NEW;
END
$$;

CREATE TRIGGER tasks_numbered BEFORE INSERT OR UPDATE ON tasks
FOR EACH ROW EXECUTE FUNCTION tasks_number_change();

CREATE FUNCTION tasks_write_change_numbers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM write_change_numbers();
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_numbers_written AFTER INSERT OR UPDATE ON tasks
FOR EACH STATEMENT EXECUTE FUNCTION tasks_write_change_numbers();

-- Deletes (one task, or every completed one at once): a tombstone for each, numbered in one go.
CREATE FUNCTION tasks_keep_tombstones() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    batch record;
    last  bigint;
BEGIN
    FOR batch IN SELECT gone.user_id, count(*) AS n FROM gone GROUP BY gone.user_id LOOP
        -- No user row: the user is being deleted with all their tasks, and nobody is left to tell.
        CONTINUE WHEN NOT EXISTS (SELECT FROM users WHERE id = batch.user_id);
        last := take_change_numbers(batch.user_id, batch.n);
        INSERT INTO task_tombstones (user_id, change_seq, id, deleted_at)
        SELECT batch.user_id, last - batch.n + row_number() OVER (ORDER BY gone.id), gone.id, clock_timestamp()
        FROM gone
        WHERE gone.user_id = batch.user_id;
    END LOOP;
    PERFORM write_change_numbers();
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_tombstoned AFTER DELETE ON tasks
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION tasks_keep_tombstones();
