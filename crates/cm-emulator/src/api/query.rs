//! Query strings and CM collections: lookups by reference (id, name or URI), lists with
//! `skip`, `limit` (default 10, as CM), `total` and per-resource filters. Unknown parameters are
//! ignored, as CM does. Every collection (external CAs, registration tokens, clients, client
//! records) implements [`Resource`] and is read through [`index_of`], [`found`] and [`listed`].

use serde::Serialize;
use serde_json::{Value, json};

use super::{ApiError, ApiResponse, respond};

/// CM's default page size.
pub(crate) const DEFAULT_LIMIT: usize = 10;

/// A decoded query string (`application/x-www-form-urlencoded`, so `+` is a space here).
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub(crate) fn parse(query: Option<&str>) -> Self {
        Query {
            pairs: form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect(),
        }
    }

    /// The last value given for `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    fn number(&self, key: &str) -> Result<Option<usize>, ApiError> {
        self.get(key)
            .map(|value| {
                value.trim().parse::<usize>().map_err(|_| {
                    ApiError::invalid_param(format!(
                        "query parameter `{key}`: expected a non-negative integer, found {value:?}"
                    ))
                })
            })
            .transpose()
    }

    /// `skip` (default 0) and `limit` (default 10).
    pub(crate) fn paging(&self) -> Result<(usize, usize), ApiError> {
        Ok((
            self.number("skip")?.unwrap_or(0),
            self.number("limit")?.unwrap_or(DEFAULT_LIMIT),
        ))
    }

    /// Whether every filter in `filters` that the query names matches: `field(name)` gives
    /// the object's value for a filter name. Filters the query does not give are not applied.
    pub(crate) fn matches<'a>(
        &self,
        filters: &[&str],
        field: impl Fn(&str) -> Option<std::borrow::Cow<'a, str>>,
    ) -> bool {
        filters.iter().all(|filter| match self.get(filter) {
            None => true,
            // Fingerprints are hex: either case matches.
            Some(wanted) if filter.contains("fingerprint") => {
                field(filter).is_some_and(|value| value.as_ref().eq_ignore_ascii_case(wanted))
            }
            Some(wanted) => field(filter).is_some_and(|value| value.as_ref() == wanted),
        })
    }
}

/// One object of a CM collection, as lookups and lists see it.
pub(crate) trait Resource {
    /// What it is called in a not-found error, for example `"external CA"`.
    const KIND: &'static str;
    /// The list filters (query parameter names) it answers to.
    const FILTERS: &'static [&'static str];
    /// Whether `reference` (an id, a name or a URI, as the collection allows) names it.
    fn answers_to(&self, reference: &str) -> bool;
    /// Its value for a filter of [`Resource::FILTERS`].
    fn filter_field(&self, filter: &str) -> Option<std::borrow::Cow<'_, str>>;
}

fn not_found<R: Resource>(reference: &str) -> ApiError {
    ApiError::not_found(format!("{} {reference:?} not found", R::KIND))
}

/// The index of the object `reference` names, or 404 naming it.
pub(crate) fn index_of<R: Resource>(items: &[R], reference: &str) -> Result<usize, ApiError> {
    items
        .iter()
        .position(|item| item.answers_to(reference))
        .ok_or_else(|| not_found::<R>(reference))
}

/// The object `reference` names, or 404 naming it.
pub(crate) fn found<'a, R: Resource + 'a>(
    mut items: impl Iterator<Item = &'a R>,
    reference: &str,
) -> Result<&'a R, ApiError> {
    items
        .find(|item| item.answers_to(reference))
        .ok_or_else(|| not_found::<R>(reference))
}

/// The objects that pass the query's filters, as `view` shows them (for [`list_response`]).
pub(crate) fn listed<'a, R: Resource + 'a>(
    query: &Query,
    items: impl Iterator<Item = &'a R>,
    view: impl Fn(&R) -> Value,
) -> Vec<Value> {
    items
        .filter(|item| query.matches(R::FILTERS, |filter| item.filter_field(filter)))
        .map(view)
        .collect()
}

/// A CM list page.
#[derive(Debug, Serialize)]
pub(crate) struct ListPage {
    pub(crate) skip: usize,
    pub(crate) limit: usize,
    pub(crate) total: usize,
    pub(crate) resources: Vec<Value>,
}

/// `{"skip","limit","total","resources"}` for the objects that passed the filters.
pub(crate) fn list_response(query: &Query, items: Vec<Value>) -> Result<ApiResponse, ApiError> {
    list_response_with(query, items, None)
}

/// As [`list_response`], with extra top-level fields (for example a dropped-records count).
pub(crate) fn list_response_with(
    query: &Query,
    items: Vec<Value>,
    extra: Option<(&str, Value)>,
) -> Result<ApiResponse, ApiError> {
    let (skip, limit) = query.paging()?;
    let total = items.len();
    let resources: Vec<Value> = items.into_iter().skip(skip).take(limit).collect();
    let mut body = json!(ListPage {
        skip,
        limit,
        total,
        resources
    });
    if let (Some((key, value)), Some(object)) = (extra, body.as_object_mut()) {
        object.insert(key.to_owned(), value);
    }
    respond(200, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_reads_skip_and_limit() {
        assert_eq!(Query::parse(None).paging().unwrap(), (0, 10));
        assert_eq!(
            Query::parse(Some("skip=2&limit=5&x=1")).paging().unwrap(),
            (2, 5)
        );
        let error = Query::parse(Some("limit=-1")).paging().unwrap_err();
        assert_eq!(error.code_desc, "NCERRInvalidParamValue");
    }

    #[test]
    fn filters_decode_and_ignore_unknown_names() {
        let query = Query::parse(Some("name=My+CA%2F1&unknown=5"));
        assert_eq!(query.get("name"), Some("My CA/1"));
        let field = |name: &str| (name == "name").then(|| "My CA/1".into());
        assert!(query.matches(&["name", "subject"], field));
        let other = |name: &str| (name == "name").then(|| "other".into());
        assert!(!query.matches(&["name"], other));
    }
}
