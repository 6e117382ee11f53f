-- PostgreSQL twin of migrations/sqlite/0002_files.sql (rules at the top of 0001_core.sql).
-- Files attached to messages, in both directions. The bytes live on disk under
-- `PARLEY_DATA_DIR/files/<chat id>/<file id>`; this table holds what is known about them.

CREATE TABLE files (
    id            TEXT PRIMARY KEY,
    chat_id       TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    message_id    BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    -- Order within the message, as sent.
    position      BIGINT NOT NULL,
    -- The name as the sender gave it, sanitised; shown, never used as a path.
    name          TEXT NOT NULL,
    -- Decided from the content, not from the name or the declared type.
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    -- The Mattermost file: the visitor's upload once delivered, or the operator's original.
    mm_file_id    TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX files_by_message ON files (message_id, position);
CREATE INDEX files_by_chat ON files (chat_id);
