//! Which network a run's container joins.

use serde::{Deserialize, Serialize};

/// Which network a run's container joins (`network` in a manifest or run request).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum Network {
    /// cde's own bridge, on which runs cannot reach each other (the default).
    #[default]
    Isolated,
    /// No network at all; the Container API still answers on the container's loopback.
    None,
    /// A network the operator created, by name.
    Named(String),
}

impl Network {
    pub fn is_default(&self) -> bool {
        *self == Network::Isolated
    }
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "isolated" => Ok(Network::Isolated),
            "none" => Ok(Network::None),
            "host" => Err(
                "\"host\" would give the connector the host's own network stack; use isolated, none or a named network".into(),
            ),
            name if is_network_name(name) => Ok(Network::Named(name.to_owned())),
            other => Err(format!(
                "{other:?} is not isolated, none or the name of a network (letters, digits, '_', '.' and '-')"
            )),
        }
    }
}

/// Parses in a visitor, so that YAML errors name the field as JSON errors do.
impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Network;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("isolated, none or the name of a network")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Network, E> {
                value.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl From<Network> for String {
    fn from(network: Network) -> String {
        network.to_string()
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Network::Isolated => "isolated",
            Network::None => "none",
            Network::Named(name) => name,
        })
    }
}

impl utoipa::PartialSchema for Network {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "`isolated` (default): cde's own bridge network, on which runs cannot reach \
                 each other; `none`: no network (the Container API still works); any other \
                 value: the name of an existing network of the operator's. `host` is refused.",
            ))
            .pattern(Some("^[A-Za-z0-9][A-Za-z0-9_.-]*$"))
            .examples(["isolated", "none", "my-internal-net"])
            .into()
    }
}

impl utoipa::ToSchema for Network {}

/// Docker's rule for network names.
fn is_network_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}
