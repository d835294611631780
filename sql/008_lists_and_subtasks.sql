-- Contract v3: lists, and subtasks up to 4 levels (service/lists/, service/tasks/tree/).
--
-- Upgrade: every existing task lands in the Inbox (list_id null) at the top level (parent_id and
-- ancestry null), in the order it had. The new columns are null, so no row is rewritten and no
-- trigger fires: ETags and change numbers stay as they were. What costs time is the tree index
-- below, built from the table once (about a second per million tasks).

CREATE TABLE lists (
    user_id         text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id              uuid        NOT NULL,
    name            text        NOT NULL,
    position        text COLLATE "C" NOT NULL,
    version         integer     NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    change_seq      bigint      NOT NULL DEFAULT 0,
    -- How many tasks the list holds, and how many of them are completed: kept by the triggers of
    -- sql/006 (extended below), so stats per list never read the list's tasks one by one.
    task_count      integer     NOT NULL DEFAULT 0,
    completed_count integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, id),
    CONSTRAINT lists_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT lists_position_format CHECK (position ~ '^[0-9a-f]{12}[0-9A-Za-z]{0,52}$'),
    CONSTRAINT lists_user_position_key UNIQUE (user_id, position)
);

-- A deletion in the changes feed is a task's or a list's.
ALTER TABLE task_tombstones ADD COLUMN is_list boolean NOT NULL DEFAULT false;

