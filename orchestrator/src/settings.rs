//! A run's option values, checked against the connector's declared options.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::manifest::{ExecutionMode, FieldType, Manifest};

/// Option values after validation, with defaults applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings(BTreeMap<String, String>);

impl Settings {
    /// Parses `NAME=VALUE` pairs as given on the command line.
    pub fn parse_pairs<S: AsRef<str>>(pairs: &[S]) -> Result<BTreeMap<String, String>> {
        pairs
            .iter()
            .map(|pair| {
                let pair = pair.as_ref();
                pair.split_once('=')
                    .map(|(name, value)| (name.to_owned(), value.to_owned()))
                    .ok_or_else(|| {
                        Error::InvalidConfig(format!("{pair:?} is not of the form NAME=VALUE"))
                    })
            })
            .collect()
    }

    pub fn resolve(manifest: &Manifest, given: BTreeMap<String, String>) -> Result<Self> {
        if let Some(unknown) = given.keys().find(|name| manifest.option(name).is_none()) {
            let known: Vec<_> = manifest.options.iter().map(|o| o.name.as_str()).collect();
            return Err(Error::InvalidConfig(format!(
                "unknown option {unknown:?}; {} declares: {}",
                manifest.code,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        }
        let mut values = BTreeMap::new();
        for option in &manifest.options {
            let value = given.get(&option.name).or(option.default.as_ref());
            match value {
                Some(value) => {
                    if option.field_type == FieldType::Checkbox && value != "0" && value != "1" {
                        return Err(Error::InvalidConfig(format!(
                            "option {}: a checkbox is \"0\" or \"1\"",
                            option.name
                        )));
                    }
                    values.insert(option.name.clone(), value.clone());
                }
                None if option.required => {
                    return Err(Error::InvalidConfig(format!(
                        "option {} is required",
                        option.name
                    )))
                }
                None => {}
            }
        }
        Ok(Self(values))
    }

    /// Environment variables and extra arguments for the connector container.
    pub fn delivery(&self, mode: ExecutionMode) -> (Vec<String>, Vec<String>) {
        let pairs = self.0.iter();
        match mode {
            ExecutionMode::Env => (pairs.map(|(k, v)| format!("{k}={v}")).collect(), vec![]),
            ExecutionMode::Args => (vec![], pairs.map(|(k, v)| format!("--{k}={v}")).collect()),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).expect("a map of strings serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
code: c
label: C
type: data-source
image: i
command: run
options:
  - {name: NAME, field_type: input, default: world}
  - {name: TOKEN, field_type: password, required: true}
  - {name: SHOULD_FAIL, field_type: checkbox, default: "0"}
"#,
            false,
        )
        .unwrap()
    }

    fn given(pairs: &[&str]) -> BTreeMap<String, String> {
        Settings::parse_pairs(pairs).unwrap()
    }

    #[test]
    fn defaults_apply_and_modes_deliver() {
        let settings = Settings::resolve(&manifest(), given(&["TOKEN=x"])).unwrap();
        let (env, args) = settings.delivery(ExecutionMode::Env);
        assert_eq!(env, ["NAME=world", "SHOULD_FAIL=0", "TOKEN=x"]);
        assert!(args.is_empty());
        let (env, args) = settings.delivery(ExecutionMode::Args);
        assert!(env.is_empty());
        assert_eq!(args, ["--NAME=world", "--SHOULD_FAIL=0", "--TOKEN=x"]);
    }

    #[test]
    fn rejects_unknown_missing_and_bad_checkbox() {
        let err = Settings::resolve(&manifest(), given(&["TOKEN=x", "COLOUR=red"])).unwrap_err();
        assert!(
            err.to_string().contains("unknown option \"COLOUR\""),
            "{err}"
        );
        let err = Settings::resolve(&manifest(), given(&[])).unwrap_err();
        assert!(
            err.to_string().contains("option TOKEN is required"),
            "{err}"
        );
        let err =
            Settings::resolve(&manifest(), given(&["TOKEN=x", "SHOULD_FAIL=yes"])).unwrap_err();
        assert!(err.to_string().contains("SHOULD_FAIL"), "{err}");
        assert!(Settings::parse_pairs(&["novalue"]).is_err());
    }

    #[test]
    fn values_may_contain_equals() {
        assert_eq!(given(&["A=b=c"])["A"], "b=c");
    }
}
