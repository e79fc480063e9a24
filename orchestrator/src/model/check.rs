//! `cde connector check`: what to check it with, and what the check found.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::network::Network;
use super::run::RunRequest;

pub use http_connector::CheckReport;

/// The options (and network) to make a connector's first request with.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The network the check joins, instead of its manifest's.
    #[serde(default)]
    pub network: Option<Network>,
}

impl CheckRequest {
    /// The run of `connector` the check stands for.
    pub fn into_run_request(self, connector: &str) -> RunRequest {
        RunRequest {
            connector: connector.to_owned(),
            options: self.options,
            network: self.network,
            ..Default::default()
        }
    }
}
