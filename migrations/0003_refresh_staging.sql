-- Refresh staging, typed; SKUs without a per-row foreign-key check; the change-log
-- notification.
--
-- 0002 staged only the raw JSON of each offer, so publishing would have had to derive
-- every typed column again in SQL, a second copy of the client's decoding rules (two
-- date spellings, two stock field names, open enums) that could disagree with it. A
-- refresh now stages rows exactly as they will be published, typed by the client, with
-- a content hash computed once while staging (hex of the first 128 bits of SHA-256 over
-- the canonical JSON text; `offers.content_hash` holds the same, whatever 0002's comment
-- says). Publishing is then a set-based copy from staging that compares hashes.
--
-- An offer whose hash equals its live row's when it is staged is staged as a marker
-- (`raw` NULL): it counts as seen, so a full refresh does not remove it, but nothing of
-- it is written twice. Staging keeps duplicates (a listing may shift while it is
-- paged): publishing keeps the copy with the highest `seq`. `merchant_id` lets a new
-- refresh of a merchant purge what a crashed attempt left. The tables only ever hold
-- in-flight refreshes, so they are dropped and recreated here, not altered. UNLOGGED:
-- a crash loses nothing a retry cannot refetch.

DROP TABLE staged_offers;
DROP TABLE staged_collections;

CREATE UNLOGGED TABLE staged_offers (
    refresh_id          BIGINT      NOT NULL,
    merchant_id         BIGINT      NOT NULL,
    -- Position in the listing; the later copy of a duplicate wins.
    seq                 INT         NOT NULL,
    offer_id            BIGINT      NOT NULL,
    external_id         TEXT,
    -- NULL only in markers (as are `tags` and `raw`).
    name                TEXT,
    description         TEXT,
    html_description    TEXT,
    source              TEXT,
    seller              TEXT,
    vendor              TEXT,
    available           BOOLEAN,
    visible             BOOLEAN,
    min_price           BIGINT,
    max_price           BIGINT,
    currency            TEXT,
    status              TEXT,
    publishing_status   TEXT,
    tags                TEXT[],
    category            TEXT,
    image_url           TEXT,
    date_created        TIMESTAMPTZ,
    date_last_modified  TIMESTAMPTZ,
    content_hash        TEXT        NOT NULL,
    raw                 JSONB
);
-- Publishing reads a refresh by offer id, the latest copy first.
CREATE INDEX staged_offers_refresh ON staged_offers (refresh_id, offer_id, seq DESC);
CREATE INDEX staged_offers_merchant ON staged_offers (merchant_id);

CREATE UNLOGGED TABLE staged_skus (
    refresh_id    BIGINT NOT NULL,
    merchant_id   BIGINT NOT NULL,
    -- The `seq` of the offer copy this SKU came with.
    seq           INT    NOT NULL,
    offer_id      BIGINT NOT NULL,
    sku_id        BIGINT NOT NULL,
    external_id   TEXT,
    name          TEXT,
    gtin          TEXT,
    upc           TEXT,
    ean           TEXT,
    isbn          TEXT,
    in_stock      BOOLEAN,
    quantity      BIGINT,
    sale_price    BIGINT,
    retail_price  BIGINT,
    currency      TEXT,
    status        TEXT,
    raw           JSONB  NOT NULL
);
CREATE INDEX staged_skus_refresh ON staged_skus (refresh_id, offer_id, seq);
CREATE INDEX staged_skus_merchant ON staged_skus (merchant_id);

CREATE UNLOGGED TABLE staged_collections (
    refresh_id          BIGINT      NOT NULL,
    merchant_id         BIGINT      NOT NULL,
    seq                 INT         NOT NULL,
    collection_id       BIGINT      NOT NULL,
    external_id         TEXT,
    parent_id           BIGINT,
    name                TEXT        NOT NULL,
    handle              TEXT,
    description         TEXT,
    status              TEXT,
    type                TEXT,
    image_url           TEXT,
    date_last_modified  TIMESTAMPTZ,
    content_hash        TEXT        NOT NULL,
    raw                 JSONB       NOT NULL
);
CREATE INDEX staged_collections_refresh ON staged_collections (refresh_id, collection_id);
CREATE INDEX staged_collections_merchant ON staged_collections (merchant_id);

-- Membership read from each collection's offer listing (ids only).
CREATE UNLOGGED TABLE staged_collection_offers (
    refresh_id     BIGINT NOT NULL,
    merchant_id    BIGINT NOT NULL,
    collection_id  BIGINT NOT NULL,
    offer_id       BIGINT NOT NULL
);
CREATE INDEX staged_collection_offers_refresh ON staged_collection_offers (refresh_id, collection_id, offer_id);
CREATE INDEX staged_collection_offers_merchant ON staged_collection_offers (merchant_id);

-- SKUs are written only by the publishing transaction, together with their offer, and
-- offers are never deleted (removal sets `removed_at`), so the reference from SKUs to
-- offers holds by construction and its cascade never fires; checking it row by row
-- (an RI trigger per SKU) was about half the cost of writing SKUs. The mirror tests
-- assert that no SKU points at a missing offer.
ALTER TABLE skus DROP CONSTRAINT skus_offer_id_fkey;

-- Every change-log row wakes the indexers (delivered at commit, so a listener that
-- reads `change_no > last_applied` after the notification sees the row). The payload
-- is the change number; listeners should not rely on one notification per row, as
-- PostgreSQL folds identical notifications within a transaction.
CREATE FUNCTION change_log_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('catalog_mirror_changes', NEW.change_no::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER change_log_notify AFTER INSERT ON change_log
    FOR EACH ROW EXECUTE FUNCTION change_log_notify();
