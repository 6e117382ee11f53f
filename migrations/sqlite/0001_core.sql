-- Core schema: chats, their messages, the outbox to Mattermost, offline messages and
-- server-wide values (such as the key that signs Accept buttons).
-- Times are Unix milliseconds (INTEGER) so the same SQL works on PostgreSQL (BIGINT).

CREATE TABLE server_values (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE chats (
    id                  TEXT PRIMARY KEY,
    token_hash          TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'active', 'closed')),
    visitor_name        TEXT,
    visitor_email       TEXT,
    page_url            TEXT,
    referrer            TEXT,
    visitor_ip          TEXT,
    created_at          INTEGER NOT NULL,
    accepted_at         INTEGER,
    closed_at           INTEGER,
    closed_by           TEXT,
    operator_user_id    TEXT,
    operator_username   TEXT,
    operator_name       TEXT,
    request_post_id     TEXT,
    channel_id          TEXT,
    channel_name        TEXT,
    last_post_at        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX chats_by_status ON chats (status, created_at);
CREATE UNIQUE INDEX chats_by_channel ON chats (channel_id);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id     TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    sender      TEXT NOT NULL CHECK (sender IN ('visitor', 'operator', 'system')),
    author      TEXT,
    body        TEXT NOT NULL,
    html        TEXT,
    event       TEXT,
    post_id     TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX messages_by_chat ON messages (chat_id, id);
-- A Mattermost post becomes at most one message, however often it is seen.
CREATE UNIQUE INDEX messages_by_post ON messages (post_id);

CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id          TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    needs_channel    INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    first_attempt_at INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    done_at          INTEGER,
    failed           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_by_chat ON outbox (chat_id, done_at, id);

CREATE TABLE offline_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT,
    email       TEXT NOT NULL,
    body        TEXT NOT NULL,
    page_url    TEXT,
    visitor_ip  TEXT,
    created_at  INTEGER NOT NULL,
    handled_at  INTEGER
);

-- Operator commands (`!close`, …) already carried out, so a post replayed after a reconnect
-- is never applied twice.
CREATE TABLE applied_posts (
    post_id     TEXT PRIMARY KEY,
    chat_id     TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    applied_at  INTEGER NOT NULL
);
