//! The web console, served by `cde server` under `/console`: sign in with the API token
//! (or as a user of `cde user add`),
//! the connector catalog, a connector's form (checked, saved as a connection, run), the
//! connections with what discovery found, runs (live logs, output), and the pipelines
//! with their runs and next scheduled times.
//!
//! Pages are rendered on the server ([`views`]); the only script follows a run's log.
//! Every state-changing request is a form post that carries its session's CSRF token;
//! the session cookie is `HttpOnly` and `SameSite=Strict`.

mod form;
mod views;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::Markup;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::catalog::{categories, CatalogFilter};
use crate::error::{Error, ErrorCode};
use crate::model::{FieldType, OutputPage, RunFilter, RunRequest, RunStatus, SaveConnection};
use crate::session::{self, Session, Sessions};
use crate::Cde;
use views::PipelineRow;

/// What the console's handlers share.
pub struct Console {
    pub cde: Arc<Cde>,
    pub token: Arc<str>,
    pub sessions: Arc<Sessions>,
}

/// Rows per page of a table of records (a run's output or feedback, a dataset version).
const PAGE_ROWS: usize = 100;
/// Runs shown of a pipeline.
const PIPELINE_RUNS: i64 = 20;
/// Runs shown on the runs page.
const RUNS: i64 = 100;

/// What `cde server` serves: the management API and the console beside it, sharing the
/// console's sessions (which may read the API).
pub fn app(cde: Arc<Cde>, token: String) -> Router {
    let token: Arc<str> = token.into();
    let sessions = Arc::new(Sessions::default());
    let console = Arc::new(Console {
        cde: cde.clone(),
        token: token.clone(),
        sessions: sessions.clone(),
    });
    crate::api::router_with(cde, token, sessions).merge(router(console))
}

fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route(
            "/console",
            get(|| async { Redirect::to("/console/connectors") }),
        )
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/connectors", get(catalog))
        .route("/console/connectors/{code}", get(connector))
        .route("/console/connectors/{code}/runs", post(start_run))
        .route(
            "/console/connectors/{code}/connections",
            post(configure_new),
        )
        .route("/console/connections", get(connections))
        .route(
            "/console/connections/{name}",
            get(connection).post(configure_saved),
        )
        .route("/console/connections/{name}/discover", post(discover))
        .route("/console/runs", get(runs))
        .route("/console/runs/{id}", get(run))
        .route("/console/runs/{id}/cancel", post(cancel_run))
        .route("/console/runs/{id}/again", post(run_again))
        .route("/console/pipelines", get(pipelines))
        .route(
            "/console/pipelines/new",
            get(new_pipeline).post(build_pipeline),
        )
        .route("/console/pipelines/{name}", get(pipeline))
        .route("/console/pipeline-runs/{id}", get(pipeline_run))
        .route("/console/pipelines/{name}/runs", post(run_pipeline))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .with_state(console)
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/console.css"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/console.js"),
    )
}

/// Why a console request gets no page of its own.
enum Refused {
    /// Not signed in: to the sign-in page.
    SignIn,
    /// A post without its session's CSRF token.
    Forged,
    /// An error of cde's, shown on an error page with its status.
    Failed(Option<Session>, Box<Error>),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::SignIn => Redirect::to("/console/sign-in").into_response(),
            Refused::Forged => (
                StatusCode::FORBIDDEN,
                views::error_page(None, "This form is out of date or not from this console: reload the page and try again."),
            )
                .into_response(),
            Refused::Failed(session, error) => {
                let status = crate::api::error::status(error.code());
                let message = match error.code() {
                    ErrorCode::Internal | ErrorCode::Unknown => {
                        tracing::error!("console: {error}");
                        "cde failed to answer this; its log says why.".to_owned()
                    }
                    _ => error.to_string(),
                };
                (status, views::error_page(session.as_ref(), &message)).into_response()
            }
        }
    }
}

type Page = Result<Response, Refused>;

