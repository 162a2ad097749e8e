-- Collections cost what changed: a collections refresh reads a collection's offer
-- listing again only when its `date_last_modified` moved, an event named it, or its
-- membership was last read longer ago than `refresh.collections_recheck_secs`.
--
-- When the membership of this collection was last read to its final page (by a
-- refresh that published). NULL: never, or forgotten on purpose (a manual resync),
-- so the next refresh reads it whatever its date says.
ALTER TABLE collections ADD COLUMN members_read_at TIMESTAMPTZ;
