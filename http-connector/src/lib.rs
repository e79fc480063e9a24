//! cde's declarative HTTP connector: a data source or destination described by a spec
//! document (AEP `sourceSpec`, a CDP hub OpenAPI document) instead of code. It runs inside
//! a run's container as any connector does (`cde http-connector`), and speaks the Container
//! API for records, logs and incremental state.
//!
//! # The pull side (AEP dialect)
//! The orchestrator builds a [`Definition`] at registration, checks it with [`parse`] and
//! shows [`Connector::inputs`] as the connector's options. A run gets the definition as
//! JSON in `CDE_HTTP_CONNECTOR` and the option values in variables named like the inputs;
//! [`run_from_env`] requests every page, posts the records to `/output/output`, logs one
//! `info` line per page and saves its window in the state as
//! `{"schedule": {"window_end": "<RFC 3339>"}}` (cde commits it only with a successful run).
//!
//! # The CDP dialect, pull and push
//! A CDP hub document (OpenAPI 3 with `preDefinedEvents` and `preDefinedActions`; see
//! the `cdp` module for how it is read) describes a data source (one of its events, pulled
//! as above, one page) or an export or export delta (one of its actions; the definition's
//! `operation` picks it, see [`Definition`]). A push run reads its input through the
//! Container API (`GET /input/{type}/next_batch`), sends it in batches of
//! [`PushSpec::batch_size`] records and posts one row per refused record to
//! `/output/feedback`: `{"id": <the record's id column>, "error": <the API's text>}`. An
//! export sends `input`; an export delta sends `new` and `modified` to its upsert action,
//! `deleted` to its delete action, and leaves `unchanged` alone. A 4xx answer refuses its
//! whole batch (a row per record, then the next batch); a 2xx answer refuses the records
//! its per-record error list (`rejections`) names. [`Connector::rate_limit_config`] is
//! the operation's `x-cdp-operation-settings.rateLimitConfig`, for the transport.
//!
//! # Options
//! Each input is read from the variable of its name (`listId`, `domain`, ...); the
//! credentials (`username`, `password`, `token`, `api_key`) also from `PUP_AUTH_<NAME>`.
//! A blank value is no value. With `base_url` set, the host's placeholders need none.
//! The Container API is at `CONTAINER_API_URL` (else `http://cde-container-api`).
//!
//! # Reading of the AEP document where it is silent
//! - POINTER: a pointer that looks like a URL (absolute, or starting with `/` or `?`) is the
//!   next URL and must stay on the origin asked for; any other value is a token sent as
//!   the query parameter `pointerParamName` (ours), by default the last name of
//!   `pointerPath`, beside `limitName`.
//! - PAGE: a numeric `endPageIndex` is the last page index requested; `headers.<name>`
//!   reads the number of pages from that response header.
//! - OFFSET advances by the number of elements the page gave.
//! - `explodeEntityPath`: a record whose sub-array is missing or empty is kept once.
//! - `maximumRequest` (default 10 000) bounds every pagination type, not only PAGE.
//! - An empty answer is a page without records.
//!
//! # Exit status
//! - `0`: every page was pulled and written; for a push, every record was sent (those the
//!   API refused are in the feedback file).
//! - `78` (`EX_CONFIG`): a configuration failure: the definition or spec cannot be used, an
//!   option is missing or invalid, the API answered 401 or 403, or 404 to the first request
//!   (of an operation), or an input record has no value in the id column. Retrying cannot help.
//! - `75` (`EX_TEMPFAIL`): a transient failure: the API or the Container API could not be
//!   reached, or kept failing after the transport's retries. The run may be retried.
//! - `1`: the API's own error (its status and text are in the message), or a response the
//!   engine cannot page through (not JSON, a repeated token or page, `maximumRequest` reached).
//!
//! A failure is printed as one line on stderr and posted to `/logs/error` with
//! `context.failure_kind` (`configuration`, `transient` or `api`). Secret option values
//! never appear in logs or messages.

mod aep;
mod cdp;
mod check;
mod connector;
mod container;
mod datefmt;
mod definition;
mod engine;
mod error;
mod extract;
mod inputs;
pub mod model;
mod pagination;
mod push;
mod request;
mod schedule;
mod template;
pub mod transport;

pub use aep::ui_category as aep_ui_category;
pub use cdp::{json_path, Document as CdpDocument, EventListener};
pub use check::{CheckReport, CHECK_PREFIX};
pub use connector::{parse, Connector, Plan};
pub use definition::{
    Auth, BodySettings, ConfigPlacement, ConnectorKind, Definition, Dialect, RejectionSettings,
};
pub use engine::{
    check_with_vars, run_from_env, run_with_vars, CONTAINER_API_URL_VAR, DEFINITION_VAR,
};
pub use error::{SpecError, EX_CONFIG, EX_TEMPFAIL};
pub use model::{Input, InputKind, PushSpec, SourceSpec};
