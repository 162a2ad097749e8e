-- The catalog mirror: offers, SKUs, collections and membership per merchant, a catalog
-- version per merchant, staging tables for refreshes, and the change log the search
-- indexer follows.

ALTER TABLE merchants
    ADD COLUMN catalog_version    BIGINT      NOT NULL DEFAULT 0,
    ADD COLUMN offer_count        BIGINT      NOT NULL DEFAULT 0,
    ADD COLUMN last_refresh_at    TIMESTAMPTZ,
    ADD COLUMN last_refresh_ms    BIGINT;

CREATE TABLE offers (
    offer_id            BIGINT PRIMARY KEY,
    merchant_id         BIGINT      NOT NULL,
    external_id         TEXT,
    name                TEXT        NOT NULL DEFAULT '',
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
    tags                TEXT[]      NOT NULL DEFAULT '{}',
    category            TEXT,
    image_url           TEXT,
    date_created        TIMESTAMPTZ,
    date_last_modified  TIMESTAMPTZ,
    -- md5 of the raw JSON: an unchanged offer is not rewritten.
    content_hash        TEXT        NOT NULL,
    raw                 JSONB       NOT NULL,
    -- Removed offers stay as rows (with the time) but leave what the storefront sees.
    removed_at          TIMESTAMPTZ,
    -- The merchant's catalog version that last changed this row.
    catalog_version     BIGINT      NOT NULL DEFAULT 0,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX offers_merchant ON offers (merchant_id) INCLUDE (removed_at);

CREATE TABLE skus (
    sku_id        BIGINT PRIMARY KEY,
    offer_id      BIGINT NOT NULL REFERENCES offers (offer_id) ON DELETE CASCADE,
    merchant_id   BIGINT NOT NULL,
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
CREATE INDEX skus_offer ON skus (offer_id);

CREATE TABLE collections (
    collection_id       BIGINT PRIMARY KEY,
    merchant_id         BIGINT      NOT NULL,
    external_id         TEXT,
    parent_id           BIGINT,
    name                TEXT        NOT NULL DEFAULT '',
    handle              TEXT,
    description         TEXT,
    status              TEXT,
    type                TEXT,
    image_url           TEXT,
    date_last_modified  TIMESTAMPTZ,
    content_hash        TEXT        NOT NULL,
    raw                 JSONB       NOT NULL,
    removed_at          TIMESTAMPTZ,
    catalog_version     BIGINT      NOT NULL DEFAULT 0,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX collections_merchant ON collections (merchant_id);

CREATE TABLE collection_offers (
    collection_id BIGINT NOT NULL,
    offer_id      BIGINT NOT NULL,
    merchant_id   BIGINT NOT NULL,
    PRIMARY KEY (collection_id, offer_id)
);
CREATE INDEX collection_offers_offer ON collection_offers (offer_id);
CREATE INDEX collection_offers_merchant ON collection_offers (merchant_id);

-- Staging: a refresh writes what it reads here, page by page, never into live rows.
-- UNLOGGED: staging is rebuilt by retrying the refresh after a crash.
CREATE UNLOGGED TABLE staged_offers (
    refresh_id  BIGINT NOT NULL,
    offer_id    BIGINT NOT NULL,
    raw         JSONB  NOT NULL,
    PRIMARY KEY (refresh_id, offer_id)
);
CREATE UNLOGGED TABLE staged_collections (
    refresh_id     BIGINT NOT NULL,
    collection_id  BIGINT NOT NULL,
    raw            JSONB  NOT NULL,
    offer_ids      BIGINT[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (refresh_id, collection_id)
);
CREATE SEQUENCE refresh_ids;

-- The change log: one row per published change of a merchant's catalog. Writers take
-- `LOCK TABLE change_log IN EXCLUSIVE MODE` before inserting, so change numbers are
-- visible in commit order and a follower reading `change_no > last_applied` misses none.
CREATE TABLE change_log (
    change_no        BIGSERIAL PRIMARY KEY,
    merchant_id      BIGINT      NOT NULL,
    catalog_version  BIGINT      NOT NULL,
    -- full_refresh | safe_refresh | collections | incremental | visibility | ...
    reason           TEXT        NOT NULL,
    -- The offers that changed; NULL means the merchant's whole catalog.
    offer_ids        BIGINT[],
    upserted         INT         NOT NULL DEFAULT 0,
    removed          INT         NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX change_log_merchant ON change_log (merchant_id, change_no);
