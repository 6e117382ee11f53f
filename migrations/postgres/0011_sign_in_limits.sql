-- Sign-in under attack: refused sign-ins are counted on one audit line per address, account
-- and reason within a window (`attempts`), and failed sign-ins are counted per account in the
-- database, so every instance sees the same lock and `parley admin unlock` can clear it.

ALTER TABLE audit_log ADD COLUMN attempts BIGINT NOT NULL DEFAULT 1;

-- Failed sign-ins of one account within a window. `device` is '' for browsers that never
-- signed in to this account, else the id in their signed known-device cookie: each known
-- device has its own budget, so an attacker's failures do not lock the owner out.
CREATE TABLE sign_in_failures (
    manager_id  BIGINT NOT NULL REFERENCES managers (id) ON DELETE CASCADE,
    device      TEXT NOT NULL,
    failures    BIGINT NOT NULL,
    first_at    BIGINT NOT NULL,
    PRIMARY KEY (manager_id, device)
);
CREATE INDEX sign_in_failures_by_time ON sign_in_failures (first_at);
