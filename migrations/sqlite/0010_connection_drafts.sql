-- The Mattermost connection an admin is entering in the back office (Settings), before it is
-- saved: the server and the bot token, kept here between the form's steps so the token never
-- goes back to the browser. One per session, gone with the session (and after 30 minutes).
-- The saved connection itself is four rows of `settings` (`mattermost.*`).
CREATE TABLE connection_drafts (
    session_hash  TEXT PRIMARY KEY REFERENCES manager_sessions (token_hash) ON DELETE CASCADE,
    url           TEXT NOT NULL,
    token         TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
