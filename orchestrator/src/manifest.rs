//! Reading and validating connector manifests (the types are in `model::manifest`).

use std::path::Path;

use crate::error::Result;
use crate::model::{ConnectorType, FieldType, Manifest, OptionSpec};

impl Manifest {
    /// Reads a manifest file; an HTTP connector's `spec` may name a file beside it.
    pub fn load(path: &Path) -> Result<Self> {
        let folder = path.parent().unwrap_or(Path::new("."));
        crate::document::load(path, |text, json| Self::parse_in(text, json, Some(folder)))
    }

    /// Parses and validates; the error names the offending field.
    pub fn parse(text: &str, json: bool) -> Result<Self, String> {
        Self::parse_in(text, json, None)
    }

    fn parse_in(text: &str, json: bool, folder: Option<&Path>) -> Result<Self, String> {
        let mut manifest: Manifest = crate::document::parse(text, json)?;
        if let Some(folder) = folder {
            crate::http::resolve_spec_file(&mut manifest, folder)?;
        }
        crate::http::expand(&mut manifest)?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), String> {
        if !is_kebab_case(&self.code) {
            return Err(format!(
                "code: {:?} must be kebab-case (lowercase letters and digits separated by single dashes)",
                self.code
            ));
        }
        if self.image.trim().is_empty() {
            return Err("image: must not be empty".into());
        }
        if let Some(icon) = &self.icon {
            if !(icon.starts_with("https://") || icon.starts_with("data:image/")) {
                return Err(format!(
                    "icon: {icon:?} must be an https: URL or a data:image/ URL"
                ));
            }
        }
        if let Some(i) = self.categories.iter().position(|c| c.trim().is_empty()) {
            return Err(format!("categories[{i}]: must not be empty"));
        }
        if self.command.trim().is_empty() {
            return Err("command: must not be empty".into());
        }
        let mut seen = std::collections::HashSet::new();
        for option in &self.options {
            if !is_option_name(&option.name) {
                return Err(format!(
                    "options.{}: name must start with a letter and contain only letters, digits, '-' and '_'",
                    option.name
                ));
            }
            if !seen.insert(option.name.as_str()) {
                return Err(format!("options.{}: declared twice", option.name));
            }
            option.validate()?;
        }
        if self.kind == ConnectorType::DataService {
            if self.stage.is_none() {
                return Err(
                    "stage: a data-service declares its stage (import, intermediate or export)"
                        .into(),
                );
            }
            match &self.column_prefix {
                None => {
                    return Err(
                        "column_prefix: a data-service declares its column prefix, e.g. ___mysvc"
                            .into(),
                    )
                }
                Some(prefix) if !is_column_prefix(prefix) => {
                    return Err(format!(
                        "column_prefix: {prefix:?} must be ___ followed by letters"
                    ))
                }
                Some(_) => {}
            }
        } else if let Some(field) = [
            self.stage.map(|_| "stage"),
            self.column_prefix.as_ref().map(|_| "column_prefix"),
            self.max_usage.map(|_| "max_usage"),
            self.filters.then_some("filters"),
        ]
        .into_iter()
        .flatten()
        .next()
        {
            return Err(format!("{field}: only a data-service declares it"));
        }
        self.retry.validate()?;
        crate::model::Limits {
            timeout_secs: 1,
            memory_mb: 6,
            cpus: 1.0,
            pids: 1,
            disk_mb: 1,
        }
        .with(&self.limits)
        .validate()
    }

    pub fn option(&self, name: &str) -> Option<&OptionSpec> {
        self.options.iter().find(|o| o.name == name)
    }
}

