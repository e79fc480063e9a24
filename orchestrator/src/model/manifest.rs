//! The connector manifest: what an operator registers (JSON or YAML). Parsing and
//! validation are in `crate::manifest`.

use serde::{Deserialize, Deserializer, Serialize};

use super::limits::LimitsOverride;
use super::network::Network;
use super::retry::RetryPolicy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub code: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: ConnectorType,
    /// Catalog: the categories it is listed under (`CRM`, `Ads`), to filter by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Catalog: its icon, an `https:` URL or a `data:image/...` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// Catalog: what it does, in a sentence or two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The image runs start from; an HTTP connector leaves it out (cde's empty image).
    #[serde(default)]
    pub image: String,
    /// The command runs execute; an HTTP connector leaves it out (cde's own executable).
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub arguments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<String>,
    #[serde(default)]
    pub execution_mode: ExecutionMode,
    #[serde(default)]
    pub options: Vec<OptionSpec>,
    /// A declarative HTTP connector instead of an image: `dialect` (`aep` or `cdp`), `spec` (the
    /// document, inline or a file name relative to the manifest), `auth` and the rest of
    /// the engine's definition. cde fills in image, command and the options the spec declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub http: Option<serde_json::Map<String, serde_json::Value>>,
    /// Resource limits for this connector's runs (defaults come from configuration).
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: LimitsOverride,
    /// The network its runs join: `isolated` (default), `none` or an operator's network.
    #[serde(default, skip_serializing_if = "Network::is_default")]
    pub network: Network,
    /// How its runs that fail as transient (exit status 75) or lose their container are
    /// retried: `{attempts: 3, backoff_secs: 10}`. By default they are not.
    #[serde(default, skip_serializing_if = "is_default")]
    pub retry: RetryPolicy,
    /// How the Container API hands input records' values to the connector: `text` (default,
    /// every value a string) or `typed` (numbers, booleans and nulls keep their JSON type).
    #[serde(default, skip_serializing_if = "is_default")]
    pub input_values: InputValues,
    /// Data services: where in the pipeline they run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// Data services: prefix of the columns they add, `___` plus letters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_prefix: Option<String>,
    /// Data services: how many times one pipeline may use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_usage: Option<u32>,
    /// Data services: it may drop rows (a filter). Without it, the conformance kit
    /// (`cde test`) expects every input row back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub filters: bool,
    /// Exports: columns the channel needs; a run whose input lacks one fails before it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_columns: Vec<String>,
    /// Export deltas: the column that identifies a product across runs (default `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_key: Option<String>,
}

impl Manifest {
    /// The column an export delta compares on.
    pub fn delta_key(&self) -> &str {
        self.delta_key.as_deref().unwrap_or("id")
    }

    pub fn reads_input(&self) -> bool {
        self.kind != ConnectorType::DataSource
    }
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Import,
    Intermediate,
    Export,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, strum::Display,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum ConnectorType {
    DataSource,
    DataService,
    Export,
    ExportDelta,
}

impl ConnectorType {
    /// Its role in a pipeline, as the catalog lists it.
    pub fn role(self) -> Role {
        match self {
            ConnectorType::DataSource => Role::Source,
            ConnectorType::DataService => Role::Service,
            ConnectorType::Export | ConnectorType::ExportDelta => Role::Export,
        }
    }
}

/// Where a connector goes in a pipeline: a source, a data service or an export.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::Display,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Role {
    Source,
    Service,
    Export,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    /// Options arrive as environment variables named like the option.
    #[default]
    Env,
    /// Options arrive as `--name=value` arguments.
    Args,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputValues {
    #[default]
    Text,
    Typed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionSpec {
    pub name: String,
    pub field_type: FieldType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(
        default,
        deserialize_with = "scalar_as_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

impl OptionSpec {
    /// The values a `select` or `select_multiple` option allows: `config.choices`, a list of
    /// strings or of `{value, label}` objects.
    pub fn choices(&self) -> Vec<String> {
        self.labelled_choices()
            .into_iter()
            .map(|(value, _)| value)
            .collect()
    }

    /// [`OptionSpec::choices`] with the label each is shown with (its value when it has none).
    pub fn labelled_choices(&self) -> Vec<(String, String)> {
        let Some(choices) = self
            .config
            .as_ref()
            .and_then(|c| c.get("choices"))
            .and_then(|c| c.as_array())
        else {
            return vec![];
        };
        choices
            .iter()
            .filter_map(|choice| match choice {
                serde_json::Value::String(value) => Some((value.clone(), value.clone())),
                serde_json::Value::Object(object) => {
                    let value = object.get("value")?.as_str()?.to_owned();
                    let label = object
                        .get("label")
                        .and_then(|l| l.as_str())
                        .unwrap_or(&value)
                        .to_owned();
                    Some((value, label))
                }
                _ => None,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Input,
    Textarea,
    Password,
    Checkbox,
    Select,
    SelectMultiple,
    StageColumnsDropdown,
}

/// Defaults are strings (they become environment variables), but `default: 0` in YAML is common.
fn scalar_as_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    use serde::de::Error as _;
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None => Ok(None),
        Some(value) => scalar_text(value).map_err(|other| {
            D::Error::custom(format!(
                "default must be a string, number or boolean, got {other}"
            ))
        }),
    }
}

/// An option value written as a scalar, as text: a string as it is, a boolean as a
/// checkbox's `"1"` or `"0"`, a number as written; `None` for null; the value back when
/// it is none of these.
pub fn scalar_text(value: serde_json::Value) -> Result<Option<String>, serde_json::Value> {
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s)),
        serde_json::Value::Bool(b) => Ok(Some(if b { "1" } else { "0" }.to_owned())),
        serde_json::Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(other),
    }
}