fn page(markup: Markup) -> Page {
    Ok(markup.into_response())
}

impl Console {
    fn session(&self, headers: &HeaderMap) -> Result<Session, Refused> {
        self.sessions.of(headers).ok_or(Refused::SignIn)
    }

    /// The session of a form post, whose `csrf` field must be the session's.
    fn posted(&self, headers: &HeaderMap, csrf: Option<&str>) -> Result<Session, Refused> {
        let session = self.session(headers)?;
        match csrf.is_some_and(|given| session.csrf_matches(given)) {
            true => Ok(session),
            false => Err(Refused::Forged),
        }
    }
}

/// Turns cde's errors into an error page for `session`.
fn failed(session: &Session) -> impl Fn(Error) -> Refused + '_ {
    move |error| Refused::Failed(Some(session.clone()), Box::new(error))
}

async fn sign_in_page() -> Markup {
    views::sign_in(None, None)
}

#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    user: String,
    token: String,
}

/// Signs in the API token's holder (no user given) or a user of `cde user add`.
async fn sign_in(State(console): State<Arc<Console>>, Form(form): Form<SignIn>) -> Page {
    let user = form.user.trim();
    let valid = match user {
        "" => {
            let given = form.token.trim();
            !console.token.is_empty()
                && bool::from(given.as_bytes().ct_eq(console.token.as_bytes()))
        }
        user => console
            .cde
            .verify_user(user, &form.token)
            .await
            .map_err(|e| Refused::Failed(None, Box::new(e)))?,
    };
    if !valid {
        let error = match user {
            "" => "That is not this server's API token.",
            _ => "No such user, or not their password.",
        };
        let again = views::sign_in(Some(user).filter(|u| !u.is_empty()), Some(error));
        return Ok((StatusCode::UNAUTHORIZED, again).into_response());
    }
    let session = console
        .sessions
        .start(Some(user.to_owned()).filter(|u| !u.is_empty()));
    let secure = console.cde.config.public_url().starts_with("https://");
    Ok((
        [(header::SET_COOKIE, session::set_cookie(&session, secure))],
        Redirect::to("/console/connectors"),
    )
        .into_response())
}

#[derive(Deserialize)]
struct Csrf {
    csrf: Option<String>,
}

async fn sign_out(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<Csrf>,
) -> Page {
    let session = console.posted(&headers, form.csrf.as_deref())?;
    console.sessions.end(&session);
    Ok((
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to("/console/sign-in"),
    )
        .into_response())
}

async fn catalog(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(filter): Query<CatalogFilter>,
) -> Page {
    let session = console.session(&headers)?;
    let all = console
        .cde
        .store
        .connectors()
        .await
        .map_err(failed(&session))?;
    let categories = categories(all.iter().map(|c| &c.manifest));
    let shown: Vec<_> = all
        .into_iter()
        .filter(|c| filter.matches(&c.manifest))
        .collect();
    page(views::catalog(&session, &shown, &categories, &filter))
}

async fn connector(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(code): Path<String>,
    Query(feed): Query<FeedOf>,
) -> Page {
    let session = console.session(&headers)?;
    let connector = console
        .cde
        .store
        .connector(&code)
        .await
        .map_err(failed(&session))?;
    let values = Default::default();
    let stage = console
        .stage_columns(feed.pipeline.as_deref(), None)
        .await
        .map_err(failed(&session))?;
    let how = new_connection(&code, None, stage);
    page(views::connector(
        &session,
        &connector,
        &form::Filled::new(&values),
        &how,
    ))
}

fn new_connection<'a>(
    code: &str,
    name: Option<&'a str>,
    stage: views::StageColumns,
) -> views::Configure<'a> {
    views::Configure {
        action: format!("/console/connectors/{code}/connections"),
        name,
        saved: false,
        passed: false,
        offer_save_anyway: false,
        page: format!("/console/connectors/{code}"),
        stage,
    }
}

