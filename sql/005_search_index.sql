-- Text search (`q`) is ILIKE '%...%' on title and description: no b-tree can serve a substring.
-- pg_trgm GIN indexes can, for patterns of three characters or more; the planner then picks them
-- (one per column, combined by a BitmapOr: a two-column GIN index is costed far higher) or the
-- user's (user_id, created_at) index, whichever is cheaper for the user and the pattern.
-- Only where the server ships pg_trgm (Debian's and most managed PostgreSQL do; the embedded
-- pgserver build does not) and the role may create it (it is a trusted extension since
-- PostgreSQL 13): otherwise searches stay sequential within the user's rows, bounded by
-- DB_STATEMENT_TIMEOUT. On a large existing table, create the index beforehand with
-- CREATE INDEX CONCURRENTLY under the same names: this file then leaves them as they are.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pg_trgm is available but this role may not create it: no search index';
            RETURN;
        END;
        CREATE INDEX IF NOT EXISTS tasks_title_trgm_idx ON tasks USING gin (title gin_trgm_ops);
        CREATE INDEX IF NOT EXISTS tasks_description_trgm_idx ON tasks USING gin (description gin_trgm_ops);
    END IF;
END
$$;