-- list_id: null is the Inbox. parent_id: null is the top level. ancestry: the parent's tree key
-- and a '.', null at the top level; a task's tree key is coalesce(ancestry, '') || position, so
-- byte order of tree keys within a list is depth-first order with siblings in their manual order
-- ('.' sorts before every digit of a position: a task's subtree comes before its next sibling).
ALTER TABLE tasks
    ADD COLUMN list_id   uuid,
    ADD COLUMN parent_id uuid,
    ADD COLUMN ancestry  text COLLATE "C";

-- Every existing row has a null list_id, ancestry and parent_id: nothing to validate, and
-- NOT VALID skips the scan that would find that out; new rows are checked all the same.
ALTER TABLE tasks
    ADD CONSTRAINT tasks_list_fkey FOREIGN KEY (user_id, list_id) REFERENCES lists (user_id, id) NOT VALID,
    ADD CONSTRAINT tasks_tree_shape CHECK ((parent_id IS NULL) = (ancestry IS NULL)) NOT VALID,
    -- Four levels: a task at level n has n - 1 positions in its ancestry, each ended by a '.'.
    ADD CONSTRAINT tasks_tree_depth CHECK (length(ancestry) - length(replace(ancestry, '.', '')) <= 3) NOT VALID;

-- The tree: unique per list (the Inbox is one list: NULLS NOT DISTINCT), so two tasks never share
-- a place whatever writes race. It serves sort=position (tree order) within a list, a task's
-- subtree (a range of keys), its neighbours among its siblings, and the list's foreign key.
CREATE UNIQUE INDEX tasks_user_tree_key ON tasks (user_id, list_id, (coalesce(ancestry, '') || position)) NULLS NOT DISTINCT;
-- Positions were unique per user; now they are unique among siblings, which the tree key says.
ALTER TABLE tasks DROP CONSTRAINT tasks_user_position_key;

-- The statements that read a subtree or the ancestors and then write them lock the user's row
-- first, and read once they hold it (service/tasks/tree/): every structural write of one user then
-- runs one at a time, after the one before committed. The row is made on a user's first write.
CREATE FUNCTION lock_user(uid text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM FROM users WHERE id = uid FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        INSERT INTO users (id) VALUES (uid) ON CONFLICT (id) DO NOTHING;
        PERFORM FROM users WHERE id = uid FOR NO KEY UPDATE;
    END IF;
    RETURN true;
END
$$;

-- The tree keys of a task's ancestors, root first, from its ancestry ('k1.k2.' -> {k1, k1.k2}).
CREATE FUNCTION ancestor_keys(ancestry text) RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(array_to_string(parts[1:n], '.') ORDER BY n), '{}')
    FROM string_to_array(rtrim(ancestry, '.'), '.') AS parts, generate_series(1, cardinality(parts)) AS n
$$;

-- A write that leaves the version as it was is no change a client can see (a subtree's ancestry
-- rewritten under a moved task, a list's counters): it takes no change number.
CREATE OR REPLACE FUNCTION tasks_number_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.version = OLD.version THEN
        RETURN NEW;
    END IF;
    NEW.change_seq := take_change_numbers(NEW.user_id, 1);
    RETURN NEW;
END
$$;

CREATE TRIGGER lists_numbered BEFORE INSERT OR UPDATE ON lists
FOR EACH ROW EXECUTE FUNCTION tasks_number_change();

CREATE TRIGGER lists_numbers_written AFTER INSERT OR UPDATE ON lists
FOR EACH STATEMENT EXECUTE FUNCTION tasks_write_change_numbers();

-- Deletes of tasks or of lists: a tombstone for each, numbered in one go.
CREATE OR REPLACE FUNCTION tasks_keep_tombstones() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    batch record;
    last  bigint;
BEGIN
    FOR batch IN SELECT gone.user_id, count(*) AS n FROM gone GROUP BY gone.user_id LOOP
        -- No user row: the user is being deleted with all their tasks, and nobody is left to tell.
        CONTINUE WHEN NOT EXISTS (SELECT FROM users WHERE id = batch.user_id);
        last := take_change_numbers(batch.user_id, batch.n);
        INSERT INTO task_tombstones (user_id, change_seq, id, deleted_at, is_list)
        SELECT batch.user_id, last - batch.n + row_number() OVER (ORDER BY gone.id), gone.id, clock_timestamp(),
               TG_TABLE_NAME = 'lists'
        FROM gone
        WHERE gone.user_id = batch.user_id;
    END LOOP;
    PERFORM write_change_numbers();
    RETURN NULL;
END
$$;

CREATE TRIGGER lists_tombstoned AFTER DELETE ON lists
REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION tasks_keep_tombstones();

-- The counters of sql/006, and each list's: rows in a list now count even when active and untagged.
CREATE OR REPLACE FUNCTION apply_task_counts(changed jsonb) RETURNS void LANGUAGE plpgsql AS $$
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
    -- Version unchanged: the list's row takes no change number (its counters are not in ListRead).
    UPDATE lists AS l SET task_count = l.task_count + d.n, completed_count = l.completed_count + d.c
    FROM (
        SELECT r.user_id, r.list_id, sum(r.sign) AS n, coalesce(sum(r.sign) FILTER (WHERE r.completed), 0) AS c
        FROM jsonb_to_recordset(changed) AS r (user_id text, sign int, completed boolean, list_id uuid)
        WHERE r.list_id IS NOT NULL
        GROUP BY r.user_id, r.list_id
        HAVING sum(r.sign) <> 0 OR coalesce(sum(r.sign) FILTER (WHERE r.completed), 0) <> 0
        ORDER BY r.user_id, r.list_id
    ) AS d
    WHERE l.user_id = d.user_id AND l.id = d.list_id;
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

CREATE OR REPLACE FUNCTION tasks_count_completed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed jsonb;
BEGIN
    -- Only what the counters read, and only rows that can move them (tagged, completed or listed).
    IF TG_OP = 'INSERT' THEN
        SELECT jsonb_agg(jsonb_build_object('user_id', user_id, 'sign', 1, 'completed', completed, 'tags', tags, 'tag_keys', tag_keys, 'list_id', list_id))
        INTO changed FROM new_rows WHERE completed OR tag_keys <> '{}' OR list_id IS NOT NULL;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM FROM users WHERE id IN (SELECT user_id FROM old_rows) ORDER BY id FOR UPDATE;
        SELECT jsonb_agg(jsonb_build_object('user_id', user_id, 'sign', -1, 'completed', completed, 'tags', tags, 'tag_keys', tag_keys, 'list_id', list_id))
        INTO changed FROM old_rows WHERE completed OR tag_keys <> '{}' OR list_id IS NOT NULL;
    ELSE
        -- Rows whose completion, tags and list stayed as they were cancel out: leave them out early.
        SELECT jsonb_agg(x) INTO changed FROM (
            SELECT jsonb_build_object('user_id', n.user_id, 'sign', 1, 'completed', n.completed, 'tags', n.tags, 'tag_keys', n.tag_keys, 'list_id', n.list_id) AS x
            FROM new_rows AS n
            WHERE (n.completed OR n.tag_keys <> '{}' OR n.list_id IS NOT NULL)
              AND NOT EXISTS (
                  SELECT FROM old_rows AS o
                  WHERE o.user_id = n.user_id AND o.id = n.id AND o.completed = n.completed
                    AND o.tags = n.tags AND o.tag_keys = n.tag_keys AND o.list_id IS NOT DISTINCT FROM n.list_id)
            UNION ALL
            SELECT jsonb_build_object('user_id', o.user_id, 'sign', -1, 'completed', o.completed, 'tags', o.tags, 'tag_keys', o.tag_keys, 'list_id', o.list_id)
            FROM old_rows AS o
            WHERE (o.completed OR o.tag_keys <> '{}' OR o.list_id IS NOT NULL)
              AND NOT EXISTS (
                  SELECT FROM new_rows AS n
                  WHERE o.user_id = n.user_id AND o.id = n.id AND o.completed = n.completed
                    AND o.tags = n.tags AND o.tag_keys = n.tag_keys AND o.list_id IS NOT DISTINCT FROM n.list_id)
        ) AS rows;
    END IF;
    IF changed IS NOT NULL THEN
        PERFORM apply_task_counts(changed);
    END IF;
    RETURN NULL;
END
$$;
