//! Violet's catalog endpoints as typed calls and page streams.
//!
//! Paging follows the contract: `page` is 1-based, `size` is `page_size`, and a
//! listing ends after a well-formed page with `last: true` or an empty `content`; an
//! answer that is not such a page (no `content` array, another page's number) is a
//! decode error, retried like a 5xx. `total_elements` and `total_pages` are 0 on the
//! merchant-offers endpoint, so counts are never trusted.
//! Each page is one retried call. A stream ends right after its first error, so a
//! consumer knows a listing is complete only when the stream ended without one.

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt, stream};
use serde_json::Value;

use super::client::{Call, VioletClient};
use super::dates;
use super::error::VioletError;
use super::models::{
    Collection, FromJson, Merchant, Offer, Page, PageNumbering, decode_page_values,
};

/// A listing that never says `last` stops here (10 million offers at size 100).
const MAX_PAGES: u32 = 100_000;

const MERCHANT_OFFERS: &str = "/catalog/offers/merchants/{merchant_id}";
const OFFER: &str = "/catalog/offers/{offer_id}";
const MERCHANT_COLLECTIONS: &str = "/catalog/collections/merchants/{merchant_id}";
const COLLECTION_OFFERS: &str = "/catalog/collections/{collection_id}/offers";
const MERCHANT: &str = "/merchants/{merchant_id}";

/// Decodes the answer to page `requested`: the envelope (which must hold an array of
/// `content` and, when it says, the number asked for), then each item by itself so an
/// error can name it. Returns the numbering to check the next page with. Anything
/// else is a [`VioletError::Decode`], retried like a 5xx and never the end of a
/// listing (DESIGN.md, invariant 9).
fn decode_page<T: FromJson>(
    bytes: &[u8],
    requested: u32,
    numbering: PageNumbering,
) -> Result<(Page<T>, PageNumbering), String> {
    let page = decode_page_values(bytes).map_err(|err| format!("not a catalog page: {err}"))?;
    let numbering = numbering.check(requested, page.number)?;
    let page = page.try_map(|index, value: Value| {
        T::from_json(value).map_err(|detail| format!("item {index}: {detail}"))
    })?;
    Ok((page, numbering))
}

