//! A run: the definition and options read, then the pull loop (a data source: every page
//! requested, records and logs out through the Container API, the window's end saved in
//! the state) or the push loop ([`crate::push`]), and an exit status.

use std::collections::HashMap;

use chrono::Utc;
use serde_json::{json, Value};

use crate::check::{CheckReport, CHECK_PREFIX};
use crate::connector::{parse, Connector, Plan};
use crate::container::{self, ContainerApi};
use crate::definition::Definition;
use crate::error::{api, configuration, exit_code, kind_name, transient};
use crate::extract;
use crate::inputs::Options;
use crate::model::{
    Extraction, Object, Schedule, SourceSpec, END_TIME, SCHEDULE_QUERY, START_TIME,
};
use crate::pagination::Pager;
use crate::request::Request;
use crate::schedule::{self, Window};
use crate::template::Values;
use crate::transport::{EndpointGroup, Failure, FailureKind, Transport, TransportConfig};

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
    match run(&vars, &container, &mut options).await {
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

/// The transport of one operation's requests (`operation` names it in logs): the
/// definition's endpoint groups first, then the rate limit the document states
/// ([`Connector::rate_limit_config`]) as a group matching every request (`/`), next-page
/// URLs included. The transport's configuration lives here alone; each operation has a
/// transport of its own.
pub(crate) fn transport_for(
    connector: &Connector,
    rate_limit_config: Option<&Value>,
    operation: &str,
) -> Result<Transport, Failure> {
    let mut endpoint_groups = connector.endpoint_groups.clone();
    if let Some(config) = rate_limit_config {
        let mut group = EndpointGroup::from_cdp_rate_limit_config(vec!["/".to_owned()], config)?;
        group.name = Some(operation.to_owned());
        endpoint_groups.push(group);
    }
    if endpoint_groups.is_empty() {
        return Transport::new();
    }
    Transport::with_config(&TransportConfig { endpoint_groups })
}

/// Reads the definition and the options, then pulls or pushes.
async fn run(
    vars: &HashMap<String, String>,
    container: &ContainerApi,
    options_out: &mut Option<Options>,
) -> Result<(), Failure> {
    let connector = definition(vars)?;
    let options = Options::resolve(&connector.inputs(), &connector.host_placeholders(), vars)?;
    *options_out = Some(options.clone());
    match &connector.plan {
        Plan::Pull(spec) => pull(&connector, spec, &options, container).await,
        Plan::Push(push) => crate::push::push(&connector, push, &options, container).await,
    }
}

async fn pull(
    connector: &Connector,
    spec: &SourceSpec,
    options: &Options,
    container: &ContainerApi,
) -> Result<(), Failure> {
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
        schedule_query = window_values(schedule, &window, &mut values)?;
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

    let mut pulling = Pulling::new(connector, spec, options, &values, schedule_query)?;
    // Page n is written while page n + 1 is fetched: the API and the Container API work
    // at once. A failed write stops the fetching; a failed fetch still writes every page
    // fetched before it.
    let (pages, writer) = page_writer(container.clone(), spec);
    let fetched = async {
        // A page is fetched once there is room for it: the writer holds one page, two
        // wait for it, so at most three are held at a time (1 M records: 42 MB).
        while let Ok(slot) = pages.reserve().await {
            match pulling.next().await? {
                Some(fetched) => slot.send(fetched),
                None => break,
            }
        }
        Ok::<(), Failure>(())
    }
    .await;
    drop(pages);
    let total = writer
        .await
        .map_err(|e| transient(format!("writing the records: the writer stopped: {e}")))??;
    fetched?;

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
            &format!("done: {total} records from {} requests", pulling.requests()),
            json!({"records": total, "requests": pulling.requests()}),
        )
        .await;
    Ok(())
}

/// A task taking the records out of each page sent to it, writing them, then a log line
/// about them; ends with the number of records written, or the first failure.
fn page_writer(
    container: ContainerApi,
    spec: &SourceSpec,
) -> (
    tokio::sync::mpsc::Sender<Fetched>,
    tokio::task::JoinHandle<Result<usize, Failure>>,
) {
    let (pages, mut received) = tokio::sync::mpsc::channel::<Fetched>(2);
    let (content, explode) = (spec.content.clone(), spec.explode.clone());
    let writer = tokio::spawn(async move {
        let mut total = 0usize;
        while let Some(fetched) = received.recv().await {
            let (number, page) = (fetched.number, fetched.located.page);
            let records = fetched.records(&content, explode.as_ref());
            let count = records.len();
            container.write(records).await?;
            total += count;
            container
                .log(
                    "info",
                    &format!("page {number}: {count} records ({total} in total)"),
                    json!({"page": number, "elements": page.elements, "records": count, "total": total}),
                )
                .await;
        }
        Ok(total)
    });
    (pages, writer)
}

/// Fills the window's times (and, for `ADVANCE`, the schedule query) into `values`; the
/// query parameters the schedule adds.
fn window_values(
    schedule: &Schedule,
    window: &Window,
    values: &mut Values,
) -> Result<Vec<(String, String)>, Failure> {
    let fill = schedule::fill(schedule, window)?;
    if let Some(query) = fill.schedule_query {
        values.insert(SCHEDULE_QUERY, query);
    }
    let (start, end) = schedule::times(schedule, window)?;
    values.insert(START_TIME, start);
    values.insert(END_TIME, end);
    Ok(fill.query)
}

/// A pull under way: its requests built, sent and paged through, one page at a time.
struct Pulling<'a> {
    spec: &'a SourceSpec,
    template: Request,
    pager: Pager<'a>,
    transport: Transport,
}

