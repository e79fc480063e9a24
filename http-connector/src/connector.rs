//! A connector: a parsed definition, ready to tell its inputs and to run.

use crate::definition::{Auth, Definition, Dialect};
use crate::error::SpecError;
use crate::inputs;
use crate::model::{Input, SourceSpec};
use crate::template;

#[derive(Debug, Clone)]
pub struct Connector {
    pub spec: SourceSpec,
    pub auth: Auth,
}

/// Parses and checks a definition, as the orchestrator does at registration.
pub fn parse(definition: &Definition) -> Result<Connector, SpecError> {
    let spec = match definition.dialect {
        Dialect::Aep => crate::aep::parse_value(&definition.spec)?,
    };
    inputs::check_names(&spec)?;
    if let Auth::ApiKey { header } = &definition.auth {
        if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
            return Err(SpecError::new(
                "auth.header",
                "not a valid HTTP header name",
            ));
        }
    }
    Ok(Connector {
        spec,
        auth: definition.auth.clone(),
    })
}

impl Connector {
    /// The options a run of this connector takes.
    pub fn inputs(&self) -> Vec<Input> {
        inputs::inputs(&self.spec, &self.auth)
    }

    /// The placeholders of the host, which `base_url` makes unnecessary.
    pub fn host_placeholders(&self) -> Vec<String> {
        template::placeholders(&self.spec.request.host)
            .map(str::to_owned)
            .collect()
    }
}
