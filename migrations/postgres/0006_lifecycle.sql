-- PostgreSQL twin of ../sqlite/0006_lifecycle.sql (same columns in the same order; every integer is
-- BIGINT, see README.md).

-- How chats end by themselves (jobs/lifecycle.rs). Times are Unix milliseconds, portable to
-- PostgreSQL (BIGINT).
--
-- `visitor_seen_at`: the last time a widget was known to be connected to the chat: set when a
-- live socket connects and disconnects, every few seconds while it stays connected (by the
-- instance holding it), and on every visitor API call with the chat's token. A chat whose
-- visitor was seen neither since the timeout nor created since then has been left. 0 (the
-- default for chats older than this migration) means "never": their `created_at` counts.
ALTER TABLE chats ADD COLUMN visitor_seen_at BIGINT NOT NULL DEFAULT 0;

-- When the requests channel was reminded of a request nobody accepted (once per chat).
ALTER TABLE chats ADD COLUMN reminded_at BIGINT;

CREATE INDEX chats_by_visitor_seen ON chats (status, visitor_seen_at);
