-- Stats without reading a heavy user's tasks one by one. What a counter can keep is kept: how
-- many of the user's tasks are completed (users.completed_count, beside task_count), and how many
-- active tasks carry each tag in each spelling (tag_counts: the stats show a tag in its most used
-- spelling, so the spellings are counted apart). Overdue depends on the clock, so it cannot be a
-- counter: a partial index holds only the active tasks with a due date, and the count reads the
-- overdue ones alone (README, "Scale").
--
-- Statement-level triggers keep the counters, like sql/004's change numbers: every statement
-- that writes tasks, today's and tomorrow's, is covered, and a statement on thousands of tasks
-- writes each counter row once (from its transition tables), not once per task. Lock order is
-- sql/004's: the task rows, then the user's row, then the counters; inserts and updates have
-- locked the user's row in their row trigger already, and deletes lock it here first. A statement
-- that changes no completion and no active tag writes nothing.

ALTER TABLE users ADD COLUMN completed_count integer NOT NULL DEFAULT 0;

UPDATE users AS u
SET completed_count = c.n
FROM (SELECT user_id, count(*) AS n FROM tasks WHERE completed GROUP BY user_id) AS c
WHERE u.id = c.user_id;

-- Not also <= task_count: clear-completed lowers task_count in its statement and this counter
-- in the trigger after it, so the two rows in between need not agree.
ALTER TABLE users ADD CONSTRAINT users_completed_count_range CHECK (completed_count >= 0);

CREATE TABLE tag_counts (
    user_id text           NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tag_key text COLLATE "C" NOT NULL,
    tag     text COLLATE "C" NOT NULL,
    -- No CHECK (tasks >= 0): an upsert checks its proposed row (a decrement, negative) before it
    -- finds the conflict it will update instead.
    tasks   integer        NOT NULL,
    PRIMARY KEY (user_id, tag_key, tag)
);

INSERT INTO tag_counts (user_id, tag_key, tag, tasks)
SELECT t.user_id, k.key, k.tag, count(*)
FROM tasks AS t, unnest(t.tags, t.tag_keys) AS k (tag, key)
WHERE NOT t.completed
GROUP BY 1, 2, 3;

-- A statement's effect on the counters: `rows` holds its rows before (sign -1) and after (+1).
CREATE FUNCTION apply_task_counts(changed jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE users AS u SET completed_count = u.completed_count + d.n
    FROM (
        SELECT r.user_id, sum(r.sign) AS n
        FROM jsonb_to_recordset(changed) AS r (user_id text, sign int, completed boolean)
        WHERE r.completed
        GROUP BY r.user_id
        HAVING sum(r.sign) <> 0
    ) AS d
    WHERE u.id = d.user_id;
    INSERT INTO tag_counts AS c (user_id, tag_key, tag, tasks)
    SELECT r.user_id, k.key, k.tag, sum(r.sign)
    FROM jsonb_to_recordset(changed) AS r (user_id text, sign int, completed boolean, tags text[], tag_keys text[]),
         unnest(r.tags, r.tag_keys) AS k (tag, key)
    WHERE NOT r.completed
    GROUP BY 1, 2, 3
    HAVING sum(r.sign) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (user_id, tag_key, tag) DO UPDATE SET tasks = c.tasks + excluded.tasks;
    DELETE FROM tag_counts AS c
    WHERE c.tasks = 0 AND c.user_id IN (SELECT r.user_id FROM jsonb_to_recordset(changed) AS r (user_id text));
END
$$;

CREATE FUNCTION tasks_count_completed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed jsonb;
BEGIN
    -- Only what the counters read, and only rows that can move them (tagged or completed).
    IF TG_OP = 'INSERT' THEN
        SELECT jsonb_agg(jsonb_build_object('user_id', user_id, 'sign', 1, 'completed', completed, 'tags', tags, 'tag_keys', tag_keys))
        INTO changed FROM new_rows WHERE completed OR tag_keys <> '{}';
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM FROM users WHERE id IN (SELECT user_id FROM old_rows) ORDER BY id FOR UPDATE;
        SELECT jsonb_agg(jsonb_build_object('user_id', user_id, 'sign', -1, 'completed', completed, 'tags', tags, 'tag_keys', tag_keys))
        INTO changed FROM old_rows WHERE completed OR tag_keys <> '{}';
    ELSE
        -- Rows whose completion and tags stayed as they were cancel out: leave them out early.
        SELECT jsonb_agg(x) INTO changed FROM (
            SELECT jsonb_build_object('user_id', n.user_id, 'sign', 1, 'completed', n.completed, 'tags', n.tags, 'tag_keys', n.tag_keys) AS x
            FROM new_rows AS n
            WHERE (n.completed OR n.tag_keys <> '{}')
              AND NOT EXISTS (
                  SELECT FROM old_rows AS o
                  WHERE o.user_id = n.user_id AND o.id = n.id
                    AND o.completed = n.completed AND o.tags = n.tags AND o.tag_keys = n.tag_keys)
            UNION ALL
            SELECT jsonb_build_object('user_id', o.user_id, 'sign', -1, 'completed', o.completed, 'tags', o.tags, 'tag_keys', o.tag_keys)
            FROM old_rows AS o
            WHERE (o.completed OR o.tag_keys <> '{}')
              AND NOT EXISTS (
                  SELECT FROM new_rows AS n
                  WHERE o.user_id = n.user_id AND o.id = n.id
                    AND o.completed = n.completed AND o.tags = n.tags AND o.tag_keys = n.tag_keys)
        ) AS rows;
    END IF;
    IF changed IS NOT NULL THEN
        PERFORM apply_task_counts(changed);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_completed_counted_inserts AFTER INSERT ON tasks
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION tasks_count_completed();

CREATE TRIGGER tasks_completed_counted_updates AFTER UPDATE ON tasks
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION tasks_count_completed();

CREATE TRIGGER tasks_completed_counted_deletes AFTER DELETE ON tasks
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION tasks_count_completed();

-- Overdue = active and due before now: the index holds exactly the candidates, in due order.
CREATE INDEX tasks_user_open_due_idx ON tasks (user_id, due_at) WHERE NOT completed AND due_at IS NOT NULL;
