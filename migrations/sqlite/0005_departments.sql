-- Departments: where a chat's request goes (a requests channel in a team), when the
-- department is open, what the widget says for it and how parley's posts look. Without any
-- row, PARLEY_MATTERMOST_TEAM/_CHANNEL act as the one default department.
-- Texts and templates are NULL when the default applies. Portable: the same statements work
-- on PostgreSQL (BIGSERIAL for the id, BIGINT for times).

CREATE TABLE departments (
    id                              INTEGER PRIMARY KEY AUTOINCREMENT,
    name                            TEXT NOT NULL,
    -- Team name (URL slug) and requests channel name, as in PARLEY_MATTERMOST_TEAM/_CHANNEL.
    team                            TEXT NOT NULL,
    channel                         TEXT NOT NULL,
    -- Order in the widget's list (then by id).
    position                        INTEGER NOT NULL DEFAULT 0,
    -- Weekly online hours, e.g. 'mon-fri 09:00-17:30; sat 10:00-14:00'; NULL = always.
    hours                           TEXT,
    -- IANA time zone of the hours and of times in posts.
    timezone                        TEXT NOT NULL DEFAULT 'UTC',
    -- What the widget shows for this department.
    text_title                      TEXT,
    text_greeting                   TEXT,
    text_offline                    TEXT,
    -- Templates (see docs): the request post, the chat channel's display name and header,
    -- and the first post in the chat channel.
    template_request                TEXT,
    template_channel_display_name   TEXT,
    template_channel_header         TEXT,
    template_first_post             TEXT,
    created_at                      INTEGER NOT NULL,
    updated_at                      INTEGER NOT NULL
);
CREATE UNIQUE INDEX departments_by_name ON departments (name);

-- The department a chat was started for; NULL = the default department (and chats from
-- before departments, or of a department since removed).
ALTER TABLE chats ADD COLUMN department_id INTEGER REFERENCES departments (id) ON DELETE SET NULL;
ALTER TABLE chats ADD COLUMN visitor_phone TEXT;

-- Offline messages are also posted to the department's requests channel, once: `post_key`
-- is the post's pending_post_id (and `parley_key` prop); rows from before this migration
-- have none and are not posted. Delivery is retried like the outbox (attempts, next try).
ALTER TABLE offline_messages ADD COLUMN department_id INTEGER REFERENCES departments (id) ON DELETE SET NULL;
ALTER TABLE offline_messages ADD COLUMN phone TEXT;
ALTER TABLE offline_messages ADD COLUMN post_key TEXT;
ALTER TABLE offline_messages ADD COLUMN post_id TEXT;
ALTER TABLE offline_messages ADD COLUMN post_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE offline_messages ADD COLUMN post_next_attempt_at INTEGER;
ALTER TABLE offline_messages ADD COLUMN post_first_attempt_at INTEGER;
ALTER TABLE offline_messages ADD COLUMN post_error TEXT;
-- Set when the post was made, or when Mattermost refused it for good (then post_id is NULL).
ALTER TABLE offline_messages ADD COLUMN posted_at INTEGER;
CREATE INDEX offline_messages_to_post ON offline_messages (posted_at, post_next_attempt_at);