impl OptionSpec {
    fn validate(&self) -> Result<(), String> {
        let field = |name: &str| format!("options.{}.{name}", self.name);
        match self.field_type {
            FieldType::Checkbox => {
                if let Some(default) = self.default.as_deref().filter(|d| *d != "0" && *d != "1") {
                    return Err(format!(
                        "{}: a checkbox default is \"0\" or \"1\", not {default:?}",
                        field("default")
                    ));
                }
            }
            FieldType::Select | FieldType::SelectMultiple => {
                let listed = self
                    .config
                    .as_ref()
                    .and_then(|c| c.get("choices"))
                    .and_then(|c| c.as_array())
                    .map_or(0, Vec::len);
                let choices = self.choices();
                if choices.is_empty() || choices.len() != listed {
                    return Err(format!(
                        "{}: a select lists its choices as strings or {{value, label}} objects",
                        field("config.choices")
                    ));
                }
                let defaults: Vec<&str> = match (self.field_type, self.default.as_deref()) {
                    (_, None) => vec![],
                    (FieldType::Select, Some(d)) => vec![d],
                    (_, Some(d)) => d.split(',').filter(|v| !v.is_empty()).collect(),
                };
                if let Some(bad) = defaults.iter().find(|d| !choices.iter().any(|c| c == *d)) {
                    return Err(format!(
                        "{}: {bad:?} is not one of the choices",
                        field("default")
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

pub fn is_kebab_case(code: &str) -> bool {
    !code.is_empty()
        && code.split('-').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && code.starts_with(|c: char| c.is_ascii_lowercase())
}

fn is_column_prefix(prefix: &str) -> bool {
    prefix
        .strip_prefix("___")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphabetic()))
}

fn is_option_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The JSON Schema (2020-12) of a manifest, as published in `openapi/manifest.schema.json`
/// (`cde openapi --manifest-schema`): the management API's schemas of the manifest and
/// of what it refers to, under `$defs`.
pub fn json_schema() -> serde_json::Value {
    use utoipa::{PartialSchema, ToSchema};
    let mut defs = Vec::new();
    Manifest::schemas(&mut defs);
    let defs: serde_json::Map<String, serde_json::Value> = defs
        .into_iter()
        .map(|(name, schema)| {
            (
                name,
                serde_json::to_value(schema).expect("a schema serialises"),
            )
        })
        .collect();
    let mut schema = serde_json::to_value(Manifest::schema()).expect("a schema serialises");
    let root = schema.as_object_mut().expect("an object schema");
    let mut head = serde_json::Map::new();
    head.insert(
        "$schema".into(),
        "https://json-schema.org/draft/2020-12/schema".into(),
    );
    head.insert("title".into(), "cde connector manifest".into());
    head.extend(std::mem::take(root));
    head.insert("$defs".into(), defs.into());
    let mut schema = serde_json::Value::Object(head);
    // A default is text, but YAML's `default: 0` or `default: false` is taken too.
    if let Some(default) = schema.pointer_mut("/$defs/OptionSpec/properties/default") {
        *default = serde_json::json!({"type": ["string", "number", "boolean", "null"]});
    }
    let text = serde_json::to_string(&schema)
        .expect("a schema serialises")
        .replace("#/components/schemas/", "#/$defs/");
    serde_json::from_str(&text).expect("still JSON")
}

/// [`json_schema`] as committed: pretty, with a final newline.
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).expect("a schema serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InputValues, Network, RetryPolicy};

    const SAMPLE: &str = r#"
code: sample-source
label: Sample
type: data-source
image: sample:latest
command: python3
arguments: [main.py, data-source]
health_check: --health-check
execution_mode: env
options:
  - {name: NAME, field_type: input, label: Name, required: false, default: world}
  - {name: SHOULD_FAIL, field_type: checkbox, default: 0}
"#;

    #[test]
    fn parses_yaml_with_numeric_default() {
        let manifest = Manifest::parse(SAMPLE, false).unwrap();
        assert_eq!(manifest.kind, ConnectorType::DataSource);
        assert_eq!(
            manifest.option("SHOULD_FAIL").unwrap().default.as_deref(),
            Some("0")
        );
        assert_eq!(manifest.arguments, ["main.py", "data-source"]);
    }

    #[test]
    fn json_and_yaml_agree() {
        let yaml = Manifest::parse(SAMPLE, false).unwrap();
        let json = serde_json::to_string(&yaml).unwrap();
        assert_eq!(Manifest::parse(&json, true).unwrap(), yaml);
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = Manifest::parse(&format!("{SAMPLE}colour: red\n"), false).unwrap_err();
        assert!(err.contains("unknown field `colour`"), "{err}");
        let err = Manifest::parse(
            &SAMPLE.replace("field_type: input,", "field_type: input, size: 3,"),
            false,
        )
        .unwrap_err();
        assert!(err.contains("unknown field `size`"), "{err}");
    }

    #[test]
    fn rejects_bad_code_and_option_names() {
        let err =
            Manifest::parse(&SAMPLE.replace("sample-source", "Sample_Source"), false).unwrap_err();
        assert!(err.starts_with("code:"), "{err}");
        let err = Manifest::parse(&SAMPLE.replace("name: NAME", "name: 1NAME"), false).unwrap_err();
        assert!(err.starts_with("options.1NAME:"), "{err}");
        let err =
            Manifest::parse(&SAMPLE.replace("type: data-source", "type: sink"), false).unwrap_err();
        assert!(err.contains("unknown variant `sink`"), "{err}");
    }

    #[test]
    fn network_and_input_values() {
        let manifest = Manifest::parse(SAMPLE, false).unwrap();
        assert_eq!(manifest.network, Network::Isolated);
        assert_eq!(manifest.input_values, InputValues::Text);
        let json = serde_json::to_value(&manifest).unwrap();
        assert!(json.get("network").is_none() && json.get("input_values").is_none());
        let manifest = Manifest::parse(
            &format!("{SAMPLE}network: none\ninput_values: typed\n"),
            false,
        )
        .unwrap();
        assert_eq!(manifest.network, Network::None);
        assert_eq!(manifest.input_values, InputValues::Typed);
        let manifest = Manifest::parse(&format!("{SAMPLE}network: ops-net\n"), false).unwrap();
        assert_eq!(manifest.network, Network::Named("ops-net".into()));
        let err = Manifest::parse(&format!("{SAMPLE}network: host\n"), false).unwrap_err();
        assert!(err.starts_with("network:"), "{err}");
        let mut json = serde_json::to_value(Manifest::parse(SAMPLE, false).unwrap()).unwrap();
        json["network"] = "no such/net".into();
        let err = Manifest::parse(&json.to_string(), true).unwrap_err();
        assert!(err.starts_with("network:"), "{err}");
        let err = Manifest::parse(&format!("{SAMPLE}input_values: json\n"), false).unwrap_err();
        assert!(err.starts_with("input_values:"), "{err}");
    }

    #[test]
    fn retry_policy() {
        let manifest = Manifest::parse(SAMPLE, false).unwrap();
        assert_eq!(manifest.retry, RetryPolicy::default());
        let json = serde_json::to_value(&manifest).unwrap();
        assert!(json.get("retry").is_none(), "the default is left out");
        let manifest = Manifest::parse(
            &format!("{SAMPLE}retry: {{attempts: 3, backoff_secs: 10}}\n"),
            false,
        )
        .unwrap();
        assert_eq!(
            manifest.retry,
            RetryPolicy {
                attempts: 3,
                backoff_secs: 10
            }
        );
        let json = serde_json::to_value(&manifest).unwrap();
        assert_eq!(
            json["retry"],
            serde_json::json!({"attempts": 3, "backoff_secs": 10})
        );
        assert_eq!(Manifest::parse(&json.to_string(), true).unwrap(), manifest);
        let err = Manifest::parse(&format!("{SAMPLE}retry: {{attempts: 0}}\n"), false).unwrap_err();
        assert!(err.starts_with("retry.attempts:"), "{err}");
        let err =
            Manifest::parse(&format!("{SAMPLE}retry: {{attempts: 11}}\n"), false).unwrap_err();
        assert!(err.starts_with("retry.attempts:"), "{err}");
        let err = Manifest::parse(&format!("{SAMPLE}retry: {{tries: 2}}\n"), false).unwrap_err();
        assert!(
            err.starts_with("retry") && err.contains("unknown field `tries`"),
            "{err}"
        );
    }

    #[test]
    fn kebab_case() {
        assert!(is_kebab_case("a1-b2"));
        for bad in ["", "-a", "a-", "a--b", "A", "a_b", "1a"] {
            assert!(!is_kebab_case(bad), "{bad}");
        }
    }
}