fn saved_connection(name: &str, stage: views::StageColumns) -> views::Configure<'_> {
    views::Configure {
        action: format!("/console/connections/{name}"),
        name: Some(name),
        saved: true,
        passed: false,
        offer_save_anyway: false,
        page: format!("/console/connections/{name}"),
        stage,
    }
}

/// The pipeline whose feed fills stage columns.
#[derive(Deserialize)]
struct FeedOf {
    #[serde(default)]
    pipeline: Option<String>,
}

impl Console {
    /// The columns of the current feed (latest dataset version) of `pipeline`, or else of
    /// the first pipeline with a step that names `connection`.
    async fn stage_columns(
        &self,
        pipeline: Option<&str>,
        connection: Option<&str>,
    ) -> crate::Result<views::StageColumns> {
        let pipelines = self.cde.store.pipelines().await?;
        let names = |step: &crate::model::Step| {
            connection.is_some() && step.connection.as_deref() == connection
        };
        let chosen = match pipeline.filter(|p| !p.is_empty()) {
            Some(name) => Some(name.to_owned()),
            None => pipelines
                .iter()
                .find(|p| p.services.iter().chain(&p.exports).any(names))
                .map(|p| p.name.clone()),
        };
        let columns = match &chosen {
            Some(name) => self
                .cde
                .store
                .latest_dataset(&crate::dataset::pipeline_dataset(name))
                .await?
                .map(|dataset| dataset.columns)
                .unwrap_or_default(),
            None => vec![],
        };
        Ok(views::StageColumns {
            pipeline: chosen,
            columns,
            pipelines: pipelines.into_iter().map(|p| p.name).collect(),
        })
    }
}

/// A field of a posted form.
fn posted_field<'p>(posted: &'p [(String, String)], name: &str) -> Option<&'p str> {
    posted
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// What a configuration form's check or save came to: a page again, or a saved connection.
enum Configured {
    Again {
        values: std::collections::BTreeMap<String, String>,
        error: Option<(String, String)>,
        passed: bool,
        offer_save_anyway: bool,
    },
    Saved(String),
}

/// Checks or saves (`action`: `check`, `save`, `save_anyway`) the values posted for a
/// connection `name` of connector `code`.
async fn check_or_save(
    console: &Console,
    session: &Session,
    code: &str,
    name: &str,
    posted: &[(String, String)],
) -> Result<Configured, Refused> {
    let manifest = console
        .cde
        .store
        .connector(code)
        .await
        .map_err(failed(session))?
        .manifest;
    let values = form::values(&manifest.options, posted);
    let again = |error: Option<(String, String)>, passed: bool, offer: bool| Configured::Again {
        values: values.clone(),
        error,
        passed,
        offer_save_anyway: offer,
    };
    let action = posted_field(posted, "action").unwrap_or("check");
    if action == "check" {
        let check = console
            .cde
            .check_connection(code, &values)
            .await
            .map_err(failed(session))?;
        let error = (!check.ok).then(|| {
            (
                check.option.unwrap_or_default(),
                check.reason.unwrap_or_default(),
            )
        });
        return Ok(again(error, check.ok, false));
    }
    if name.trim().is_empty() {
        let error = (
            "name".to_owned(),
            "Give the connection a name to save it.".to_owned(),
        );
        return Ok(again(Some(error), false, false));
    }
    let request = SaveConnection {
        connector: code.to_owned(),
        values: values.clone(),
        save_anyway: action == "save_anyway",
    };
    match console.cde.save_connection(name.trim(), request).await {
        Ok(saved) => Ok(Configured::Saved(saved.name)),
        Err(Error::InvalidOption { option, message }) => {
            Ok(again(Some((option, message)), false, true))
        }
        Err(Error::InvalidConfig(message)) => {
            let field = if message.starts_with("connection name") {
                "name"
            } else {
                ""
            };
            Ok(again(
                Some((field.to_owned(), message)),
                false,
                field.is_empty(),
            ))
        }
        Err(other) => Err(failed(session)(other)),
    }
}

