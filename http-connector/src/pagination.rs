//! Pagination: what each request adds (offset, page, pointer, token) and, from each
//! response, whether there is a next page. An API that serves the same token or the same
//! records again stops the run with an error instead of looping.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Url;
use serde_json::Value;

use crate::error::api;
use crate::extract::Page;
use crate::model::{EndPageIndex, Pagination, PaginationKind, TokenLocation};
use crate::transport::Failure;

/// What the pagination adds to one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// A next URL given by the API (POINTER); it replaces the spec's URL and query.
    pub url: Option<Url>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// Wait this long before sending (`delayRequestMillis`).
    pub delay: Duration,
}

#[derive(Debug)]
pub struct Pager<'a> {
    pagination: &'a Pagination,
    requests: u64,
    offset: u64,
    page_index: u64,
    /// The pointer or token of the next request.
    token: Option<String>,
    next_url: Option<Url>,
    seen_tokens: HashSet<String>,
    previous_fingerprint: Option<u64>,
    done: bool,
}

impl<'a> Pager<'a> {
    pub fn new(pagination: &'a Pagination) -> Self {
        let page_index = match &pagination.kind {
            PaginationKind::Page { initial_index, .. } => *initial_index,
            _ => 0,
        };
        Self {
            pagination,
            requests: 0,
            offset: 0,
            page_index,
            token: None,
            next_url: None,
            seen_tokens: HashSet::new(),
            previous_fingerprint: None,
            done: false,
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The next request's additions, or `None` once the last page was seen.
    pub fn next_request(&mut self) -> Result<Option<PageRequest>, Failure> {
        if self.done {
            return Ok(None);
        }
        if self.requests >= self.pagination.maximum_requests {
            return Err(api(format!(
                "paginating: made the maximum of {} requests (maximumRequest) and there is still a next page",
                self.pagination.maximum_requests
            )));
        }
        let mut request = PageRequest::default();
        if let Some(url) = self.next_url.take() {
            request.url = Some(url);
        } else if let Some(limit) = &self.pagination.limit {
            request
                .query
                .push((limit.name.clone(), limit.value.to_string()));
        }
        match &self.pagination.kind {
            PaginationKind::Offset { offset_name, .. } => {
                request
                    .query
                    .push((offset_name.clone(), self.offset.to_string()));
            }
            PaginationKind::Page { param_name, .. } => {
                request
                    .query
                    .push((param_name.clone(), self.page_index.to_string()));
            }
            PaginationKind::Pointer { param_name, .. } => {
                if let Some(token) = &self.token {
                    request.query.push((param_name.clone(), token.clone()));
                }
            }
            PaginationKind::ContinuationToken {
                location,
                param_name,
                delay_millis,
                ..
            } => {
                if let Some(token) = &self.token {
                    let pair = (param_name.clone(), token.clone());
                    match location {
                        TokenLocation::Query => request.query.push(pair),
                        TokenLocation::Header => request.headers.push(pair),
                    }
                    request.delay = Duration::from_millis(*delay_millis);
                }
            }
            PaginationKind::None => {}
        }
        self.requests += 1;
        Ok(Some(request))
    }

    /// Takes in the response to the last request: its body, headers, URL and records.
    pub fn observe(
        &mut self,
        body: &Value,
        headers: &HeaderMap,
        url: &Url,
        page: &Page,
    ) -> Result<(), Failure> {
        let number = self.requests;
        if page.elements > 0 && self.previous_fingerprint == Some(page.fingerprint) {
            return Err(api(format!(
                "paginating: page {number} ({url_path}) returned exactly the records of page {}; stopping rather than loop",
                number - 1,
                url_path = url.path()
            )));
        }
        self.previous_fingerprint = Some(page.fingerprint);
        let short = page.elements == 0
            || self
                .pagination
                .limit
                .as_ref()
                .is_some_and(|l| (page.elements as u64) < l.value);
        match &self.pagination.kind {
            PaginationKind::Offset { end_condition, .. } => {
                let ended = end_condition.as_ref().is_some_and(|c| {
                    c.path
                        .query(body)
                        .iter()
                        .any(|found| same_value(found, &c.value))
                });
                self.done = short || ended;
                self.offset += page.elements as u64;
            }
            PaginationKind::Page {
                end_index,
                initial_index,
                ..
            } => {
                let last = match end_index {
                    None => None,
                    Some(EndPageIndex::Last(last)) => Some(*last),
                    Some(EndPageIndex::PageCountHeader(name)) => {
                        let count = headers
                            .get(name.as_str())
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .ok_or_else(|| {
                                api(format!(
                                    "paginating: the response to page {number} has no page count in its header {name}"
                                ))
                            })?;
                        // The header counts pages; `None` when there are none at all.
                        (initial_index + count).checked_sub(1)
                    }
                };
                let reached_last = match last {
                    Some(last) => self.page_index >= last,
                    None => end_index.is_some(),
                };
                self.done = short || reached_last;
                self.page_index += 1;
            }
            PaginationKind::Pointer { path, .. } => {
                let next = self.next_token(path, body, number)?;
                self.done = next.is_none();
                if let Some(next) = next {
                    if let Some(next_url) = as_url(&next, url)? {
                        self.next_url = Some(next_url);
                        self.token = None;
                    } else {
                        self.token = Some(next);
                    }
                }
            }
            PaginationKind::ContinuationToken { path, .. } => {
                self.token = self.next_token(path, body, number)?;
                self.done = self.token.is_none();
            }
            PaginationKind::None => self.done = true,
        }
        Ok(())
    }

    /// The pointer or token at `path`; absent, null or empty ends the pagination.
    fn next_token(
        &mut self,
        path: &serde_json_path::JsonPath,
        body: &Value,
        number: u64,
    ) -> Result<Option<String>, Failure> {
        let token = match path.query(body).first() {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(api(format!(
                    "paginating: the next-page pointer of page {number} is not a string but {}",
                    if other.is_object() {
                        "an object"
                    } else {
                        "an array or a boolean"
                    }
                )))
            }
        };
        if !self.seen_tokens.insert(token.clone()) {
            return Err(api(format!(
                "paginating: page {number} gave a next-page token already used; stopping rather than loop"
            )));
        }
        Ok(Some(token))
    }
}

/// A pointer that is a URL (absolute, or relative to the current one) is the next URL.
/// It must stay on the current origin: the request carries the credentials.
fn as_url(pointer: &str, current: &Url) -> Result<Option<Url>, Failure> {
    let looks_like_url = pointer.starts_with('/')
        || pointer.starts_with('?')
        || pointer.starts_with("http://")
        || pointer.starts_with("https://");
    if !looks_like_url {
        return Ok(None);
    }
    let next = current
        .join(pointer)
        .map_err(|e| api(format!("paginating: the next-page URL is not a URL: {e}")))?;
    if next.origin() != current.origin() {
        return Err(api(format!(
            "paginating: the next-page URL leaves {} for {}; refusing to send the credentials there",
            current.origin().ascii_serialization(),
            next.origin().ascii_serialization()
        )));
    }
    Ok(Some(next))
}

/// `endConditionValue` matches the response's value as JSON or as the same text
/// (`"false"` matches `false`, as the published examples write values as strings).
fn same_value(found: &Value, expected: &Value) -> bool {
    fn text(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Bool(_) | Value::Number(_) | Value::Null => Some(v.to_string()),
            _ => None,
        }
    }
    found == expected || (text(found).is_some() && text(found) == text(expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EndCondition, Limit};
    use serde_json::json;
    use serde_json_path::JsonPath;

    fn pagination(kind: PaginationKind, limit: Option<u64>) -> Pagination {
        Pagination {
            kind,
            limit: limit.map(|value| Limit {
                name: "limit".into(),
                value,
            }),
            maximum_requests: 10,
        }
    }

    fn page(elements: usize, fingerprint: u64) -> Page {
        Page {
            elements,
            fingerprint,
        }
    }

    fn url() -> Url {
        Url::parse("http://api.test/items").unwrap()
    }

    #[test]
    fn offset_counts_up_and_ends_on_a_short_page_or_the_end_condition() {
        let p = pagination(
            PaginationKind::Offset {
                offset_name: "offset".into(),
                end_condition: Some(EndCondition {
                    path: JsonPath::parse("$.more").unwrap(),
                    value: json!("false"),
                }),
            },
            Some(2),
        );
        let mut pager = Pager::new(&p);
        let first = pager.next_request().unwrap().unwrap();
        assert_eq!(
            first.query,
            [("limit".into(), "2".into()), ("offset".into(), "0".into())]
        );
        pager
            .observe(
                &json!({"more": true}),
                &HeaderMap::new(),
                &url(),
                &page(2, 1),
            )
            .unwrap();
        assert_eq!(pager.next_request().unwrap().unwrap().query[1].1, "2");
        pager
            .observe(
                &json!({"more": false}),
                &HeaderMap::new(),
                &url(),
                &page(2, 2),
            )
            .unwrap();
        assert_eq!(pager.next_request().unwrap(), None, "end condition");
        let mut pager = Pager::new(&p);
        pager.next_request().unwrap();
        pager
            .observe(&json!({}), &HeaderMap::new(), &url(), &page(1, 1))
            .unwrap();
        assert_eq!(pager.next_request().unwrap(), None, "short page");
    }

    #[test]
    fn the_same_records_twice_is_an_error() {
        let p = pagination(
            PaginationKind::Page {
                param_name: "page".into(),
                initial_index: 0,
                end_index: None,
            },
            None,
        );
        let mut pager = Pager::new(&p);
        pager.next_request().unwrap();
        pager
            .observe(&json!({}), &HeaderMap::new(), &url(), &page(3, 7))
            .unwrap();
        pager.next_request().unwrap();
        let err = pager
            .observe(&json!({}), &HeaderMap::new(), &url(), &page(3, 7))
            .unwrap_err();
        assert!(
            err.message.contains("exactly the records"),
            "{}",
            err.message
        );
    }

    #[test]
    fn page_ends_at_the_header_page_count_and_maximum_requests_is_an_error() {
        let p = pagination(
            PaginationKind::Page {
                param_name: "page".into(),
                initial_index: 1,
                end_index: Some(EndPageIndex::PageCountHeader("x-pagecount".into())),
            },
            None,
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-pagecount", "2".parse().unwrap());
        let mut pager = Pager::new(&p);
        assert_eq!(
            pager.next_request().unwrap().unwrap().query,
            [("page".into(), "1".into())]
        );
        pager
            .observe(&json!({}), &headers, &url(), &page(1, 1))
            .unwrap();
        assert_eq!(
            pager.next_request().unwrap().unwrap().query,
            [("page".into(), "2".into())]
        );
        pager
            .observe(&json!({}), &headers, &url(), &page(1, 2))
            .unwrap();
        assert_eq!(pager.next_request().unwrap(), None);

        let mut p = pagination(
            PaginationKind::Page {
                param_name: "page".into(),
                initial_index: 0,
                end_index: None,
            },
            None,
        );
        p.maximum_requests = 2;
        let mut pager = Pager::new(&p);
        for i in 0..2 {
            pager.next_request().unwrap().unwrap();
            pager
                .observe(&json!({}), &headers, &url(), &page(1, i))
                .unwrap();
        }
        let err = pager.next_request().unwrap_err();
        assert!(err.message.contains("maximumRequest"), "{}", err.message);
    }

    #[test]
    fn pointers_are_urls_or_tokens_and_a_repeated_one_is_an_error() {
        let p = pagination(
            PaginationKind::Pointer {
                path: JsonPath::parse("$.paging.next").unwrap(),
                param_name: "cursor".into(),
            },
            Some(5),
        );
        let mut pager = Pager::new(&p);
        pager.next_request().unwrap();
        let body = json!({"paging": {"next": "/items?after=5"}});
        pager
            .observe(&body, &HeaderMap::new(), &url(), &page(5, 1))
            .unwrap();
        let next = pager.next_request().unwrap().unwrap();
        assert_eq!(next.url.unwrap().as_str(), "http://api.test/items?after=5");
        assert!(next.query.is_empty());
        pager
            .observe(
                &json!({"paging": {"next": "abc"}}),
                &HeaderMap::new(),
                &url(),
                &page(5, 2),
            )
            .unwrap();
        assert_eq!(
            pager.next_request().unwrap().unwrap().query,
            [
                ("limit".into(), "5".into()),
                ("cursor".into(), "abc".into())
            ]
        );
        let err = pager
            .observe(
                &json!({"paging": {"next": "abc"}}),
                &HeaderMap::new(),
                &url(),
                &page(5, 3),
            )
            .unwrap_err();
        assert!(err.message.contains("already used"), "{}", err.message);

        let mut pager = Pager::new(&p);
        pager.next_request().unwrap();
        let elsewhere = json!({"paging": {"next": "https://evil.test/items"}});
        assert!(pager
            .observe(&elsewhere, &HeaderMap::new(), &url(), &page(5, 1))
            .is_err());
        let mut pager = Pager::new(&p);
        pager.next_request().unwrap();
        pager
            .observe(
                &json!({"paging": {"next": ""}}),
                &HeaderMap::new(),
                &url(),
                &page(5, 1),
            )
            .unwrap();
        assert_eq!(pager.next_request().unwrap(), None);
    }

    #[test]
    fn continuation_tokens_go_in_a_header_after_a_delay() {
        let p = pagination(
            PaginationKind::ContinuationToken {
                path: JsonPath::parse("$.token").unwrap(),
                location: TokenLocation::Header,
                param_name: "X-Token".into(),
                delay_millis: 20,
            },
            None,
        );
        let mut pager = Pager::new(&p);
        assert_eq!(pager.next_request().unwrap().unwrap().delay, Duration::ZERO);
        pager
            .observe(
                &json!({"token": "t1"}),
                &HeaderMap::new(),
                &url(),
                &page(1, 1),
            )
            .unwrap();
        let next = pager.next_request().unwrap().unwrap();
        assert_eq!(next.headers, [("X-Token".into(), "t1".into())]);
        assert_eq!(next.delay, Duration::from_millis(20));
        pager
            .observe(
                &json!({"token": null}),
                &HeaderMap::new(),
                &url(),
                &page(1, 2),
            )
            .unwrap();
        assert_eq!(pager.next_request().unwrap(), None);
    }
}
