-- Stats in constant time for the counts a counter can keep: how many of a user's tasks are
-- completed lives on the user's row (users.completed_count) beside task_count, so GET .../stats
-- no longer counts a heavy user's completed tasks row by row. Overdue depends on the clock, so
-- it cannot be a counter: a partial index holds only active tasks with a due date, and the count
-- reads the overdue ones alone. Tags of active tasks are aggregated from the tagged active
-- tasks, found by a second partial index: that part stays proportional to them (README, "Scale").
--
-- Statement-level triggers keep the counter, like sql/004's change numbers: every statement that
-- writes tasks, today's and tomorrow's, is covered, and a statement on thousands of tasks writes
-- each user's row once (from its transition tables), not once per task. The user's row is
-- already locked by then (the task rows first, then the user, as in sql/004), and a statement
-- that changes no completion writes nothing.

ALTER TABLE users ADD COLUMN completed_count integer NOT NULL DEFAULT 0;

UPDATE users AS u
SET completed_count = c.n
FROM (SELECT user_id, count(*) AS n FROM tasks WHERE completed GROUP BY user_id) AS c
WHERE u.id = c.user_id;

-- Not also <= task_count: clear-completed lowers task_count in its statement and this counter
-- in the trigger after it, so the two rows in between need not agree.
ALTER TABLE users ADD CONSTRAINT users_completed_count_range CHECK (completed_count >= 0);

CREATE FUNCTION tasks_count_completed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE users AS u SET completed_count = u.completed_count + d.n
        FROM (SELECT user_id, count(*) AS n FROM new_rows WHERE completed GROUP BY user_id) AS d
        WHERE u.id = d.user_id;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE users AS u SET completed_count = u.completed_count - d.n
        FROM (SELECT user_id, count(*) AS n FROM old_rows WHERE completed GROUP BY user_id) AS d
        WHERE u.id = d.user_id;
    ELSE
        -- A task never changes owner: per user, completed after minus completed before.
        UPDATE users AS u SET completed_count = u.completed_count + d.n
        FROM (
            SELECT user_id, sum(n) AS n
            FROM (
                SELECT user_id, count(*) FILTER (WHERE completed) AS n FROM new_rows GROUP BY user_id
                UNION ALL
                SELECT user_id, -count(*) FILTER (WHERE completed) FROM old_rows GROUP BY user_id
            ) AS changes
            GROUP BY user_id
            HAVING sum(n) <> 0
        ) AS d
        WHERE u.id = d.user_id;
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
-- The tasks whose tags the stats count.
CREATE INDEX tasks_user_open_tagged_idx ON tasks (user_id) WHERE NOT completed AND tag_keys <> '{}';
