-- Intake, sync tracking and the job queue.

-- Every webhook delivery that passed signature verification, once per event id.
CREATE TABLE webhook_events (
    id              BIGSERIAL PRIMARY KEY,
    event_id        TEXT        NOT NULL UNIQUE,
    topic           TEXT        NOT NULL,
    entity_id       TEXT,
    merchant_id     BIGINT,
    webhook_id      TEXT,
    event_id_source TEXT,
    body            BYTEA       NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- When the event happened, from its body when it says so, else received_at.
    occurred_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- processed | unprocessable | ignored | pending (offer/collection events waiting
    -- for a batched job) | folded (covered by the refresh after a sync) | applied
    status          TEXT        NOT NULL,
    detail          TEXT
);
CREATE INDEX webhook_events_merchant ON webhook_events (merchant_id, id);
CREATE INDEX webhook_events_topic ON webhook_events (topic, id);
CREATE INDEX webhook_events_pending ON webhook_events (merchant_id, id) WHERE status = 'pending';

-- Merchants as the webhooks describe them; the catalog tables hang off this.
CREATE TABLE merchants (
    merchant_id      BIGINT PRIMARY KEY,
    name             TEXT,
    platform         TEXT,
    store_url        TEXT,
    violet_status    TEXT,
    connected        BOOLEAN     NOT NULL DEFAULT true,
    enabled          BOOLEAN     NOT NULL DEFAULT true,
    -- What the storefront may see: connected and enabled.
    visible          BOOLEAN GENERATED ALWAYS AS (connected AND enabled) STORED,
    -- complete | needs_attention, from MERCHANT_COMPLETE / MERCHANT_NEEDS_ATTENTION.
    health           TEXT,
    -- Set by MERCHANT_ENABLED: a resync is expected; cleared by the next PRODUCT_SYNC_COMPLETED.
    resync_expected  BOOLEAN     NOT NULL DEFAULT false,
    -- occurred_at of the last merchant event applied; older events do not overwrite.
    status_event_at  TIMESTAMPTZ,
    raw              JSONB,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The sync state machine, one row per merchant and kind (products, collections).
CREATE TABLE sync_state (
    merchant_id          BIGINT      NOT NULL,
    kind                 TEXT        NOT NULL CHECK (kind IN ('products', 'collections')),
    state                TEXT        NOT NULL DEFAULT 'idle'
                         CHECK (state IN ('idle', 'syncing', 'completed', 'failed', 'stalled', 'needs_attention')),
    -- occurred_at of the sync event that set `state`; an older event never overwrites it.
    state_event_at       TIMESTAMPTZ,
    state_changed_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    current_sync_id      TEXT,
    consecutive_failures INT         NOT NULL DEFAULT 0,
    last_started_at      TIMESTAMPTZ,
    last_completed_at    TIMESTAMPTZ,
    last_failed_at       TIMESTAMPTZ,
    PRIMARY KEY (merchant_id, kind)
);

-- Sync history: each STARTED paired with its COMPLETED or FAILED.
CREATE TABLE sync_runs (
    id                    BIGSERIAL PRIMARY KEY,
    merchant_id           BIGINT      NOT NULL,
    kind                  TEXT        NOT NULL CHECK (kind IN ('products', 'collections')),
    sync_id               TEXT,
    started_at            TIMESTAMPTZ,
    ended_at              TIMESTAMPTZ,
    -- running | completed | failed | stalled
    outcome               TEXT        NOT NULL,
    total_products        BIGINT,
    total_products_synced BIGINT,
    started_event_id      TEXT,
    ended_event_id        TEXT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sync_runs_sync_id ON sync_runs (merchant_id, kind, sync_id) WHERE sync_id IS NOT NULL;
CREATE INDEX sync_runs_merchant ON sync_runs (merchant_id, kind, id DESC);

-- The durable job queue.
CREATE TABLE jobs (
    id            BIGSERIAL PRIMARY KEY,
    kind          TEXT        NOT NULL,
    merchant_id   BIGINT,
    -- At most one pending job per key: enqueueing again moves run_at (debounce).
    dedupe_key    TEXT,
    payload       JSONB       NOT NULL DEFAULT '{}',
    state         TEXT        NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'running', 'done', 'dead', 'cancelled')),
    run_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts      INT         NOT NULL DEFAULT 0,
    max_attempts  INT         NOT NULL,
    locked_by     TEXT,
    locked_until  TIMESTAMPTZ,
    last_error    TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ
);
CREATE UNIQUE INDEX jobs_one_pending_per_key ON jobs (dedupe_key) WHERE state = 'pending';
CREATE INDEX jobs_due ON jobs (run_at) WHERE state = 'pending';
CREATE INDEX jobs_leases ON jobs (locked_until) WHERE state = 'running';
CREATE INDEX jobs_running_key ON jobs (dedupe_key) WHERE state = 'running';
CREATE INDEX jobs_by_state ON jobs (state, id DESC);

