-- Refresh safety: one refresh per merchant and table at a time, fenced claims, staging
-- owned by one refresh, removals of a large share of a catalog held for agreement.

-- Lanes. Jobs that write the same tables of one merchant share a lane (a products
-- refresh, a failed-sync retry of products and the incremental offer batch all write
-- the merchant's offers), whatever their dedupe key. At most one job per lane runs:
-- the claim skips lanes that have a running job, and this index makes a race between
-- two claims fail instead of running both. Jobs without a lane of their own use their
-- dedupe key (one running job per key, as before).
ALTER TABLE jobs ADD COLUMN lane TEXT;
-- Fencing: every claim of a job increments `claims`; the claim's number is its token.
-- Renewing, finishing and publishing match on it, so a copy whose lease lapsed and
-- whose job was claimed again can change nothing. (`attempts` cannot serve: a release
-- at shutdown gives the attempt back, so two claims could share a number.)
ALTER TABLE jobs ADD COLUMN claims INT NOT NULL DEFAULT 0;
UPDATE jobs SET lane = CASE
        WHEN kind IN ('refresh_products', 'incremental') THEN 'offers:' || merchant_id
        WHEN kind = 'refresh_collections' THEN 'collections:' || merchant_id
        WHEN kind = 'sync_retry' AND payload->>'sync' = 'products' THEN 'offers:' || merchant_id
        WHEN kind = 'sync_retry' THEN 'collections:' || merchant_id
        ELSE dedupe_key END
    WHERE state = 'pending';
-- Jobs running while this migration runs keep no lane: they finish or are reaped.
CREATE UNIQUE INDEX jobs_one_running_per_lane ON jobs (lane) WHERE state = 'running';
CREATE INDEX jobs_pending_lane ON jobs (lane) WHERE state = 'pending';

-- Who owns staged rows. A refresh registers here before it stages anything; a later
-- refresh of the same merchant and tables purges only rows of refreshes that are
-- provably dead (their job's claim no longer runs) and never those of a refresh whose
-- row is locked (it is publishing: the publishing transaction holds the lock).
CREATE TABLE refresh_runs (
    refresh_id   BIGINT      PRIMARY KEY,
    merchant_id  BIGINT      NOT NULL,
    tables       TEXT        NOT NULL CHECK (tables IN ('offers', 'collections')),
    -- The job and claim running it; NULL for a refresh run by a tool or test directly.
    job_id       BIGINT,
    claim        INT,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX refresh_runs_merchant ON refresh_runs (merchant_id, tables);

-- Removals held for agreement: a complete pass that would remove more than
-- `refresh.max_removal_fraction` of a merchant's live offers publishes its upserts
-- and records the removals here instead. The next complete pass that would remove
-- the same offers applies them, or an operator confirms (or discards) them.
CREATE TABLE held_removals (
    merchant_id  BIGINT      PRIMARY KEY,
    offer_ids    BIGINT[]    NOT NULL,
    -- Live offers when they were held, and the pass that held them.
    live_offers  BIGINT      NOT NULL,
    refresh_id   BIGINT      NOT NULL,
    held_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    reason       TEXT        NOT NULL
);

-- Why a sync needs attention (repeated failures, held removals), for admin.
ALTER TABLE sync_state ADD COLUMN attention_reason TEXT;

-- enqueue_job takes the lane; otherwise as in 0001.
DROP FUNCTION enqueue_job(text, bigint, text, jsonb, float8, int, text, float8, float8);
CREATE FUNCTION enqueue_job(p_kind text, p_merchant_id bigint, p_dedupe_key text, p_payload jsonb,
                            p_delay_ms float8, p_max_attempts int, p_mode text,
                            p_max_delay_ms float8, p_slack_ms float8, p_lane text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(p_dedupe_key));
    INSERT INTO jobs AS j (kind, merchant_id, dedupe_key, payload, run_at, max_attempts, lane)
    VALUES (p_kind, p_merchant_id, p_dedupe_key, p_payload,
            now() + p_delay_ms * interval '1 millisecond', p_max_attempts, p_lane)
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
