//! Option values: what a run or pipeline step gives a connector, checked against the
//! options its manifest declares, masked for display and delivered as its execution mode says.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::model::{ExecutionMode, FieldType, Manifest};

/// What a secret value is shown as.
pub const MASK: &str = "********";

/// Option values after validation, with defaults applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OptionValues(BTreeMap<String, String>);

impl OptionValues {
    /// Parses `NAME=VALUE` pairs as given on the command line.
    pub fn parse_pairs<S: AsRef<str>>(pairs: &[S]) -> Result<BTreeMap<String, String>> {
        pairs
            .iter()
            .map(|pair| {
                let pair = pair.as_ref();
                pair.split_once('=')
                    .map(|(name, value)| (name.to_owned(), value.to_owned()))
                    .ok_or_else(|| {
                        Error::InvalidConfig(
                            "an option must be given as NAME=VALUE (an argument has no '=')".into(),
                        )
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
            let invalid = |message| Error::InvalidOption {
                option: option.name.clone(),
                message,
            };
            let value = given.get(&option.name).or(option.default.as_ref());
            match value {
                Some(value) => {
                    if option.field_type == FieldType::Checkbox && value != "0" && value != "1" {
                        return Err(invalid(format!(
                            "option {}: a checkbox is \"0\" or \"1\"",
                            option.name
                        )));
                    }
                    let choices = option.choices();
                    let chosen: Vec<&str> = match option.field_type {
                        FieldType::Select => vec![value.as_str()],
                        FieldType::SelectMultiple => {
                            value.split(',').filter(|v| !v.is_empty()).collect()
                        }
                        _ => vec![],
                    };
                    if let Some(bad) = chosen.iter().find(|v| !choices.iter().any(|c| c == *v)) {
                        return Err(invalid(format!(
                            "option {}: {bad:?} is not one of {}",
                            option.name,
                            choices.join(", ")
                        )));
                    }
                    values.insert(option.name.clone(), value.clone());
                }
                None if option.required => {
                    return Err(invalid(format!("option {} is required", option.name)))
                }
                None => {}
            }
        }
        Ok(Self(values))
    }

    /// The values with `password` options replaced by [`MASK`], for answers and output.
    pub fn masked(&self, manifest: &Manifest) -> BTreeMap<String, String> {
        mask(manifest, &self.0)
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    pub fn into_values(self) -> BTreeMap<String, String> {
        self.0
    }

    /// Environment variables and extra arguments for the connector container.
    pub fn delivery(
        values: &BTreeMap<String, String>,
        mode: ExecutionMode,
    ) -> (Vec<String>, Vec<String>) {
        let pairs = values.iter();
        match mode {
            ExecutionMode::Env => (pairs.map(|(k, v)| format!("{k}={v}")).collect(), vec![]),
            ExecutionMode::Args => (vec![], pairs.map(|(k, v)| format!("--{k}={v}")).collect()),
        }
    }
}

/// `values` with those of `password` options replaced by [`MASK`], for answers and output.
pub fn mask(manifest: &Manifest, values: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    values
        .iter()
        .map(|(name, value)| match manifest.option(name) {
            Some(option) if option.field_type == FieldType::Password => {
                (name.clone(), MASK.to_owned())
            }
            _ => (name.clone(), value.clone()),
        })
        .collect()
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
  - {name: MODE, field_type: select, default: fast, config: {choices: [fast, slow]}}
  - {name: TAGS, field_type: select_multiple, config: {choices: [a, {value: b, label: B}]}}
"#,
            false,
        )
        .unwrap()
    }

    fn given(pairs: &[&str]) -> BTreeMap<String, String> {
        OptionValues::parse_pairs(pairs).unwrap()
    }

    #[test]
    fn defaults_apply_and_modes_deliver() {
        let values = OptionValues::resolve(&manifest(), given(&["TOKEN=x"])).unwrap();
        assert_eq!(values.masked(&manifest())["TOKEN"], MASK);
        let values = values.into_values();
        let (env, args) = OptionValues::delivery(&values, ExecutionMode::Env);
        assert_eq!(env, ["MODE=fast", "NAME=world", "SHOULD_FAIL=0", "TOKEN=x"]);
        assert!(args.is_empty());
        let (env, args) = OptionValues::delivery(&values, ExecutionMode::Args);
        assert!(env.is_empty());
        assert_eq!(
            args,
            [
                "--MODE=fast",
                "--NAME=world",
                "--SHOULD_FAIL=0",
                "--TOKEN=x"
            ]
        );
    }

    #[test]
    fn rejects_unknown_missing_and_bad_checkbox() {
        let err =
            OptionValues::resolve(&manifest(), given(&["TOKEN=x", "COLOUR=red"])).unwrap_err();
        assert!(
            err.to_string().contains("unknown option \"COLOUR\""),
            "{err}"
        );
        let err = OptionValues::resolve(&manifest(), given(&[])).unwrap_err();
        assert!(
            err.to_string().contains("option TOKEN is required"),
            "{err}"
        );
        let err =
            OptionValues::resolve(&manifest(), given(&["TOKEN=x", "SHOULD_FAIL=yes"])).unwrap_err();
        assert!(err.to_string().contains("SHOULD_FAIL"), "{err}");
        assert!(OptionValues::parse_pairs(&["novalue"]).is_err());
        let err =
            OptionValues::resolve(&manifest(), given(&["TOKEN=x", "MODE=medium"])).unwrap_err();
        assert!(
            err.to_string()
                .contains("option MODE: \"medium\" is not one of fast, slow"),
            "{err}"
        );
        assert!(OptionValues::resolve(&manifest(), given(&["TOKEN=x", "TAGS=a,b"])).is_ok());
        assert!(OptionValues::resolve(&manifest(), given(&["TOKEN=x", "TAGS=a,c"])).is_err());
    }

    #[test]
    fn values_may_contain_equals() {
        assert_eq!(given(&["A=b=c"])["A"], "b=c");
    }
}
