//! The pull loop: options in, every page requested, records and logs out through the
//! Container API, the window's end saved in the state, and an exit status.

use std::collections::HashMap;

use chrono::Utc;
use reqwest::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use serde_json::{json, Value};

use crate::connector::{parse, Connector};
use crate::container::{self, ContainerApi};
use crate::definition::{Auth, Definition, API_KEY, PASSWORD, TOKEN, USERNAME};
use crate::error::{api, configuration, exit_code, kind_name};
use crate::extract;
use crate::inputs::Options;
use crate::model::{SourceSpec, END_TIME, SCHEDULE_QUERY, START_TIME};
use crate::pagination::{PageRequest, Pager};
use crate::schedule::{self, Window};
use crate::template::{Encoding, Values};
use crate::transport::{Failure, FailureKind, Transport};

/// The variable holding the connector's [`Definition`] as JSON.
pub const DEFINITION_VAR: &str = "CDE_HTTP_CONNECTOR";
/// The variable holding the Container API's base URL.
pub const CONTAINER_API_URL_VAR: &str = "CONTAINER_API_URL";

/// Runs the connector described by the process's environment; returns the exit status.
pub async fn run_from_env() -> u8 {
    // `vars()` would panic on a variable that is not Unicode; such a one is no option.
    let vars = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    run_with_vars(vars).await
}

/// [`run_from_env`] with the variables given (tests, embedding).
pub async fn run_with_vars(vars: HashMap<String, String>) -> u8 {
    let base = vars
        .get(CONTAINER_API_URL_VAR)
        .filter(|v| !v.trim().is_empty())
        .map_or(container::DEFAULT_URL, String::as_str);
    let container = match ContainerApi::new(base) {
        Ok(container) => container,
        Err(failure) => {
            eprintln!("http-connector: {}", failure.message);
            return exit_code(failure.kind);
        }
    };
    let mut options = None;
    match pull(&vars, &container, &mut options).await {
        Ok(()) => 0,
        Err(failure) => {
            let message = match &options {
                Some(options) => options.mask(&failure.message),
                None => failure.message.clone(),
            };
            // One line: the Container API records each stderr line as its own error.
            let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("http-connector: {message}");
            let mut context = json!({"failure_kind": kind_name(failure.kind)});
            if let Some(status) = failure.status {
                context["status"] = json!(status);
            }
            container.log("error", &message, context).await;
            exit_code(failure.kind)
        }
    }
}

/// The transport of the source's requests; its configuration lives here alone.
fn transport(_connector: &Connector) -> Result<Transport, Failure> {
    Transport::new()
}

