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
    #[serde(default = "body_itself")]
    pub records_locator: String,
    pub auth: ListenerAuth,
    /// Where a delivery says its id; a delivery whose id was seen before is answered 2xx
    /// and kept once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
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