/// A page pulled.
struct Fetched {
    number: u64,
    /// The request, without its query or credentials.
    request: String,
    status: u16,
    body: Value,
    /// The records in `body`, for [`Fetched::records`] to take out.
    located: extract::Located,
}

impl Fetched {
    fn records(self, spec: &Extraction, explode: Option<&Extraction>) -> Vec<Object> {
        self.located.records(self.body, spec, explode)
    }
}

impl<'a> Pulling<'a> {
    fn new(
        connector: &Connector,
        spec: &'a SourceSpec,
        options: &Options,
        values: &Values,
        schedule_query: Vec<(String, String)>,
    ) -> Result<Self, Failure> {
        let transport = transport_for(
            connector,
            connector.rate_limit_config().as_ref(),
            &format!("{} {}", spec.request.method.as_reqwest(), spec.request.path),
        )?;
        let template = Request::new(
            &spec.request,
            &connector.auth,
            options,
            values,
            schedule_query,
        )?;
        Ok(Self {
            spec,
            template,
            pager: Pager::new(&spec.pagination),
            transport,
        })
    }

    fn requests(&self) -> u64 {
        self.pager.requests()
    }

    /// The next page; `None` once the pagination ended.
    async fn next(&mut self) -> Result<Option<Fetched>, Failure> {
        let Some(page_request) = self.pager.next_request()? else {
            return Ok(None);
        };
        let number = self.pager.requests();
        if !page_request.delay.is_zero() {
            tokio::time::sleep(page_request.delay).await;
        }
        let request = self.template.build(&page_request)?;
        // Next-page URLs resolve against, and must stay on the origin of, what was asked
        // for, not wherever a redirect went.
        let url = request.url().clone();
        let what = format!("{} {}", request.method(), crate::transport::redacted(&url));
        let response = self.transport.send(request).await.map_err(|mut failure| {
            if number == 1 && failure.status == Some(404) {
                failure.kind = FailureKind::Configuration;
            }
            failure.message = format!("requesting page {number}: {}", failure.message);
            failure
        })?;
        let status = response.status().as_u16();
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
        let located = extract::locate(&body, &self.spec.content);
        self.pager.observe(&body, &headers, &url, &located.page)?;
        Ok(Some(Fetched {
            number,
            request: what,
            status,
            body,
            located,
        }))
    }
}

/// `cde connector check`: the first request of the connector the variables describe, made
/// as a first run would make it; prints the [`CheckReport`] on one line of standard output
/// after [`CHECK_PREFIX`] and returns 0, or [`crate::EX_CONFIG`] when the report could not
/// be printed. Nothing is written anywhere else.
pub async fn check_with_vars(vars: HashMap<String, String>) -> u8 {
    let report = match check(&vars).await {
        Ok(report) => report,
        Err((failure, request, options)) => CheckReport {
            ok: false,
            request,
            status: failure.status,
            records: 0,
            columns: vec![],
            failure_kind: Some(kind_name(failure.kind).to_owned()),
            failure: Some(match options {
                Some(options) => options.mask(&failure.message),
                None => failure.message,
            }),
        },
    };
    match serde_json::to_string(&report) {
        Ok(json) => {
            println!("{CHECK_PREFIX}{json}");
            0
        }
        Err(e) => {
            eprintln!("http-connector: printing the check's report: {e}");
            crate::EX_CONFIG
        }
    }
}

/// The failure, the request it was about (when known) and the options to mask it with.
type CheckFailure = (Failure, String, Option<Options>);

async fn check(vars: &HashMap<String, String>) -> Result<CheckReport, CheckFailure> {
    let unknown = |failure: Failure| (failure, String::new(), None);
    let connector = definition(vars).map_err(unknown)?;
    let options = Options::resolve(&connector.inputs(), &connector.host_placeholders(), vars)
        .map_err(unknown)?;
    let spec = match &connector.plan {
        Plan::Pull(spec) => spec,
        Plan::Push(_) => {
            return Err(unknown(configuration(
                "only a data source is checked: an export's first request would send records",
            )))
        }
    };
    let failed = |failure: Failure| {
        let request = format!(
            "{} {}{}",
            spec.request.method.as_reqwest(),
            spec.request.host,
            spec.request.path
        );
        (failure, request, Some(options.clone()))
    };
    let mut values = Values::new(options.values().clone());
    let mut schedule_query = Vec::new();
    if let Some(schedule) = &spec.schedule {
        let window = Window::new(None, options.schedule_start, Utc::now());
        schedule_query = window_values(schedule, &window, &mut values).map_err(failed)?;
    }
    let mut pulling =
        Pulling::new(&connector, spec, &options, &values, schedule_query).map_err(failed)?;
    match pulling.next().await.map_err(failed)? {
        Some(fetched) => {
            let (request, status) = (fetched.request.clone(), fetched.status);
            let records: Vec<Value> = fetched
                .records(&spec.content, spec.explode.as_ref())
                .into_iter()
                .map(Value::Object)
                .collect();
            Ok(CheckReport {
                ok: true,
                request,
                status: Some(status),
                records: records.len(),
                columns: crate::check::columns(&records),
                failure_kind: None,
                failure: None,
            })
        }
        None => Err(failed(api("the pagination asked for no request"))),
    }
}

/// The definition in the variables, parsed.
fn definition(vars: &HashMap<String, String>) -> Result<Connector, Failure> {
    let text = vars.get(DEFINITION_VAR).ok_or_else(|| {
        configuration(format!(
            "reading the definition: {DEFINITION_VAR} is not set"
        ))
    })?;
    let definition: Definition = serde_json::from_str(text)
        .map_err(|e| configuration(format!("reading the definition in {DEFINITION_VAR}: {e}")))?;
    Ok(parse(&definition)?)
}
