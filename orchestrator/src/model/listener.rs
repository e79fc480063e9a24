//! Webhook listeners: how a listener's senders prove who they are, and where its events
//! are in what they send.

use serde::{Deserialize, Serialize};

/// A listener as declared (in a pipeline's `listeners`, or from a CDP hub document's
/// `preDefinedEventListeners`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// kebab-case, unique within its pipeline.
    pub name: String,
    /// A JSONPath (RFC 9535) to the events in a delivery's body: each element of an
    /// array found there is an event, anything else found is one event. `$` (the
    /// default) is the body itself; a bare name such as `events` means `$.events`.
    /// With `connector`, the document's `recordsLocator` (it is filled in on save).
    #[serde(default = "body_itself")]
    pub records_locator: String,
    /// A registered HTTP connector from a CDP hub document whose
    /// `preDefinedEventListeners` describe this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// With `connector`: the entry's `webhookPath` (`intercomEvent/post`) or `name`; may
    /// be left out when the document has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    pub auth: ListenerAuth,
    /// Where a delivery says its id; a delivery whose id was seen before is answered 2xx
    /// and kept once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// The most the listener keeps unconsumed, in MiB; past it, deliveries are answered
    /// 429. Default: `CDE_LISTENER_LOG_LIMIT_MB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_limit_mb: Option<u64>,
}

fn body_itself() -> String {
    "$".to_owned()
}

/// How a sender proves it holds the listener's secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ListenerAuth {
    /// The secret itself, in the header `header` or in the query parameter `token`.
    Token {
        #[serde(default = "token_header")]
        header: String,
    },
    /// An HMAC-SHA256 of the raw body keyed by the secret, in the header `header`, after
    /// `prefix` (GitHub: `X-Hub-Signature-256`, `sha256=`, hex; Shopify:
    /// `X-Shopify-Hmac-Sha256`, no prefix, base64).
    HmacSha256 {
        header: String,
        #[serde(default)]
        prefix: String,
        #[serde(default)]
        encoding: SignatureEncoding,
    },
}

impl ListenerAuth {
    /// `token` or `hmac_sha256`, for listings.
    pub fn kind(&self) -> &'static str {
        match self {
            ListenerAuth::Token { .. } => "token",
            ListenerAuth::HmacSha256 { .. } => "hmac_sha256",
        }
    }
}

fn token_header() -> String {
    "x-cde-token".to_owned()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    #[default]
    Hex,
    Base64,
}

/// Where an event's id is: a header of the delivery (the events of one delivery are then
/// told apart by their place in it), or a JSONPath into each event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EventId {
    Header(String),
    Path(String),
}

/// A listener as served: where to send, how to sign, and what its log holds.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListenerStatus {
    pub pipeline: String,
    pub name: String,
    /// Where senders post: the server's `CDE_PUBLIC_URL` and `/hooks/{pipeline}/{name}`.
    pub url: String,
    pub auth: ListenerAuth,
    /// The secret's last four characters after `****`; never the secret.
    pub secret: String,
    pub records_locator: String,
    /// Events appended to the log, ever.
    pub received: u64,
    /// Deliveries' events already in the log, since the server started.
    pub deduplicated: u64,
    /// Deliveries refused (bad signature or token, not JSON, nothing at the locator, too
    /// large, log full), since the server started.
    pub rejected: u64,
    /// Events given to successful pipeline runs, ever.
    pub consumed: u64,
    /// Events waiting for the next successful run.
    pub pending: u64,
    /// Age of the oldest pending event, in seconds.
    pub oldest_pending_secs: Option<f64>,
    /// Syncs of the log to disk since the server started: with `received`, how many
    /// deliveries one sync serves.
    pub syncs: u64,
    /// Bytes of pending events, and the most the log keeps.
    pub pending_bytes: u64,
    pub limit_bytes: u64,
}

/// What a pipeline run read of a listener's log: the events from `start` to `end`
/// (offsets into the log). The listener's offset is the `end` of its pipeline's last
/// successful run's read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListenerRead {
    pub listener: String,
    pub start: u64,
    pub end: u64,
    pub events: u64,
}

/// A listener's secret, as revealed or set.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListenerSecret {
    pub secret: String,
}
