//! A connector: a parsed definition, ready to tell its inputs and to run.

use serde_json::Value;

use crate::cdp::{self, List};
use crate::definition::{Auth, ConnectorKind, Definition, Dialect, RejectionSettings};
use crate::error::SpecError;
use crate::inputs;
use crate::model::{Input, Property, PushSpec, RecordRef, Rejections, RequestTemplate, SourceSpec};
use crate::template;

#[derive(Debug, Clone)]
pub struct Connector {
    pub dialect: Dialect,
    pub kind: ConnectorKind,
    /// The definition's `auth`, else what the document asks for, else none.
    pub auth: Auth,
    pub plan: Plan,
    /// The definition's endpoint groups, checked.
    pub endpoint_groups: Vec<crate::transport::EndpointGroup>,
}

/// What a run does.
#[derive(Debug, Clone)]
pub enum Plan {
    /// A data source: pages requested, records written to `output`.
    Pull(SourceSpec),
    /// An export or export delta: input records sent, refused ones written to `feedback`.
    Push(PushSpec),
}

/// Parses and checks a definition, as the orchestrator does at registration.
pub fn parse(definition: &Definition) -> Result<Connector, SpecError> {
    check_fields(definition)?;
    let (plan, document_auth) = match definition.dialect {
        Dialect::Aep => (Plan::Pull(crate::aep::parse_value(&definition.spec)?), None),
        Dialect::Cdp => cdp_plan(definition)?,
    };
    let connector = Connector {
        dialect: definition.dialect,
        kind: definition.kind,
        auth: definition
            .auth
            .clone()
            .or(document_auth)
            .unwrap_or_default(),
        plan,
        endpoint_groups: definition.endpoint_groups.clone(),
    };
    crate::transport::TransportConfig {
        endpoint_groups: connector.endpoint_groups.clone(),
    }
    .validate()
    .map_err(|e| SpecError::new("endpoint_groups", e.to_string()))?;
    let names_at = match definition.dialect {
        Dialect::Aep => "sourceSpec.spec.properties",
        Dialect::Cdp => "parameters",
    };
    inputs::check_names(&connector.properties(), names_at)?;
    if let Auth::ApiKey { header } = &connector.auth {
        if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
            let at = if definition.auth.is_some() {
                "auth.header"
            } else {
                "components.securitySchemes"
            };
            return Err(SpecError::new(at, "not a valid HTTP header name"));
        }
    }
    Ok(connector)
}

/// Refuses fields the dialect and kind do not use, so that a mistake shows at
/// registration rather than being ignored.
fn check_fields(d: &Definition) -> Result<(), SpecError> {
    let push_fields = [
        ("delete_operation", d.delete_operation.is_some()),
        ("batch_size", d.batch_size.is_some()),
        ("id_column", d.id_column.is_some()),
        ("body", d.body.is_some()),
        ("rejections", d.rejections.is_some()),
    ];
    match (d.dialect, d.kind) {
        (Dialect::Aep, ConnectorKind::DataSource) => {
            let set = std::iter::once(("operation", d.operation.is_some()))
                .chain(push_fields)
                .find(|(_, set)| *set);
            if let Some((field, _)) = set {
                return Err(SpecError::new(field, "is for the cdp dialect only"));
            }
        }
        (Dialect::Aep, _) => {
            return Err(SpecError::new(
                "kind",
                "the aep dialect describes data sources only",
            ))
        }
        (Dialect::Cdp, ConnectorKind::DataSource) => {
            if let Some((field, _)) = push_fields.iter().find(|(_, set)| *set) {
                return Err(SpecError::new(
                    *field,
                    "is for an export or an export delta only",
                ));
            }
        }
        (Dialect::Cdp, ConnectorKind::Export) => {
            if d.delete_operation.is_some() {
                return Err(SpecError::new(
                    "delete_operation",
                    "is for an export delta only",
                ));
            }
        }
        (Dialect::Cdp, ConnectorKind::ExportDelta) => {
            if d.delete_operation.is_none() {
                return Err(SpecError::new(
                    "delete_operation",
                    "is required for an export delta: the action deleted records are sent to",
                ));
            }
        }
    }
    Ok(())
}

