-- The outbox worker looks for undelivered tasks (`done_at IS NULL`) many times a second; without
-- this index each look scanned every task ever delivered, so it slowed down as the outbox grew
-- (see docs/benchmarks.md). Partial, so it holds only the few rows still waiting.
CREATE INDEX outbox_undelivered ON outbox (id) WHERE done_at IS NULL;