async fn configure_new(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(code): Path<String>,
    Form(posted): Form<Vec<(String, String)>>,
) -> Page {
    let session = console.posted(&headers, posted_field(&posted, "csrf"))?;
    let name = posted_field(&posted, "name").unwrap_or_default();
    match check_or_save(&console, &session, &code, name, &posted).await? {
        Configured::Saved(name) => {
            Ok(Redirect::to(&format!("/console/connections/{name}")).into_response())
        }
        Configured::Again {
            values,
            error,
            passed,
            offer_save_anyway,
        } => {
            let connector = console
                .cde
                .store
                .connector(&code)
                .await
                .map_err(failed(&session))?;
            let filled = form::Filled {
                values: &values,
                error: error.as_ref().map(|(f, m)| (f.as_str(), m.as_str())),
            };
            let stage = console
                .stage_columns(posted_field(&posted, "pipeline"), None)
                .await
                .map_err(failed(&session))?;
            let how = views::Configure {
                passed,
                offer_save_anyway,
                ..new_connection(&code, Some(name), stage)
            };
            let status = if error.is_some() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            Ok((
                status,
                views::connector(&session, &connector, &filled, &how),
            )
                .into_response())
        }
    }
}

async fn connections(State(console): State<Arc<Console>>, headers: HeaderMap) -> Page {
    let session = console.session(&headers)?;
    let all = console.cde.connections().await.map_err(failed(&session))?;
    page(views::connections(&session, &all))
}

async fn connection(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(feed): Query<FeedOf>,
) -> Page {
    let session = console.session(&headers)?;
    let connection = console
        .cde
        .connection(&name)
        .await
        .map_err(failed(&session))?;
    let manifest = console
        .cde
        .store
        .connector(&connection.connector)
        .await
        .map_err(failed(&session))?
        .manifest;
    let filled = form::Filled::new(&connection.values);
    let stage = console
        .stage_columns(feed.pipeline.as_deref(), Some(&name))
        .await
        .map_err(failed(&session))?;
    page(views::connection(
        &session,
        &connection,
        &manifest,
        &filled,
        &saved_connection(&name, stage),
    ))
}

async fn configure_saved(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(posted): Form<Vec<(String, String)>>,
) -> Page {
    let session = console.posted(&headers, posted_field(&posted, "csrf"))?;
    let connection = console
        .cde
        .connection(&name)
        .await
        .map_err(failed(&session))?;
    match check_or_save(&console, &session, &connection.connector, &name, &posted).await? {
        Configured::Saved(name) => {
            Ok(Redirect::to(&format!("/console/connections/{name}")).into_response())
        }
        Configured::Again {
            values,
            error,
            passed,
            offer_save_anyway,
        } => {
            let manifest = console
                .cde
                .store
                .connector(&connection.connector)
                .await
                .map_err(failed(&session))?
                .manifest;
            let filled = form::Filled {
                values: &values,
                error: error.as_ref().map(|(f, m)| (f.as_str(), m.as_str())),
            };
            let stage = console
                .stage_columns(posted_field(&posted, "pipeline"), Some(&name))
                .await
                .map_err(failed(&session))?;
            let how = views::Configure {
                passed,
                offer_save_anyway,
                ..saved_connection(&name, stage)
            };
            let status = if error.is_some() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            Ok((
                status,
                views::connection(&session, &connection, &manifest, &filled, &how),
            )
                .into_response())
        }
    }
}

async fn discover(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<Csrf>,
) -> Page {
    let session = console.posted(&headers, form.csrf.as_deref())?;
    console
        .cde
        .discover(&name)
        .await
        .map_err(failed(&session))?;
    Ok(Redirect::to(&format!("/console/connections/{name}")).into_response())
}

