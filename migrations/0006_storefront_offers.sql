-- The storefront rule, once: which mirrored offers a storefront may see. The indexer
-- projects exactly these rows into the search index, the admin API counts them, and
-- the tests' oracles select through this view, so no second copy of the rule can drift.
--
-- It states the rule the indexer applied before this migration, unchanged (case
-- folded with upper(), no trimming; NULL flags and statuses do not hide an offer).
-- Hidden offers are kept out of the index rather than indexed with flags: nothing can
-- leak through a filter that forgot a flag.
--
-- A plain view, not a materialized one or a generated column: the planner inlines it,
-- so `WHERE merchant_id = ANY(..)` and `WHERE offer_id = ANY(..)` on it still use
-- offers_merchant and the primary key, and it is never stale. A generated column could
-- not see the merchant's state, which lives in another table.
--
-- The column list is spelled out (a view's `*` is expanded once, at creation): a
-- migration that adds an offer column the storefront needs adds it here too, with
-- CREATE OR REPLACE VIEW (new columns go last).
CREATE VIEW storefront_offers AS
SELECT o.offer_id, o.merchant_id, o.external_id, o.name, o.description, o.html_description,
       o.source, o.seller, o.vendor, o.available, o.visible, o.min_price, o.max_price,
       o.currency, o.status, o.publishing_status, o.tags, o.category, o.image_url,
       o.date_created, o.date_last_modified, o.content_hash, o.raw, o.removed_at,
       o.catalog_version, o.updated_at
FROM offers o
-- The merchant is connected to the channel and enabled (`visible` is generated as
-- `connected AND enabled`): a disconnected or disabled merchant sells nothing, though
-- its catalog stays mirrored so that re-enabling shows it again at once.
JOIN merchants m ON m.merchant_id = o.merchant_id AND m.visible
-- Removed offers keep their rows (a refresh marks them, it does not delete them) but
-- are gone from the storefront.
WHERE o.removed_at IS NULL
  -- Violet's `visible` flag: only an explicit false hides; an offer without the flag
  -- is shown, as Violet shows it.
  AND o.visible IS NOT FALSE
  -- Statuses under which Violet does not sell the offer. Status is an open string
  -- (unknown values are shown), compared case-insensitively.
  AND COALESCE(upper(o.status), '') NOT IN
      ('ARCHIVED', 'FOR_DELETION', 'DISABLED_AVAILABLE', 'DISABLED_UNAVAILABLE')
  -- Only an explicit NOT_PUBLISHED hides: other publishing states (and none) show.
  AND COALESCE(upper(o.publishing_status), '') <> 'NOT_PUBLISHED';
-- Note what is not here: `available` (out of stock) offers stay searchable, with
-- `available` as a filterable attribute, so a storefront decides how to show them.

COMMENT ON VIEW storefront_offers IS
    'Offers a storefront may see: the one statement of the rule (migration 0006).';
