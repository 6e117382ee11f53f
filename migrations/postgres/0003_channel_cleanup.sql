-- PostgreSQL twin of migrations/sqlite/0003_channel_cleanup.sql (rules at the top of
-- 0001_core.sql).
-- Cleanup of chat channels (`parley archive` and the server's schedule): what became of an
-- ended chat's Mattermost channel. `channel_removal` is 'deleted' (permanently), 'archived'
-- (the server refused permanent deletion; tried again on later runs) or 'gone' (someone had
-- already deleted it). `channel_removed_at` is when that was recorded, in Unix milliseconds.

ALTER TABLE chats ADD COLUMN channel_removed_at BIGINT;
ALTER TABLE chats ADD COLUMN channel_removal TEXT
    CHECK (channel_removal IN ('deleted', 'archived', 'gone'));

-- The cleanup looks for ended chats by the time they ended.
CREATE INDEX chats_by_closed_at ON chats (status, closed_at);
