-- The back office: managers and their sessions, one-time setup links, the audit log, and
-- settings changed in the back office. Times are Unix milliseconds; portable SQL (PostgreSQL
-- needs only BIGSERIAL for AUTOINCREMENT and BIGINT for the times).

CREATE TABLE managers (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Lower-cased; the sign-in name.
    email          TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'manager')),
    -- Argon2id PHC string; NULL until the manager has set a password through a setup link.
    password_hash  TEXT,
    created_at     INTEGER NOT NULL,
    disabled_at    INTEGER,
    last_login_at  INTEGER
);

-- One-time links to set a password. `manager_id` is NULL for the first-run link, which
-- creates the first admin. Only the SHA-256 of the token is stored.
CREATE TABLE setup_tokens (
    token_hash  TEXT PRIMARY KEY,
    manager_id  INTEGER REFERENCES managers (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);

-- Signed-in managers. Only the SHA-256 of the cookie's token is stored; `csrf_token` is the
-- synchronizer token every form of this session must carry.
CREATE TABLE manager_sessions (
    token_hash    TEXT PRIMARY KEY,
    manager_id    INTEGER NOT NULL REFERENCES managers (id) ON DELETE CASCADE,
    csrf_token    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    ip            TEXT
);
CREATE INDEX manager_sessions_by_manager ON manager_sessions (manager_id);

-- Who did what: sign-ins (and failed ones), settings changes, deletions, manager changes.
-- Bridge errors (failed outbox tasks) are read from the outbox itself.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    actor        TEXT,
    action       TEXT NOT NULL,
    target       TEXT,
    detail       TEXT,
    ip           TEXT
);
CREATE INDEX audit_log_by_time ON audit_log (at);

-- Values set in the back office (widget texts and look, the cleanup delay, …).
CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT
);

CREATE INDEX outbox_failed ON outbox (failed, done_at);
CREATE INDEX offline_messages_by_time ON offline_messages (created_at);
