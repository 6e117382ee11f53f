-- PostgreSQL twin of ../sqlite/0004_live_details.sql (same columns in the same order; every integer is
-- BIGINT, see README.md).

-- Live details: operator notes, edits and deletes of operator messages, and the look-ups the
-- operator commands and the reaction fallback need. Times are Unix milliseconds; the same
-- statements work on PostgreSQL (BIGINT for the times).

-- `!note`: kept in the transcript for the back office, never shown to the visitor.
ALTER TABLE messages ADD COLUMN internal BIGINT NOT NULL DEFAULT 0;
-- When an operator last edited the Mattermost post the message came from.
ALTER TABLE messages ADD COLUMN edited_at BIGINT;
-- When an operator deleted that post: the message stays for the back office, the visitor API
-- leaves it out.
ALTER TABLE messages ADD COLUMN deleted_at BIGINT;

-- `!info` lists a visitor's earlier chats by e-mail address (case does not matter).
CREATE INDEX chats_by_email ON chats (LOWER(visitor_email));
-- A reaction on a request post finds its chat.
CREATE INDEX chats_by_request_post ON chats (request_post_id);
