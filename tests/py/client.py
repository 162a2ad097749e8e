"""Drives catalog-mirror's search API with the official meilisearch Python SDK, unchanged.

Usage: python3 client.py HOST SEARCH_KEY KEY_UID. Prints one JSON summary for the Rust
test (tests/search_clients.rs) to check against the fixture catalog.
"""
import datetime
import json
import sys

import meilisearch
from meilisearch.errors import MeilisearchApiError

host, api_key, key_uid = sys.argv[1:4]
client = meilisearch.Client(host, api_key)
index = client.index("offers")
summary = {}

prefix = index.search("trail backp", {"limit": 3, "attributesToCrop": ["description:2"]})
summary["prefix"] = {"first": prefix["hits"][0]["name"], "cropped": prefix["hits"][0]["_formatted"]["description"]}

offset = index.search("", {"filter": "price 1000 TO 3000", "sort": ["price:asc"], "limit": 4, "offset": 4})
summary["offset"] = {"ids": [hit["id"] for hit in offset["hits"]], "total": offset["estimatedTotalHits"]}

multi = client.multi_search([
    {"indexUid": "offers", "q": "merino jumper", "limit": 1},
    {"indexUid": "offers", "q": "cotton", "facets": ["category"], "limit": 0},
])
summary["multi"] = {
    "synonym": multi["results"][0]["hits"][0]["name"],
    "cotton_categories": multi["results"][1]["facetDistribution"]["category"],
}

facets = index.facet_search("tags", "lim")
summary["facet_search"] = facets["facetHits"]

# A product page: one document, the settings it reads, a missing document.
product = index.get_document(1001900, {"fields": ["id", "name", "min_price"]})
summary["product"] = dict(product)
try:
    index.get_document(999999999)
    summary["missing_product"] = "no error"
except MeilisearchApiError as error:
    summary["missing_product"] = error.code
documents = index.get_documents({"filter": "merchant_id = 1003 AND available = true", "fields": ["id"], "limit": 5})
summary["documents"] = {"ids": [document.id for document in documents.results], "total": documents.total}
settings = index.get_settings()
summary["settings"] = {
    "filterable": settings["filterableAttributes"],
    "typo": settings["typoTolerance"]["minWordSizeForTypos"],
    "stop_words": "the" in settings["stopWords"],
}
summary["synonyms"] = index.get_synonyms()["sweater"]
summary["version"] = client.get_version()["pkgVersion"]
try:
    index.update_settings({"synonyms": {}})
    summary["write"] = "no error"
except MeilisearchApiError as error:
    summary["write"] = error.code

# A storefront's "sort by name" (InstantSearch's `offers:name:asc`), prices breaking ties.
by_name = client.multi_search([
    {"indexUid": "offers", "filter": "merchant_id = 1003", "sort": ["name:asc", "price:desc"],
     "limit": 6, "attributesToRetrieve": ["id"]},
])
summary["by_name"] = [hit["id"] for hit in by_name["results"][0]["hits"]]

try:
    index.search("", {"sort": ["description:asc"]})
    summary["error"] = "no error"
except MeilisearchApiError as error:
    summary["error"] = error.code

token = client.generate_tenant_token(
    key_uid,
    {"offers": {"filter": "merchant_id = 1002"}},
    api_key=api_key,
    expires_at=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=10),
)
tenant = meilisearch.Client(host, token)
scoped = tenant.index("offers").search("", {"facets": ["merchant_id"], "limit": 0})
summary["tenant"] = sorted(scoped["facetDistribution"]["merchant_id"].keys())

print(json.dumps(summary))
