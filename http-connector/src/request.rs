//! One operation's request with the options filled in: what stays the same from page to
//! page (or batch to batch), and building each request from it.

use reqwest::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use serde_json::Value;

use crate::definition::{Auth, API_KEY, PASSWORD, TOKEN, USERNAME};
use crate::error::configuration;
use crate::inputs::Options;
use crate::model::RequestTemplate;
use crate::pagination::PageRequest;
use crate::template::{self, Encoding, Values};
use crate::transport::Failure;

/// The parts of every request that do not change from page to page, filled.
pub struct Request {
    method: reqwest::Method,
    url: Url,
    query: Vec<(String, String)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<(Vec<u8>, bool)>,
}

impl Request {
    /// `extra_query` is added after the template's query (the schedule's parameters).
    pub fn new(
        template: &RequestTemplate,
        auth: &Auth,
        options: &Options,
        values: &Values,
        extra_query: Vec<(String, String)>,
    ) -> Result<Self, Failure> {
        let host = match &options.base_url {
            Some(base) => base.as_str().to_owned(),
            None if template.host.trim().is_empty() => {
                return Err(configuration(
                    "building the request URL: the document names no server (servers[0].url): set option `base_url`",
                ))
            }
            None => values.fill(&template.host, Encoding::Host, "urlParams.host")?,
        };
        // An optional entry is left out when one of its placeholders has no value.
        let wanted = |(k, v): &&(String, String)| {
            !template.optional.contains(k)
                || template::placeholders(k)
                    .chain(template::placeholders(v))
                    .all(|name| values.get(name).is_some())
        };
        let path = values.fill(&template.path, Encoding::PathSegment, "urlParams.path")?;
        let joined = format!("{}{}", host.trim_end_matches('/'), path);
        let url = Url::parse(&joined).map_err(|e| {
            configuration(format!(
                "building the request URL from urlParams.host and urlParams.path: {e}"
            ))
        })?;
        let mut query = Vec::new();
        for (k, v) in template.query.iter().filter(wanted) {
            query.push((
                values.fill(k, Encoding::Raw, "urlParams.queryParams")?,
                values.fill(v, Encoding::Raw, &format!("urlParams.queryParams.{k}"))?,
            ));
        }
        query.extend(extra_query);
        let mut headers = Vec::new();
        for (k, v) in template.headers.iter().filter(wanted) {
            let name = values.fill(k, Encoding::Raw, "headerParams")?;
            let value = values.fill(v, Encoding::Raw, &format!("headerParams.{k}"))?;
            headers.push(header(&name, &value, false)?);
        }
        let secret = |name: &str| options.get(name).unwrap_or_default().to_owned();
        match auth {
            Auth::None => {}
            Auth::Basic => {
                use base64::Engine;
                let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    secret(USERNAME),
                    secret(PASSWORD)
                ));
                headers.push(header(
                    AUTHORIZATION.as_str(),
                    &format!("Basic {credentials}"),
                    true,
                )?);
            }
            Auth::Bearer => headers.push(header(
                AUTHORIZATION.as_str(),
                &format!("Bearer {}", secret(TOKEN)),
                true,
            )?),
            Auth::ApiKey { header: name } => headers.push(header(name, &secret(API_KEY), true)?),
        }
        if !headers.iter().any(|(n, _)| n == ACCEPT) {
            headers.push((ACCEPT, HeaderValue::from_static("application/json")));
        }
        let body = match &template.body {
            None => None,
            Some(Value::String(text)) => Some((
                values.fill(text, Encoding::Raw, "bodyParams")?.into_bytes(),
                false,
            )),
            Some(json) => Some((
                serde_json::to_vec(&values.fill_json(json, "bodyParams")?)
                    .expect("a JSON value serializes"),
                true,
            )),
        };
        Ok(Self {
            method: template.method.as_reqwest(),
            url,
            query,
            headers,
            body,
        })
    }

    /// The request of one page.
    pub fn build(&self, page: &PageRequest) -> Result<reqwest::Request, Failure> {
        let mut request = self.start(page.url.as_ref(), &page.query);
        let headers = request.headers_mut();
        for (name, value) in &page.headers {
            let (name, value) = header(name, value, false)?;
            headers.insert(name, value);
        }
        if let Some((body, is_json)) = &self.body {
            if *is_json && !headers.contains_key(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            *request.body_mut() = Some(body.clone().into());
        }
        Ok(request)
    }

    /// The request sending `body` as JSON (a batch of records).
    pub fn build_json(&self, body: &Value) -> reqwest::Request {
        let mut request = self.start(None, &[]);
        let headers = request.headers_mut();
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        *request.body_mut() = Some(
            serde_json::to_vec(body)
                .expect("a JSON value serializes")
                .into(),
        );
        request
    }

    /// The method, the URL (`next`, or the template's with its query and `query`) and
    /// the template's headers.
    fn start(&self, next: Option<&Url>, query: &[(String, String)]) -> reqwest::Request {
        let url = match next {
            Some(next) => next.clone(),
            None => {
                let mut url = self.url.clone();
                let pairs: Vec<_> = self.query.iter().chain(query).collect();
                if !pairs.is_empty() {
                    // What reqwest's `RequestBuilder::query` does: form-urlencoded pairs.
                    let mut serializer = url.query_pairs_mut();
                    for (k, v) in pairs {
                        serializer.append_pair(k, v);
                    }
                }
                url
            }
        };
        let mut request = reqwest::Request::new(self.method.clone(), url);
        let headers = request.headers_mut();
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        request
    }

    /// The URL the template asks for (before pagination), for messages.
    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn method(&self) -> &reqwest::Method {
        &self.method
    }
}

/// A header; the error names it but never shows its value.
fn header(name: &str, value: &str, sensitive: bool) -> Result<(HeaderName, HeaderValue), Failure> {
    let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        configuration(format!(
            "building the request: {name:?} is not a header name"
        ))
    })?;
    let mut header_value = HeaderValue::from_str(value).map_err(|_| {
        configuration(format!(
            "building the request: the value of header {name} is not a valid header value"
        ))
    })?;
    header_value.set_sensitive(sensitive);
    Ok((header_name, header_value))
}
