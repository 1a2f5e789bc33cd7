-- One row per handler run that committed: no uniqueness on purpose, so an event whose effect
-- was applied twice shows up as two rows (the bus tests count them against the inbox).
CREATE TABLE probe_effects (
    event_id   TEXT NOT NULL,
    type       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    event_ms   BIGINT NOT NULL,
    applied_at BIGINT NOT NULL
);
CREATE INDEX probe_effects_event ON probe_effects (event_id);
