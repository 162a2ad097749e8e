-- Delta refreshes: what a merchant's products refresh may skip.
--
-- A products refresh after COMPLETED asks Violet only for offers modified since the
-- merchant's watermark (`date_last_modified:min`), unless a full pass is due. The
-- watermark is the newest `date_last_modified` a complete listing has shown, never
-- later than when that listing began (an offer changed while it was being paged may
-- sit on a page already read); a refresh subtracts `refresh.delta_overlap_secs` from
-- it when it asks, for clock skew.
ALTER TABLE merchants
    ADD COLUMN offers_watermark      TIMESTAMPTZ,
    -- When the last full pass (a complete listing that may remove) published.
    ADD COLUMN last_full_refresh_at  TIMESTAMPTZ,
    -- When the last delta published.
    ADD COLUMN last_delta_refresh_at TIMESTAMPTZ,
    -- Why the next products refresh must be a full pass (MERCHANT_ENABLED, a failed
    -- or stalled sync, a manual resync), or NULL. A full pass clears it.
    ADD COLUMN full_refresh_due      TEXT,
    ADD COLUMN full_refresh_due_at   TIMESTAMPTZ;
