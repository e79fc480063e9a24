//! The web console, served by `cde server` under `/console`: sign in with the API token,
//! the connector catalog, a connector's form and its runs (live logs, output), and the
//! pipelines with their runs and next scheduled times.
//!
//! Pages are rendered on the server ([`views`]); the only script follows a run's log.
//! Every state-changing request is a form post that carries its session's CSRF token;
//! the session cookie is `HttpOnly` and `SameSite=Strict`.

mod form;
pub mod session;
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
use crate::model::{RunFilter, RunRequest, RunStatus};
use crate::Cde;
use session::{Session, Sessions};
use views::PipelineRow;

/// What the console's handlers share.
pub struct Console {
    pub cde: Arc<Cde>,
    pub token: Arc<str>,
    pub sessions: Arc<Sessions>,
}

/// Records shown of a run's output.
const OUTPUT_ROWS: usize = 100;
/// Runs shown of a pipeline.
const PIPELINE_RUNS: i64 = 20;
/// Runs shown on the runs page.
const RUNS: i64 = 100;

pub fn router(console: Arc<Console>) -> Router {
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
        .route("/console/runs", get(runs))
        .route("/console/runs/{id}", get(run))
        .route("/console/runs/{id}/cancel", post(cancel_run))
        .route("/console/pipelines", get(pipelines))
        .route("/console/pipelines/{name}", get(pipeline))
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
    views::sign_in(None)
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

async fn sign_in(State(console): State<Arc<Console>>, Form(form): Form<SignIn>) -> Response {
    let given = form.token.trim();
    let valid =
        !console.token.is_empty() && bool::from(given.as_bytes().ct_eq(console.token.as_bytes()));
    if !valid {
        return (
            StatusCode::UNAUTHORIZED,
            views::sign_in(Some("That is not this server's API token.")),
        )
            .into_response();
    }
    let session = console.sessions.start();
    let secure = console.cde.config.public_url().starts_with("https://");
    (
        [(header::SET_COOKIE, session::set_cookie(&session, secure))],
        Redirect::to("/console/connectors"),
    )
        .into_response()
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
) -> Page {
    let session = console.session(&headers)?;
    let connector = console
        .cde
        .store
        .connector(&code)
        .await
        .map_err(failed(&session))?;
    let values = Default::default();
    page(views::connector(
        &session,
        &connector,
        &form::Filled {
            values: &values,
            error: None,
        },
    ))
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
            Ok((
                StatusCode::BAD_REQUEST,
                views::connector(&session, &connector, &filled),
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

async fn run(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Page {
    let session = console.session(&headers)?;
    let run = console.cde.store.run(&id).await.map_err(failed(&session))?;
    let output = match run.status.is_finished() {
        true => {
            console
                .cde
                .output_page(&id, false, 0, OUTPUT_ROWS)
                .await
                .map_err(failed(&session))?
                .records
        }
        false => vec![],
    };
    page(views::run(&session, &run, &output))
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
    let run = console
        .cde
        .begin_pipeline_run(&name, "console")
        .await
        .map_err(failed(&session))?;
    let (cde, pipeline) = (console.cde.clone(), name.clone());
    tokio::spawn(async move {
        if let Err(e) = cde.execute_pipeline_run(run).await {
            tracing::error!(%pipeline, "pipeline run from the console: {e}");
        }
    });
    Ok(Redirect::to(&format!("/console/pipelines/{name}")).into_response())
}