fn cdp_plan(definition: &Definition) -> Result<(Plan, Option<Auth>), SpecError> {
    let document = cdp::Document::new(&definition.spec)?;
    let operation = definition.operation.as_deref();
    let wants_auth = definition.auth.is_none();
    if definition.kind == ConnectorKind::DataSource {
        let event = document.select(List::Events, operation, "operation", "a data source")?;
        let auth = if wants_auth {
            document.auth(&event)?
        } else {
            None
        };
        return Ok((Plan::Pull(document.source(&event)?), auth));
    }
    let action = document.select(List::Actions, operation, "operation", "an export")?;
    let auth = if wants_auth {
        document.auth(&action)?
    } else {
        None
    };
    let (upsert, max_items) = document.action(&action, definition.body.as_ref())?;
    let delete = match &definition.delete_operation {
        Some(name) => {
            let action = document.select(
                List::Actions,
                Some(name),
                "delete_operation",
                "an export delta",
            )?;
            Some(document.action(&action, None)?.0)
        }
        None => None,
    };
    let batch_size = match definition.batch_size {
        Some(0) => return Err(SpecError::new("batch_size", "must be at least 1")),
        Some(n) => n,
        None => max_items.unwrap_or(cdp::DEFAULT_BATCH_SIZE),
    };
    let id_column = match &definition.id_column {
        Some(column) if column.trim().is_empty() => {
            return Err(SpecError::new("id_column", "must not be blank"))
        }
        Some(column) => column.clone(),
        None => "id".to_owned(),
    };
    let rejections = definition.rejections.as_ref().map(rejections).transpose()?;
    Ok((
        Plan::Push(PushSpec {
            upsert,
            delete,
            batch_size,
            id_column,
            rejections,
        }),
        auth,
    ))
}

fn rejections(settings: &RejectionSettings) -> Result<Rejections, SpecError> {
    let record = match (&settings.id, &settings.index) {
        (Some(_), Some(_)) => {
            return Err(SpecError::new(
                "rejections.index",
                "set either rejections.id or rejections.index",
            ))
        }
        (_, Some(index)) => RecordRef::Index(cdp::json_path(index, "rejections.index")?),
        (id, None) => RecordRef::Id(cdp::json_path(
            id.as_deref().unwrap_or("id"),
            "rejections.id",
        )?),
    };
    Ok(Rejections {
        path: cdp::json_path(&settings.path, "rejections.path")?,
        record,
        error: settings
            .error
            .as_deref()
            .map(|e| cdp::json_path(e, "rejections.error"))
            .transpose()?,
    })
}

impl Connector {
    /// The options a run of this connector takes.
    pub fn inputs(&self) -> Vec<Input> {
        match (&self.plan, self.dialect) {
            (Plan::Pull(spec), Dialect::Aep) => inputs::inputs(spec, &self.auth),
            (Plan::Pull(spec), _) => inputs::collect(
                &spec.properties,
                &[&spec.request],
                spec.schedule.is_some(),
                &self.auth,
            ),
            (Plan::Push(_), _) => {
                inputs::collect(&self.properties(), &self.requests(), false, &self.auth)
            }
        }
    }

    /// The placeholders of the host(s), which `base_url` makes unnecessary.
    pub fn host_placeholders(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for request in self.requests() {
            for name in template::placeholders(&request.host) {
                if !out.iter().any(|n| n == name) {
                    out.push(name.to_owned());
                }
            }
        }
        out
    }

    /// The rate limit the document states for the connector's operation (CDP's
    /// `x-cdp-operation-settings.rateLimitConfig`, e.g. `{"type": "RPS",
    /// "rateLimitParameters": {"ratePerSecond": 100, "errorCodes": [606, 607],
    /// "delayAfterRateLimitInSecond": 300}}`), as it is. For an export delta, that of
    /// the upsert action; the delete action's is [`PushSpec::delete`]'s own.
    pub fn rate_limit_config(&self) -> Option<Value> {
        match &self.plan {
            Plan::Pull(spec) => spec.rate_limit.clone(),
            Plan::Push(push) => push.upsert.rate_limit.clone(),
        }
    }

    /// The pull, for a data source.
    pub fn source(&self) -> Option<&SourceSpec> {
        match &self.plan {
            Plan::Pull(spec) => Some(spec),
            Plan::Push(_) => None,
        }
    }

    /// The push, for an export or export delta.
    pub fn push(&self) -> Option<&PushSpec> {
        match &self.plan {
            Plan::Push(push) => Some(push),
            Plan::Pull(_) => None,
        }
    }

    fn requests(&self) -> Vec<&RequestTemplate> {
        match &self.plan {
            Plan::Pull(spec) => vec![&spec.request],
            Plan::Push(push) => std::iter::once(&push.upsert)
                .chain(&push.delete)
                .map(|a| &a.request)
                .collect(),
        }
    }

    /// The document's inputs, each name once (required if any operation requires it).
    fn properties(&self) -> Vec<Property> {
        match &self.plan {
            Plan::Pull(spec) => spec.properties.clone(),
            Plan::Push(push) => {
                let mut out: Vec<Property> = push.upsert.properties.clone();
                for property in push.delete.iter().flat_map(|a| &a.properties) {
                    match out.iter_mut().find(|p| p.name == property.name) {
                        Some(existing) => existing.required |= property.required,
                        None => out.push(property.clone()),
                    }
                }
                out
            }
        }
    }
}
