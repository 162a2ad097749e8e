// An InstantSearch storefront page over catalog-mirror, through instant-meilisearch.
// Bundled by esbuild into one file (no CDN); the page sets window.SEARCH_HOST/KEY.
import instantsearch from "instantsearch.js";
import {
  clearRefinements,
  hits,
  hitsPerPage,
  pagination,
  rangeInput,
  refinementList,
  searchBox,
  sortBy,
  stats,
} from "instantsearch.js/es/widgets";
import { instantMeiliSearch } from "@meilisearch/instant-meilisearch";

const { searchClient } = instantMeiliSearch(window.SEARCH_HOST, window.SEARCH_KEY);

const search = instantsearch({
  indexName: "offers",
  searchClient,
  initialUiState: { offers: { query: window.INITIAL_QUERY || "" } },
});

search.addWidgets([
  searchBox({ container: "#searchbox" }),
  stats({ container: "#stats" }),
  // Relevance, then two sorts a shop offers: price (a number) and name (a text).
  sortBy({
    container: "#sort",
    items: [
      { label: "Relevance", value: "offers" },
      { label: "Price", value: "offers:min_price:asc" },
      { label: "Name", value: "offers:name:asc" },
    ],
  }),
  hitsPerPage({
    container: "#per-page",
    items: [
      { label: "6 per page", value: 6, default: true },
      { label: "12 per page", value: 12 },
    ],
  }),
  clearRefinements({ container: "#clear" }),
  hits({
    container: "#hits",
    templates: {
      item: (hit, { html, components }) =>
        html`<span class="hit-name">${components.Highlight({ hit, attribute: "name" })}</span> <span class="hit-id">${hit.id}</span>`,
    },
  }),
  // Searchable: typing into its box sends a facet search with the page's search parameters.
  refinementList({ container: "#vendor", attribute: "vendor", limit: 20, searchable: true }),
  // Bounds from facetStats; the refinement is a numeric range filter.
  rangeInput({ container: "#price", attribute: "min_price" }),
  pagination({ container: "#pagination" }),
]);

search.start();
