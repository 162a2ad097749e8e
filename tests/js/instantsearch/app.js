// An InstantSearch storefront page over catalog-mirror, through instant-meilisearch.
// Bundled by esbuild into one file (no CDN); the page sets window.SEARCH_HOST/KEY.
import instantsearch from "instantsearch.js";
import { searchBox, hits, refinementList, stats } from "instantsearch.js/es/widgets";
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
  hits({
    container: "#hits",
    templates: {
      item: (hit, { html }) => html`<span class="hit-name">${hit.name}</span> <span class="hit-id">${hit.id}</span>`,
    },
  }),
  // Searchable: typing into its box sends a facet search with the page's search parameters.
  refinementList({ container: "#vendor", attribute: "vendor", limit: 20, searchable: true }),
]);

search.start();