-- Wake idle workers when a job becomes pending (delivered at commit; repeated
-- notifications in one transaction are folded into one).
CREATE FUNCTION jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('catalog_mirror_jobs', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OF state, run_at ON jobs
    FOR EACH ROW WHEN (NEW.state = 'pending') EXECUTE FUNCTION jobs_notify();

-- Enqueue with dedupe, in one place for every caller (the queue, and intake's
-- single-statement path for offer and collection events). Takes a transaction-scoped
-- advisory lock on the key first, so a concurrent requeue of a running job with the
-- same key never collides with it on the unique index. On conflict with a pending job:
--   p_mode 'debounce': run_at moves to now + delay, at most p_max_delay_ms after creation;
--   'replace': run_at takes the new value; 'keep_earlier': the earlier run_at stays.
-- A full refresh payload absorbs a safe one, never the reverse. The pending row is only
-- rewritten when run_at moves by more than p_slack_ms or the payload changes, so a burst
-- of events does not create a row version per event (the row is locked either way,
-- so a worker cannot claim it before the caller commits).
-- Returns the job id, or NULL when the pending job already covered the work unchanged.
CREATE FUNCTION enqueue_job(p_kind text, p_merchant_id bigint, p_dedupe_key text, p_payload jsonb,
                            p_delay_ms float8, p_max_attempts int, p_mode text,
                            p_max_delay_ms float8, p_slack_ms float8)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(p_dedupe_key));
    INSERT INTO jobs AS j (kind, merchant_id, dedupe_key, payload, run_at, max_attempts)
    VALUES (p_kind, p_merchant_id, p_dedupe_key, p_payload,
            now() + p_delay_ms * interval '1 millisecond', p_max_attempts)
    ON CONFLICT (dedupe_key) WHERE state = 'pending' DO UPDATE SET
        run_at = CASE p_mode
            WHEN 'debounce' THEN LEAST(EXCLUDED.run_at, j.created_at + p_max_delay_ms * interval '1 millisecond')
            WHEN 'replace' THEN EXCLUDED.run_at
            ELSE LEAST(j.run_at, EXCLUDED.run_at) END,
        payload = CASE WHEN j.payload->>'mode' = 'full' THEN j.payload ELSE EXCLUDED.payload END,
        updated_at = now()
    WHERE abs(EXTRACT(EPOCH FROM (CASE p_mode
              WHEN 'debounce' THEN LEAST(EXCLUDED.run_at, j.created_at + p_max_delay_ms * interval '1 millisecond')
              WHEN 'replace' THEN EXCLUDED.run_at
              ELSE LEAST(j.run_at, EXCLUDED.run_at) END) - j.run_at)) * 1000 > p_slack_ms
       OR (j.payload->>'mode' IS DISTINCT FROM 'full' AND j.payload IS DISTINCT FROM EXCLUDED.payload)
    RETURNING j.id INTO v_id;
    RETURN v_id;
END
$$;