async fn start_run(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(code): Path<String>,
    Form(posted): Form<Vec<(String, String)>>,
) -> Page {
    let csrf = posted
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    let session = console.posted(&headers, csrf)?;
    let connector = console
        .cde
        .store
        .connector(&code)
        .await
        .map_err(failed(&session))?;
    let values = form::values(&connector.manifest.options, &posted);
    let request = RunRequest {
        connector: code.clone(),
        options: values.clone(),
        ..Default::default()
    };
    match console.cde.submit(request).await {
        Ok(run) => Ok(Redirect::to(&format!("/console/runs/{}", run.id)).into_response()),
        Err(error) if error.code() == ErrorCode::InvalidConfig => {
            let (field, message) = match &error {
                Error::InvalidOption { option, message } => (option.as_str(), message.clone()),
                other => ("", other.to_string()),
            };
            let filled = form::Filled {
                values: &values,
                error: Some((field, &message)),
            };
            let stage = console
                .stage_columns(posted_field(&posted, "pipeline"), None)
                .await
                .map_err(failed(&session))?;
            let how = new_connection(&code, None, stage);
            Ok((
                StatusCode::BAD_REQUEST,
                views::connector(&session, &connector, &filled, &how),
            )
                .into_response())
        }
        Err(error) => Err(failed(&session)(error)),
    }
}

#[derive(Deserialize)]
struct RunsQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    connector: Option<String>,
}

async fn runs(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(query): Query<RunsQuery>,
) -> Page {
    let session = console.session(&headers)?;
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(status) => Some(status.parse::<RunStatus>().map_err(|_| {
            failed(&session)(Error::InvalidConfig(format!(
                "status: no run is {status:?}"
            )))
        })?),
    };
    let connector = query.connector.filter(|c| !c.trim().is_empty());
    let filter = RunFilter {
        status,
        connector: connector.clone(),
        limit: Some(RUNS),
    };
    let runs = console
        .cde
        .store
        .runs(&filter)
        .await
        .map_err(failed(&session))?;
    page(views::runs(&session, &runs, status, connector.as_deref()))
}

/// Where the pages of a run's tables start.
#[derive(Deserialize)]
struct Pages {
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    feedback_offset: usize,
}

async fn run(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(pages): Query<Pages>,
) -> Page {
    let session = console.session(&headers)?;
    let run = console.cde.store.run(&id).await.map_err(failed(&session))?;
    let (output, feedback) = match run.status.is_finished() {
        true => {
            let page = |feedback, offset| console.cde.output_page(&id, feedback, offset, PAGE_ROWS);
            (
                page(false, pages.offset).await.map_err(failed(&session))?,
                page(true, pages.feedback_offset)
                    .await
                    .map_err(failed(&session))?,
            )
        }
        false => Default::default(),
    };
    page(views::run(&session, &run, &output, &feedback))
}

/// Starts a run of the same connector with the same options: only when it has no
/// password option, whose value a run forgets when it ends.
async fn run_again(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Csrf>,
) -> Page {
    let session = console.posted(&headers, form.csrf.as_deref())?;
    let run = console.cde.store.run(&id).await.map_err(failed(&session))?;
    let manifest = console
        .cde
        .store
        .connector(&run.connector_code)
        .await
        .map_err(failed(&session))?
        .manifest;
    if manifest
        .options
        .iter()
        .any(|o| o.field_type == FieldType::Password)
    {
        return Err(failed(&session)(Error::InvalidConfig(format!(
            "run {id} cannot be run again: {} takes a password, which a run forgets when it ends; run it from its connection",
            manifest.code
        ))));
    }
    let again = RunRequest {
        connector: run.connector_code,
        options: run.options,
        ..Default::default()
    };
    let started = console.cde.submit(again).await.map_err(failed(&session))?;
    Ok(Redirect::to(&format!("/console/runs/{}", started.id)).into_response())
}

async fn cancel_run(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Csrf>,
) -> Page {
    let session = console.posted(&headers, form.csrf.as_deref())?;
    console.cde.cancel(&id).await.map_err(failed(&session))?;
    Ok(Redirect::to(&format!("/console/runs/{id}")).into_response())
}

