// Drives catalog-mirror's search API with the official meilisearch JS client, unchanged.
// Usage: node client.mjs HOST SEARCH_KEY KEY_UID. Prints one JSON summary for the Rust test
// (tests/search_clients.rs) to check against the fixture catalog.
import { Meilisearch, MeilisearchApiError } from "meilisearch";
import { generateTenantToken } from "meilisearch/token";

const [host, apiKey, apiKeyUid] = process.argv.slice(2);
const client = new Meilisearch({ host, apiKey });
const index = client.index("offers");
const summary = {};

const typo = await index.search("merino sweatre", {
  limit: 3,
  attributesToHighlight: ["name"],
});
summary.typo = { first: typo.hits[0]?.name, formatted: typo.hits[0]?._formatted?.name, total: typo.estimatedTotalHits };

const paged = await index.search("", {
  filter: ["merchant_id = 1002", ["tags = eco", "tags = sale"]],
  facets: ["vendor", "tags", "price"],
  sort: ["price:desc"],
  hitsPerPage: 5,
  page: 2,
});
summary.paged = {
  ids: paged.hits.map((hit) => hit.id),
  totalHits: paged.totalHits,
  totalPages: paged.totalPages,
  page: paged.page,
  vendors: paged.facetDistribution?.vendor,
  priceStats: paged.facetStats?.price,
};

const multi = await client.multiSearch({
  queries: [
    { indexUid: "offers", q: "trail backp", limit: 2 },
    { indexUid: "offers", q: "", filter: "vendor = Northwind AND available = true", limit: 0 },
  ],
});
summary.multi = {
  first: multi.results[0].hits[0]?.name,
  uids: multi.results.map((result) => result.indexUid),
  northwindAvailable: multi.results[1].estimatedTotalHits,
};

const facets = await index.searchForFacetValues({ facetName: "vendor", facetQuery: "nor" });
summary.facetSearch = facets.facetHits;
// What a searchable refinementList adds to its facet search: ignored, as Meilisearch does.
const facetsWithExtras = await index.searchForFacetValues({
  facetName: "vendor", facetQuery: "nor", attributesToHighlight: ["*"], highlightPreTag: "<mark>", limit: 10,
});
summary.facetSearchWithExtras = facetsWithExtras.facetHits;

// A product page: one document by id, some fields only, and a missing one.
summary.product = await index.getDocument(1001900, { fields: ["id", "name", "vendor"] });
try {
  await index.getDocument(999999999);
  summary.missingProduct = "no error";
} catch (error) {
  summary.missingProduct = error instanceof MeilisearchApiError ? error.cause?.code : String(error);
}
const listed = await index.getDocuments({ filter: "merchant_id = 1002", fields: ["id"], limit: 3, offset: 2 });
const browsed = await index.getDocuments({ fields: ["id"], limit: 4 });
summary.documents = {
  filtered: { ids: listed.results.map((document) => document.id), total: listed.total, limit: listed.limit, offset: listed.offset },
  browsed: { ids: browsed.results.map((document) => document.id), total: browsed.total },
};
const settings = await index.getSettings();
summary.settings = {
  rankingRules: settings.rankingRules,
  firstSearchable: settings.searchableAttributes?.[0],
  maxTotalHits: settings.pagination?.maxTotalHits,
};
summary.version = (await client.getVersion()).pkgVersion;
try {
  await index.addDocuments([{ id: 1, name: "nope" }]);
  summary.write = "no error";
} catch (error) {
  summary.write = error instanceof MeilisearchApiError ? error.cause?.code : String(error);
}

try {
  await index.search("", { filter: "price >" });
  summary.error = "no error";
} catch (error) {
  summary.error = error instanceof MeilisearchApiError ? error.cause?.code : String(error);
}

const token = await generateTenantToken({
  apiKey,
  apiKeyUid,
  searchRules: { offers: { filter: "merchant_id = 1003" } },
  expiresAt: new Date(Date.now() + 600_000),
});
const tenant = new Meilisearch({ host, apiKey: token });
const scoped = await tenant.index("offers").search("", { facets: ["merchant_id"], limit: 0 });
summary.tenant = Object.keys(scoped.facetDistribution.merchant_id);

console.log(JSON.stringify(summary));