impl VioletClient {
    /// Every page of a merchant's offers (with their collections), in order.
    pub fn offer_pages(
        &self,
        merchant_id: i64,
    ) -> impl Stream<Item = Result<Page<Offer>, VioletError>> + Send + Unpin + 'static {
        self.offer_pages_with(merchant_id, Vec::new())
    }

    /// Like [`offer_pages`](Self::offer_pages), only offers modified at or after `since`
    /// (`date_last_modified:min`), for incremental pulls.
    pub fn offer_pages_modified_since(
        &self,
        merchant_id: i64,
        since: DateTime<Utc>,
    ) -> impl Stream<Item = Result<Page<Offer>, VioletError>> + Send + Unpin + 'static {
        self.offer_pages_with(
            merchant_id,
            vec![("date_last_modified:min", dates::format_query(&since))],
        )
    }

    fn offer_pages_with(
        &self,
        merchant_id: i64,
        filters: Vec<(&'static str, String)>,
    ) -> impl Stream<Item = Result<Page<Offer>, VioletError>> + Send + Unpin + 'static {
        self.pages(move || {
            let mut call = Call::get(
                MERCHANT_OFFERS,
                format!("/catalog/offers/merchants/{merchant_id}"),
            );
            call.merchant = Some(merchant_id);
            call.query.push(("include", "collections".into()));
            call.query.extend(filters.iter().cloned());
            call
        })
    }

    /// Every offer of a merchant, page after page. Ends after the first error.
    pub fn offers(
        &self,
        merchant_id: i64,
    ) -> impl Stream<Item = Result<Offer, VioletError>> + Send + Unpin + 'static {
        flatten(self.offer_pages(merchant_id))
    }

    /// One offer (with its collections, like the listing); `None` when Violet answers 404.
    pub async fn offer(&self, offer_id: i64) -> Result<Option<Offer>, VioletError> {
        let mut call = Call::get(OFFER, format!("/catalog/offers/{offer_id}"));
        call.query.push(("include", "collections".into()));
        not_found_as_none(self.execute(&call, Offer::from_slice).await)
    }

    /// Every page of a merchant's collections.
    pub fn collection_pages(
        &self,
        merchant_id: i64,
    ) -> impl Stream<Item = Result<Page<Collection>, VioletError>> + Send + Unpin + 'static {
        self.pages(move || {
            let mut call = Call::get(
                MERCHANT_COLLECTIONS,
                format!("/catalog/collections/merchants/{merchant_id}"),
            );
            call.merchant = Some(merchant_id);
            call
        })
    }

    /// Every collection of a merchant. Ends after the first error.
    pub fn collections(
        &self,
        merchant_id: i64,
    ) -> impl Stream<Item = Result<Collection, VioletError>> + Send + Unpin + 'static {
        flatten(self.collection_pages(merchant_id))
    }

    /// Every page of the offers in a collection (with their collections, like the
    /// merchant listing, so an offer's `raw` has one shape whichever way it came).
    pub fn collection_offer_pages(
        &self,
        collection_id: i64,
    ) -> impl Stream<Item = Result<Page<Offer>, VioletError>> + Send + Unpin + 'static {
        self.pages(move || {
            let mut call = Call::get(
                COLLECTION_OFFERS,
                format!("/catalog/collections/{collection_id}/offers"),
            );
            call.query.push(("include", "collections".into()));
            call
        })
    }

    /// Every offer in a collection. Ends after the first error.
    pub fn collection_offers(
        &self,
        collection_id: i64,
    ) -> impl Stream<Item = Result<Offer, VioletError>> + Send + Unpin + 'static {
        flatten(self.collection_offer_pages(collection_id))
    }

    /// One merchant; `None` when Violet answers 404.
    pub async fn merchant(&self, merchant_id: i64) -> Result<Option<Merchant>, VioletError> {
        let mut call = Call::get(MERCHANT, format!("/merchants/{merchant_id}"));
        call.merchant = Some(merchant_id);
        not_found_as_none(self.execute(&call, Merchant::from_slice).await)
    }

    /// Pages 1, 2, ... of the listing `base` makes, until a final page or an error.
    fn pages<T, F>(
        &self,
        base: F,
    ) -> impl Stream<Item = Result<Page<T>, VioletError>> + Send + Unpin + 'static
    where
        T: FromJson + Send + Unpin + 'static,
        F: Fn() -> Call + Send + Unpin + 'static,
    {
        let size = self.inner.page_size;
        let state = Some((self.clone(), base, 1u32, PageNumbering::default()));
        stream::unfold(state, move |state| async move {
            let (client, base, number, numbering) = state?;
            let mut call = base();
            call.page = Some(number);
            call.query.insert(0, ("page", number.to_string()));
            call.query.insert(1, ("size", size.to_string()));
            if number > MAX_PAGES {
                let err = VioletError::Decode {
                    endpoint: call.endpoint(),
                    page: Some(number),
                    detail: format!("no page with `last: true` within {MAX_PAGES} pages"),
                };
                return Some((Err(err), None));
            }
            let decode = |bytes: &[u8]| decode_page::<T>(bytes, number, numbering);
            match client.execute(&call, decode).await {
                Ok((page, numbering)) => {
                    let next = (!page.is_final()).then_some((client, base, number + 1, numbering));
                    Some((Ok(page), next))
                }
                Err(err) => Some((Err(err), None)),
            }
        })
        .boxed()
    }
}

fn flatten<T: Send + 'static>(
    pages: impl Stream<Item = Result<Page<T>, VioletError>> + Send + Unpin + 'static,
) -> impl Stream<Item = Result<T, VioletError>> + Send + Unpin + 'static {
    pages
        .map_ok(|page| stream::iter(page.content.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
}

fn not_found_as_none<T>(result: Result<T, VioletError>) -> Result<Option<T>, VioletError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(VioletError::Http { status: 404, .. }) => Ok(None),
        Err(err) => Err(err),
    }
}