impl Console {
    async fn pipeline_row(&self, pipeline: crate::model::Pipeline) -> crate::Result<PipelineRow> {
        let last = self
            .cde
            .store
            .pipeline_runs(&pipeline.name, 1)
            .await?
            .into_iter()
            .next();
        let next = pipeline
            .schedule
            .as_deref()
            .and_then(|s| crate::pipeline::parse_schedule(s).ok())
            .map(|schedule| schedule.upcoming(chrono::Utc).take(3).collect())
            .unwrap_or_default();
        Ok(PipelineRow {
            pipeline,
            last,
            next,
        })
    }
}

async fn pipelines(State(console): State<Arc<Console>>, headers: HeaderMap) -> Page {
    let session = console.session(&headers)?;
    let mut rows = Vec::new();
    for pipeline in console
        .cde
        .store
        .pipelines()
        .await
        .map_err(failed(&session))?
    {
        rows.push(
            console
                .pipeline_row(pipeline)
                .await
                .map_err(failed(&session))?,
        );
    }
    page(views::pipelines(&session, &rows))
}

async fn pipeline(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Page {
    let session = console.session(&headers)?;
    let definition = console
        .cde
        .store
        .pipeline(&name)
        .await
        .map_err(failed(&session))?;
    let row = console
        .pipeline_row(definition)
        .await
        .map_err(failed(&session))?;
    let runs = console
        .cde
        .store
        .pipeline_runs(&name, PIPELINE_RUNS)
        .await
        .map_err(failed(&session))?;
    page(views::pipeline(&session, &row, &runs))
}

async fn run_pipeline(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<Csrf>,
) -> Page {
    let session = console.posted(&headers, form.csrf.as_deref())?;
    console
        .cde
        .start_pipeline_run(&name, "console")
        .await
        .map_err(failed(&session))?;
    Ok(Redirect::to(&format!("/console/pipelines/{name}")).into_response())
}

/// Every connection with the role of its connector.
async fn connections_with_roles(
    console: &Console,
) -> crate::Result<Vec<(crate::model::Connection, crate::model::Role)>> {
    let roles: std::collections::HashMap<String, crate::model::Role> = console
        .cde
        .store
        .connectors()
        .await?
        .into_iter()
        .map(|c| (c.manifest.code, c.manifest.kind.role()))
        .collect();
    let connections = console.cde.connections().await?;
    Ok(connections
        .into_iter()
        .filter_map(|c| {
            let role = *roles.get(&c.connector)?;
            Some((c, role))
        })
        .collect())
}

fn upcoming(schedule: &str) -> Result<Vec<chrono::DateTime<chrono::Utc>>, String> {
    match schedule.trim() {
        "" => Ok(vec![]),
        text => crate::pipeline::parse_schedule(text)
            .map(|schedule| schedule.upcoming(chrono::Utc).take(3).collect()),
    }
}

async fn new_pipeline(State(console): State<Arc<Console>>, headers: HeaderMap) -> Page {
    let session = console.session(&headers)?;
    let connections = connections_with_roles(&console)
        .await
        .map_err(failed(&session))?;
    let draft = views::Draft::default();
    page(views::build_pipeline(&session, &connections, &draft))
}

/// The builder's fields as posted.
fn draft_of(posted: &[(String, String)]) -> views::Draft {
    let one = |name: &str| {
        posted_field(posted, name)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let all = |name: &str| -> Vec<String> {
        posted
            .iter()
            .filter(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.clone())
            .collect()
    };
    let mut columns = Vec::new();
    for i in 0.. {
        let Some(column) = posted_field(posted, &format!("column.{i}")) else {
            break;
        };
        let keep = posted_field(posted, &format!("keep.{i}")) == Some("1");
        let rename = posted_field(posted, &format!("as.{i}"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        columns.push((column.to_owned(), keep, rename));
    }
    let mappings = posted
        .iter()
        .filter_map(|(key, value)| Some((key.strip_prefix("map.")?.to_owned(), value.clone())))
        .collect();
    let schedule = one("schedule");
    views::Draft {
        mappings,
        next: upcoming(&schedule),
        name: one("name"),
        schedule,
        source: one("source"),
        more_sources: all("more_sources"),
        services: all("services"),
        exports: all("exports"),
        columns,
        error: None,
    }
}

/// The pipeline a draft describes: steps naming connections; the main source's columns
/// mapped when some are dropped or renamed.
fn pipeline_of(draft: &views::Draft) -> Result<crate::model::Pipeline, String> {
    if draft.source.is_empty() {
        return Err("Choose the main source.".into());
    }
    let mut main = serde_json::json!({"connection": draft.source});
    if draft
        .columns
        .iter()
        .any(|(_, keep, rename)| !keep || !rename.is_empty())
    {
        let kept: Vec<_> = draft
            .columns
            .iter()
            .filter(|(_, keep, _)| *keep)
            .map(|(column, _, rename)| match rename.is_empty() {
                true => serde_json::json!({"column": column}),
                false => serde_json::json!({"column": column, "as": rename}),
            })
            .collect();
        main["columns"] = serde_json::Value::Array(kept);
    }
    let steps = |group: &str, names: &[String]| -> Result<Vec<serde_json::Value>, String> {
        let mut steps = Vec::new();
        for name in names {
            let mut step = serde_json::json!({"connection": name});
            let text = draft.mappings.get(&format!("{group}.{name}"));
            let columns = column_lines(text.map(String::as_str).unwrap_or_default())
                .map_err(|e| format!("The columns {name} gets: {e}"))?;
            if !columns.is_empty() {
                step["columns"] = serde_json::Value::Array(columns);
            }
            steps.push(step);
        }
        Ok(steps)
    };
    let mut sources = vec![main];
    sources.extend(steps("more_sources", &draft.more_sources)?);
    let mut definition = serde_json::json!({
        "name": draft.name,
        "sources": sources,
        "services": steps("services", &draft.services)?,
        "exports": steps("exports", &draft.exports)?,
    });
    if !draft.schedule.is_empty() {
        definition["schedule"] = serde_json::Value::String(draft.schedule.clone());
    }
    crate::model::Pipeline::parse(&definition.to_string(), true)
}

/// A step's columns as written in the builder: one a line, `column` or `column as name`.
fn column_lines(text: &str) -> Result<Vec<serde_json::Value>, String> {
    let mut columns = Vec::new();
    for (n, line) in text.lines().map(str::trim).enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let column = match words.as_slice() {
            [] => continue,
            [column] => serde_json::json!({"column": column}),
            [column, "as", name] => serde_json::json!({"column": column, "as": name}),
            _ => {
                return Err(format!(
                    "line {}: {line:?} is not `column` or `column as name`",
                    n + 1
                ))
            }
        };
        columns.push(column);
    }
    Ok(columns)
}

async fn build_pipeline(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(posted): Form<Vec<(String, String)>>,
) -> Page {
    let session = console.posted(&headers, posted_field(&posted, "csrf"))?;
    let connections = connections_with_roles(&console)
        .await
        .map_err(failed(&session))?;
    let mut draft = draft_of(&posted);
    match posted_field(&posted, "action").unwrap_or("preview") {
        "columns" => {
            let discovered = connections
                .iter()
                .find(|(c, _)| c.name == draft.source)
                .and_then(|(c, _)| c.discovery.as_ref());
            match discovered {
                Some(discovery) => {
                    draft.columns = discovery
                        .columns
                        .iter()
                        .map(|c| (c.clone(), true, String::new()))
                        .collect()
                }
                None => {
                    draft.error = Some(
                        "The main source has not been discovered: discover it on its connection's page first.".into(),
                    )
                }
            }
        }
        "save" => {
            let saved = match pipeline_of(&draft) {
                Ok(pipeline) => console
                    .cde
                    .save_pipeline(&pipeline)
                    .await
                    .map_err(|e| e.to_string()),
                Err(message) => Err(message),
            };
            match saved {
                Ok(pipeline) => {
                    return Ok(
                        Redirect::to(&format!("/console/pipelines/{}", pipeline.name))
                            .into_response(),
                    )
                }
                Err(message) => draft.error = Some(message),
            }
        }
        _ => {}
    }
    let status = match draft.error.is_some() || draft.next.is_err() {
        true => StatusCode::BAD_REQUEST,
        false => StatusCode::OK,
    };
    Ok((
        status,
        views::build_pipeline(&session, &connections, &draft),
    )
        .into_response())
}

async fn pipeline_run(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(pages): Query<Pages>,
) -> Page {
    let session = console.session(&headers)?;
    let run = console
        .cde
        .store
        .pipeline_run(&id)
        .await
        .map_err(failed(&session))?;
    let dataset = match run.dataset_version {
        Some(version) => {
            let name = crate::dataset::pipeline_dataset(&run.pipeline);
            console
                .cde
                .dataset_page(&name, version, pages.offset, PAGE_ROWS)
                .await
                .map_err(failed(&session))?
        }
        None => OutputPage::default(),
    };
    let mut deltas = Vec::new();
    for step in &run.steps {
        let delta = match &step.run_id {
            Some(id) => {
                console
                    .cde
                    .store
                    .run(id)
                    .await
                    .map_err(failed(&session))?
                    .delta
            }
            None => None,
        };
        deltas.push(delta);
    }
    page(views::pipeline_run(&session, &run, &deltas, &dataset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn posted(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_draft_becomes_a_pipeline_of_connections_with_its_mappings() {
        let draft = draft_of(&posted(&[
            ("name", "shop-feed"),
            ("source", "shop"),
            ("column.0", "id"),
            ("keep.0", "1"),
            ("column.1", "title"),
            ("keep.1", "1"),
            ("as.1", "name"),
            ("column.2", "price"),
            ("exports", "ads"),
            ("map.exports.ads", "id\nname as title\n\n"),
            ("schedule", "0 3 * * *"),
        ]));
        assert_eq!(draft.next.as_ref().unwrap().len(), 3);
        let pipeline = serde_json::to_value(pipeline_of(&draft).unwrap()).unwrap();
        assert_eq!(
            pipeline["sources"],
            json!([{"connection": "shop", "options": {}, "limits": {},
                    "columns": [{"column": "id"}, {"column": "title", "as": "name"}]}])
        );
        assert_eq!(
            pipeline["exports"][0]["columns"],
            json!([{"column": "id"}, {"column": "name", "as": "title"}])
        );
        assert_eq!(pipeline["schedule"], "0 3 * * *");
        // Nothing dropped or renamed: no mapping.
        let whole = draft_of(&posted(&[
            ("name", "p"),
            ("source", "s"),
            ("column.0", "id"),
            ("keep.0", "1"),
        ]));
        let pipeline = serde_json::to_value(pipeline_of(&whole).unwrap()).unwrap();
        assert!(
            pipeline["sources"][0].get("columns").is_none(),
            "{pipeline}"
        );
    }

    #[test]
    fn a_draft_says_what_is_wrong_with_it() {
        let no_source = draft_of(&posted(&[("name", "p")]));
        assert_eq!(
            pipeline_of(&no_source).unwrap_err(),
            "Choose the main source."
        );
        let bad = draft_of(&posted(&[
            ("name", "p"),
            ("source", "s"),
            ("services", "clean"),
            ("map.services.clean", "title as"),
        ]));
        let error = pipeline_of(&bad).unwrap_err();
        assert!(error.contains("The columns clean gets: line 1"), "{error}");
        let schedule = draft_of(&posted(&[("schedule", "every day")]));
        assert!(schedule.next.is_err());
    }
}