async fn pull(
    vars: &HashMap<String, String>,
    container: &ContainerApi,
    options_out: &mut Option<Options>,
) -> Result<(), Failure> {
    let text = vars.get(DEFINITION_VAR).ok_or_else(|| {
        configuration(format!(
            "reading the definition: {DEFINITION_VAR} is not set"
        ))
    })?;
    let definition: Definition = serde_json::from_str(text)
        .map_err(|e| configuration(format!("reading the definition in {DEFINITION_VAR}: {e}")))?;
    let connector = parse(&definition)?;
    let options = Options::resolve(&connector.inputs(), &connector.host_placeholders(), vars)?;
    *options_out = Some(options.clone());
    let transport = transport(&connector)?;
    let spec = &connector.spec;
    container
        .log(
            "info",
            &format!(
                "pulling {} {}{}",
                spec.request.method.as_reqwest(),
                options
                    .base_url
                    .as_ref()
                    .map_or(spec.request.host.as_str(), |u| u
                        .as_str()
                        .trim_end_matches('/')),
                spec.request.path
            ),
            json!({"options": options.resolved()}),
        )
        .await;

    let mut values = Values::new(options.values().clone());
    let mut schedule_query = Vec::new();
    let mut window_and_state = None;
    if let Some(schedule) = &spec.schedule {
        let state = container.state().await?;
        let window = Window::new(
            schedule::previous_end(&state)?,
            options.schedule_start,
            Utc::now(),
        );
        let fill = schedule::fill(schedule, &window)?;
        if let Some(query) = fill.schedule_query {
            values.insert(SCHEDULE_QUERY, query);
        }
        let (start, end) = schedule::times(schedule, &window)?;
        values.insert(START_TIME, start);
        values.insert(END_TIME, end);
        schedule_query = fill.query;
        container
            .log(
                "info",
                &format!(
                    "asking for {} to {}{}",
                    window.start.to_rfc3339(),
                    window.end.to_rfc3339(),
                    if window.first { " (first run)" } else { "" }
                ),
                json!({"window_start": window.start, "window_end": window.end}),
            )
            .await;
        window_and_state = Some((window, state));
    }

    let template = Request::new(spec, &connector.auth, &options, &values, schedule_query)?;
    let mut pager = Pager::new(&spec.pagination);
    let mut total = 0usize;
    while let Some(page_request) = pager.next_request()? {
        let number = pager.requests();
        if !page_request.delay.is_zero() {
            tokio::time::sleep(page_request.delay).await;
        }
        let request = template.build(&page_request)?;
        // Next-page URLs resolve against, and must stay on the origin of, what was asked
        // for, not wherever a redirect went.
        let url = request.url().clone();
        let response = transport.send(request).await.map_err(|mut failure| {
            if number == 1 && failure.status == Some(404) {
                failure.kind = FailureKind::Configuration;
            }
            failure.message = format!("requesting page {number}: {}", failure.message);
            failure
        })?;
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| Failure {
            kind: FailureKind::Transient,
            status: None,
            message: format!("reading page {number}: {e}"),
        })?;
        // An empty answer (a 204, say) is a page without records.
        let body: Value = if bytes.trim_ascii().is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                api(format!(
                    "reading page {number}: the response is not JSON: {e}"
                ))
            })?
        };
        let page = extract::page(&body, &spec.content, spec.explode.as_ref());
        pager.observe(&body, &headers, &url, &page)?;
        container.write(&page.records).await?;
        total += page.records.len();
        container
            .log(
                "info",
                &format!(
                    "page {number}: {} records ({} in total)",
                    page.records.len(),
                    total
                ),
                json!({"page": number, "elements": page.elements, "records": page.records.len(), "total": total}),
            )
            .await;
    }

    if let Some((window, state)) = window_and_state {
        let saved = container
            .save_state(&schedule::next_state(state, &window))
            .await?;
        if !saved {
            container
                .log(
                    "warning",
                    "the Container API keeps no state (no /state): the next run asks from the same start again",
                    json!({}),
                )
                .await;
        }
    }
    container
        .log(
            "info",
            &format!("done: {total} records from {} requests", pager.requests()),
            json!({"records": total, "requests": pager.requests()}),
        )
        .await;
    Ok(())
}

/// The parts of every request that do not change from page to page, filled.
struct Request {
    method: reqwest::Method,
    url: Url,
    query: Vec<(String, String)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<(Vec<u8>, bool)>,
}

impl Request {
    fn new(
        spec: &SourceSpec,
        auth: &Auth,
        options: &Options,
        values: &Values,
        schedule_query: Vec<(String, String)>,
    ) -> Result<Self, Failure> {
        let template = &spec.request;
        let host = match &options.base_url {
            Some(base) => base.as_str().to_owned(),
            None => values.fill(&template.host, Encoding::Host, "urlParams.host")?,
        };
        let path = values.fill(&template.path, Encoding::PathSegment, "urlParams.path")?;
        let joined = format!("{}{}", host.trim_end_matches('/'), path);
        let url = Url::parse(&joined).map_err(|e| {
            configuration(format!(
                "building the request URL from urlParams.host and urlParams.path: {e}"
            ))
        })?;
        let mut query = Vec::new();
        for (k, v) in &template.query {
            query.push((
                values.fill(k, Encoding::Raw, "urlParams.queryParams")?,
                values.fill(v, Encoding::Raw, &format!("urlParams.queryParams.{k}"))?,
            ));
        }
        query.extend(schedule_query);
        let mut headers = Vec::new();
        for (k, v) in &template.headers {
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

    fn build(&self, page: &PageRequest) -> Result<reqwest::Request, Failure> {
        let url = match &page.url {
            Some(next) => next.clone(),
            None => {
                let mut url = self.url.clone();
                let pairs: Vec<_> = self.query.iter().chain(&page.query).collect();
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
