//! Declarative HTTP connectors: a manifest whose `http` member holds a spec document
//! instead of an image. At registration cde checks the document with the engine of
//! `http-connector`, lists the inputs it declares as the connector's options, and fills in
//! how it runs: cde's own executable (`cde http-connector`) in cde's empty image. A run
//! gets the definition in `input/http-connector.json`, prepared like any input.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use http_connector::CheckReport;

use crate::engine::container;
use crate::error::{Error, Result};
use crate::executable::{self, EMPTY_IMAGE, IN_CONTAINER};
use crate::model::{
    ConnectorType, ExecutionMode, FieldType, InputValues, Manifest, OptionSpec, RunRequest,
};
use crate::options::OptionValues;
use crate::Cde;

/// Where a run finds its definition, below its run directory and in its container.
pub const DEFINITION_FILE: &str = "input/http-connector.json";
const DEFINITION_IN_CONTAINER: &str = "/cde/run/input/http-connector.json";
/// The option every HTTP connector has that replaces the spec's host.
const BASE_URL: &str = "base_url";
/// The arguments of `cde` that run the engine.
pub const SUBCOMMAND: &str = "http-connector";

/// Reads a `spec` given as a path relative to the manifest's folder, so that the stored
/// manifest holds the document itself (and a server never reads an operator's paths).
pub fn resolve_spec_file(
    manifest: &mut Manifest,
    folder: &Path,
) -> std::result::Result<(), String> {
    let Some(Value::String(spec)) = manifest.http.as_mut().and_then(|http| http.get_mut("spec"))
    else {
        return Ok(());
    };
    if is_inline(spec) {
        return Ok(());
    }
    let path = folder.join(spec.as_str());
    *spec = std::fs::read_to_string(&path)
        .map_err(|e| format!("http.spec: reading {}: {e}", path.display()))?;
    Ok(())
}

/// A document given as text starts as JSON does (`{`, or a `"sourceSpec": …` fragment);
/// anything else is a file name.
fn is_inline(spec: &str) -> bool {
    matches!(spec.trim_start().chars().next(), Some('{' | '"' | '['))
}

/// The engine's definition of an HTTP connector: the manifest's `http` member plus its type.
pub fn definition(
    manifest: &Manifest,
) -> std::result::Result<Option<http_connector::Definition>, String> {
    let Some(http) = &manifest.http else {
        return Ok(None);
    };
    let kind = match manifest.kind {
        ConnectorType::DataSource => "data-source",
        ConnectorType::Export => "export",
        ConnectorType::ExportDelta => "export-delta",
        ConnectorType::DataService => {
            return Err("http: an HTTP connector is a data-source, export or export-delta".into())
        }
    };
    if let Some(Value::String(spec)) = http.get("spec") {
        if !is_inline(spec) {
            return Err(format!(
                "http.spec: {spec:?} is a file name; register the manifest from its file (cde connector register FILE), or give the document inline"
            ));
        }
    }
    let mut fields: Map<String, Value> = http.clone();
    fields.insert("kind".into(), Value::String(kind.into()));
    serde_json::from_value(Value::Object(fields))
        .map(Some)
        .map_err(|e| format!("http: {e}"))
}

/// Checks the `http` member and fills in what an HTTP connector runs as: cde's image,
/// command and arguments, and an option for every input of the spec the manifest does not
/// declare itself (a declared one keeps its label, default and description).
pub fn expand(manifest: &mut Manifest) -> std::result::Result<(), String> {
    let Some(definition) = definition(manifest)? else {
        return Ok(());
    };
    let connector = http_connector::parse(&definition).map_err(|e| format!("http.{e}"))?;
    for (field, value, ours) in [
        ("image", &mut manifest.image, EMPTY_IMAGE),
        ("command", &mut manifest.command, IN_CONTAINER),
    ] {
        if value.is_empty() {
            *value = ours.to_owned();
        } else if value != ours {
            return Err(format!(
                "{field}: an HTTP connector runs as cde's own engine; leave {field} out"
            ));
        }
    }
    let arguments = vec![
        SUBCOMMAND.to_owned(),
        "--definition".to_owned(),
        DEFINITION_IN_CONTAINER.to_owned(),
    ];
    if manifest.arguments.is_empty() {
        manifest.arguments = arguments;
    } else if manifest.arguments != arguments {
        return Err(
            "arguments: an HTTP connector runs as cde's own engine; leave arguments out".into(),
        );
    }
    manifest
        .health_check
        .get_or_insert_with(|| "--health-check".to_owned());
    manifest.execution_mode = ExecutionMode::Env;
    if manifest.reads_input() {
        manifest.input_values = InputValues::Typed;
    }
    // `base_url` replaces the host: its placeholders are required only without it, which
    // `prepare` checks before a run is recorded.
    let host = connector.host_placeholders();
    for input in connector.inputs() {
        if manifest.option(&input.name).is_some() {
            continue;
        }
        let field_type = match (input.secret, input.kind) {
            (true, _) => FieldType::Password,
            (false, http_connector::InputKind::Boolean) => FieldType::Checkbox,
            (false, _) => FieldType::Input,
        };
        let required = input.required && !host.contains(&input.name);
        manifest.options.push(OptionSpec {
            label: Some(input.name.clone()),
            name: input.name,
            field_type,
            required,
            default: None,
            description: input.description,
            placeholder: None,
            config: None,
        });
    }
    // The catalog lists an AEP source under its spec's category unless its manifest
    // gives categories.
    if manifest.categories.is_empty() && definition.dialect == http_connector::Dialect::Aep {
        manifest
            .categories
            .extend(http_connector::aep_ui_category(&definition.spec));
    }
    Ok(())
}

