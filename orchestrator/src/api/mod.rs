//! The management API: connectors, runs (with live logs and output records), health and
//! metrics, with its OpenAPI document and Swagger UI.
//!
//! Every route but `/health`, `/metrics`, `/docs`, `/openapi.json` and the webhook
//! listeners' `/hooks/...` (which check each listener's own secret) needs
//! `Authorization: Bearer <token>`. Errors are `{"error": {"code", "message"}}` (see [`error`]).

mod auth;
mod connections;
pub mod connectors;
pub mod error;
mod extract;
mod listeners;
mod logs;
mod pipelines;
mod runs;
mod system;

use crate::error::ErrorCode;
use std::sync::Arc;

use axum::http::{Method, Uri};
use axum::{middleware, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::session::Sessions;
use crate::Cde;
use error::ApiError;

pub use crate::model::OutputPage;
pub use connectors::Connector;
pub use logs::LogEntry;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "cde management API",
        description = "Register connectors, run them, follow their logs and read their output. \
                       Every operation but health and metrics needs `Authorization: Bearer <token>`.",
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "connectors", description = "Registered connector images and their manifests"),
        (name = "connections", description = "Connectors with saved values (secrets encrypted), checked before saving, discovered"),
        (name = "runs", description = "Runs of connectors, their logs and output"),
        (name = "pipelines", description = "Pipelines of sources, data services and exports, their runs and datasets"),
        (name = "listeners", description = "Webhook listeners feeding pipelines: deliveries (authenticated by each listener's secret), URLs, counts and secrets"),
        (name = "system", description = "Health and metrics, open without a token"),
    ),
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApi) {
        let scheme =
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(auth::SCHEME, scheme);
    }
}

/// The documented routes; the token guards all but the system ones.
fn routes(gate: Arc<auth::Gate>) -> OpenApiRouter<Arc<Cde>> {
    let protected = connectors::routes()
        .merge(connections::routes())
        .merge(runs::routes())
        .merge(logs::routes())
        .merge(pipelines::routes())
        .merge(listeners::routes())
        .route_layer(middleware::from_fn_with_state(gate, auth::require_token));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(protected)
        .merge(listeners::hooks())
        .merge(system::routes())
}

/// The management API's router, with Swagger UI at `/docs` and the document at
/// `/openapi.json`. (`cde server` serves it with the web console beside it.)
pub fn router(cde: Arc<Cde>, token: String) -> Router {
    router_with(cde, token.into(), Default::default())
}

/// [`router`], whose reading routes also let in the web console's `sessions`.
pub fn router_with(cde: Arc<Cde>, token: Arc<str>, sessions: Arc<Sessions>) -> Router {
    let (router, openapi) = routes(Arc::new(auth::Gate { token, sessions })).split_for_parts();
    router
        .with_state(cde)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(|method: Method, uri: Uri| async move {
            ApiError::not_found(format!("no route {method} {uri}"))
        })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("{method} is not allowed on {uri}"),
            )
        })
        // Method, path, status and latency of every request at debug level
        // (`RUST_LOG=tower_http=debug`); headers, and so tokens, are left out.
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// The OpenAPI document of the management API.
pub fn openapi() -> OpenApi {
    routes(Arc::new(auth::Gate {
        token: Arc::from(""),
        sessions: Default::default(),
    }))
    .into_openapi()
}

/// [`openapi`] as committed in `openapi/orchestrator.json`: pretty JSON and a final newline.
pub fn openapi_json() -> String {
    let mut json = openapi()
        .to_pretty_json()
        .expect("an OpenAPI document serialises");
    json.push('\n');
    json
}
