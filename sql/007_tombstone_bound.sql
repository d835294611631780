-- Tombstones are bounded per user in number as well as in time (SYNC_RETENTION): past
-- MAX_TOMBSTONES_PER_USER the hourly purge forgets a user's oldest, and records here the highest
-- change number it forgot. A sync token from before it may have missed a deletion: 410, full sync.
ALTER TABLE users ADD COLUMN tombstone_horizon bigint NOT NULL DEFAULT 0;