/// Checks what the options cannot say alone (the host's placeholders are needed unless
/// `base_url` replaces the host) and puts the definition where the run's engine reads it.
pub fn prepare(
    manifest: &Manifest,
    values: &BTreeMap<String, String>,
    run_dir: &Path,
) -> Result<()> {
    let Some(definition) = definition(manifest).map_err(Error::InvalidConfig)? else {
        return Ok(());
    };
    check_host(manifest, &definition, values)?;
    let path = run_dir.join(DEFINITION_FILE);
    let text = serde_json::to_vec(&definition).map_err(Error::json(format!(
        "encoding the HTTP definition of {}",
        manifest.code
    )))?;
    std::fs::write(&path, text).map_err(Error::file("writing", &path))?;
    crate::private::chmod(&path, 0o644)
}

/// The host's placeholders are needed unless `base_url` replaces the host.
fn check_host(
    manifest: &Manifest,
    definition: &http_connector::Definition,
    values: &BTreeMap<String, String>,
) -> Result<()> {
    let given = |name: &str| values.get(name).is_some_and(|v| !v.trim().is_empty());
    if given(BASE_URL) {
        return Ok(());
    }
    let connector = http_connector::parse(definition)
        .map_err(|e| Error::InvalidConfig(format!("{}: http.{e}", manifest.code)))?;
    match connector.host_placeholders().into_iter().find(|p| !given(p)) {
        Some(missing) => Err(Error::InvalidConfig(format!(
            "option {missing} of {} is required: it fills {{{missing}}} in the spec's host (or give base_url)",
            manifest.code
        ))),
        None => Ok(()),
    }
}

impl Cde {
    /// `cde connector check`: the connector's first request, made with the options (and
    /// on the network) a run would have, in a throw-away container of cde's engine; what
    /// its answer holds. Nothing is written: no run, no dataset, no state.
    pub async fn check(&self, request: RunRequest) -> Result<CheckReport> {
        let connector = self.store.connector(&request.connector).await?;
        let manifest = &connector.manifest;
        let Some(definition) = definition(manifest).map_err(Error::InvalidConfig)? else {
            return Err(Error::InvalidConfig(format!(
                "{} is not an HTTP connector; try it with cde run",
                manifest.code
            )));
        };
        let values = OptionValues::resolve(manifest, request.options)?;
        check_host(manifest, &definition, values.as_map())?;
        let limits = self
            .config
            .limits_for(manifest, &request.limits)
            .map_err(Error::InvalidConfig)?;
        let network = request.network.unwrap_or_else(|| manifest.network.clone());
        let engine = self.engine().await?;
        let network_mode =
            container::network_mode_of(engine, &network, &self.config.run_network).await?;
        let definition = serde_json::to_string(&definition).map_err(Error::json(format!(
            "encoding the HTTP definition of {}",
            manifest.code
        )))?;
        let (mut env, _) = OptionValues::delivery(values.as_map(), ExecutionMode::Env);
        env.push(format!("{}={definition}", http_connector::DEFINITION_VAR));
        let body = ContainerCreateBody {
            image: Some(executable::empty_image(engine).await?.to_owned()),
            entrypoint: Some(vec![IN_CONTAINER.to_owned()]),
            cmd: Some(vec![SUBCOMMAND.to_owned(), "--check".to_owned()]),
            env: Some(env),
            labels: Some(container::labels(
                self.store.instance(),
                &[("cde.role", "check")],
            )),
            host_config: Some(HostConfig {
                binds: Some(vec![format!(
                    "{}:{IN_CONTAINER}:ro",
                    self.executable().await?.display()
                )]),
                ..container::confined(&limits, &network_mode)
            }),
            ..Default::default()
        };
        let name = format!(
            "cde-check-{}-{}",
            manifest.code,
            uuid::Uuid::new_v4().simple()
        );
        let timeout = Duration::from_secs(limits.timeout_secs.min(CHECK_TIMEOUT_SECS));
        let failed =
            |why: String| Error::Other(format!("checking {}: the check {why}", manifest.code));
        let (_, output) = container::run_to_end(engine, &name, body, timeout, 20)
            .await?
            .map_err(failed)?;
        report(&output).ok_or_else(|| failed(format!("printed no report: {output}")))
    }
}

/// The longest a check may take, unless the connector's timeout is shorter.
const CHECK_TIMEOUT_SECS: u64 = 120;

/// The report in the engine's output: the JSON after its prefix.
fn report(output: &str) -> Option<CheckReport> {
    let (_, json) = output.rsplit_once(http_connector::CHECK_PREFIX)?;
    serde_json::Deserializer::from_str(json)
        .into_iter::<CheckReport>()
        .next()?
        .ok()
}

/// `cde http-connector`: the engine, inside a run's container; the exit status is the run's.
/// With `check`, the first request only, its report printed (see [`Cde::check`]).
pub async fn run_engine(definition: Option<&Path>, health_check: bool, check: bool) -> u8 {
    if health_check {
        return 0;
    }
    let mut vars: std::collections::HashMap<String, String> = std::env::vars().collect();
    if let Some(path) = definition {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                vars.insert(http_connector::DEFINITION_VAR.to_owned(), text);
            }
            Err(e) => {
                eprintln!(
                    "cde http-connector: reading the definition {}: {e}",
                    path.display()
                );
                return http_connector::EX_CONFIG;
            }
        }
    }
    match check {
        true => http_connector::check_with_vars(vars).await,
        false => http_connector::run_with_vars(vars).await,
    }
}
