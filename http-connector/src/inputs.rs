//! The options of a connector: those its document declares or uses as placeholders,
//! plus those every HTTP connector has; and reading their values at run time.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::definition::{Auth, API_KEY, PASSWORD, TOKEN, USERNAME};
use crate::error::{configuration, SpecError};
use crate::model::{
    Input, InputKind, Property, RequestTemplate, SourceSpec, BASE_URL, END_TIME, SCHEDULE_QUERY,
    SCHEDULE_START, START_TIME,
};
use crate::template;
use crate::transport::Failure;

const RESERVED: [&str; 3] = [START_TIME, END_TIME, SCHEDULE_QUERY];

/// The placeholders of a request that are options, with where they are; those of its
/// optional entries only with `optional`.
fn option_placeholders(request: &RequestTemplate, optional: bool) -> Vec<(String, &'static str)> {
    let mut kept = request.clone();
    let keep = |(k, _): &(String, String)| request.optional.contains(k) == optional;
    kept.query.retain(keep);
    kept.headers.retain(keep);
    if optional {
        kept.host.clear();
        kept.path.clear();
        kept.body = None;
    }
    let mut out = template::request_placeholders(&kept);
    out.retain(|(name, _)| !RESERVED.contains(&name.as_str()));
    out
}

/// The inputs of an AEP source.
pub fn inputs(spec: &SourceSpec, auth: &Auth) -> Vec<Input> {
    collect(&spec.properties, &[&spec.request], true, auth)
}

/// The inputs of a document's `properties` and the placeholders of its `requests`
/// (those of required parts make an input required), then the engine's own.
pub fn collect(
    properties: &[Property],
    requests: &[&RequestTemplate],
    schedule_start: bool,
    auth: &Auth,
) -> Vec<Input> {
    let mut inputs: Vec<Input> = properties
        .iter()
        .map(|p| Input {
            name: p.name.clone(),
            kind: p.kind,
            description: p.description.clone(),
            required: p.required,
            secret: p.secret,
        })
        .collect();
    for optional in [false, true] {
        for (name, place) in requests
            .iter()
            .flat_map(|r| option_placeholders(r, optional))
        {
            match inputs.iter_mut().find(|i| i.name == name) {
                Some(input) => input.required |= !optional,
                None => inputs.push(Input {
                    description: Some(format!("Fills {{{name}}} in the request's {place}.")),
                    name,
                    kind: InputKind::String,
                    required: !optional,
                    secret: false,
                }),
            }
        }
    }
    inputs.push(Input {
        name: BASE_URL.into(),
        kind: InputKind::String,
        description: Some(
            "Replaces the spec's host (a sandbox, a proxy, a test server); placeholders of the host are then not needed."
                .into(),
        ),
        required: false,
        secret: false,
    });
    if schedule_start {
        inputs.push(Input {
            name: SCHEDULE_START.into(),
            kind: InputKind::String,
            description: Some(
                "RFC 3339 time the first run asks from (default 1970-01-01T00:00:00Z).".into(),
            ),
            required: false,
            secret: false,
        });
    }
    let credential = |name: &str, secret: bool, description: &str| Input {
        name: name.into(),
        kind: InputKind::String,
        description: Some(description.into()),
        required: true,
        secret,
    };
    match auth {
        Auth::None => {}
        Auth::Basic => {
            inputs.push(credential(
                USERNAME,
                false,
                "User name of HTTP basic authentication.",
            ));
            inputs.push(credential(
                PASSWORD,
                true,
                "Password of HTTP basic authentication.",
            ));
        }
        Auth::Bearer => inputs.push(credential(TOKEN, true, "Bearer token.")),
        Auth::ApiKey { header } => inputs.push(credential(
            API_KEY,
            true,
            &format!("API key, sent in {header}."),
        )),
    }
    inputs
}

/// A document property that takes the name of one of the engine's own options; `at` is
/// where the document's properties are (`sourceSpec.spec.properties`).
pub fn check_names(properties: &[Property], at: &str) -> Result<(), SpecError> {
    let own = [BASE_URL, SCHEDULE_START, USERNAME, PASSWORD, TOKEN, API_KEY];
    match properties.iter().find(|p| own.contains(&p.name.as_str())) {
        Some(p) => Err(SpecError::new(
            format!("{at}.{}", p.name),
            "this name is one of the HTTP connector's own options",
        )),
        None => Ok(()),
    }
}

/// The option values of one run, checked against the inputs.
#[derive(Clone)]
pub struct Options {
    values: HashMap<String, String>,
    secret_names: Vec<String>,
    secrets: Vec<String>,
    pub base_url: Option<reqwest::Url>,
    pub schedule_start: DateTime<Utc>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Reads each input from the variable of its name (credentials also from
    /// `PUP_AUTH_<NAME>`, as the Container API contract passes them). A blank value is
    /// no value. `host_placeholders` need no value when `base_url` is set.
    pub fn resolve(
        inputs: &[Input],
        host_placeholders: &[String],
        vars: &HashMap<String, String>,
    ) -> Result<Self, Failure> {
        let credential = [USERNAME, PASSWORD, TOKEN, API_KEY];
        let lookup = |name: &str| -> Option<String> {
            let value = vars.get(name).cloned().or_else(|| {
                credential
                    .contains(&name)
                    .then(|| vars.get(&format!("PUP_AUTH_{}", name.to_ascii_uppercase())))
                    .flatten()
                    .cloned()
            })?;
            (!value.trim().is_empty()).then_some(value)
        };
        let has_base_url = lookup(BASE_URL).is_some();
        let mut values = HashMap::new();
        let mut secrets = Vec::new();
        let mut secret_names = Vec::new();
        for input in inputs {
            let Some(value) = lookup(&input.name) else {
                let needed =
                    input.required && !(has_base_url && host_placeholders.contains(&input.name));
                if needed {
                    return Err(configuration(format!(
                        "reading the options: option `{}` is required but not set",
                        input.name
                    )));
                }
                continue;
            };
            let value = checked(input, value)?;
            if input.secret {
                secrets.push(value.clone());
                secret_names.push(input.name.clone());
            }
            values.insert(input.name.clone(), value);
        }
        if let (Some(user), Some(password)) = (values.get(USERNAME), values.get(PASSWORD)) {
            use base64::Engine;
            // What an API echoing the refused `Authorization: Basic` header would show.
            secrets.push(
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")),
            );
        }
        // Longest first: a secret inside another (a password in its basic credentials)
        // must not break the longer one's mask.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let base_url = values
            .get(BASE_URL)
            .map(|text| {
                reqwest::Url::parse(text)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                    .ok_or_else(|| {
                        configuration(
                            "reading the options: option `base_url` is not an http(s) URL",
                        )
                    })
            })
            .transpose()?;
        let schedule_start = match values.get(SCHEDULE_START) {
            Some(text) => DateTime::parse_from_rfc3339(text)
                .map_err(|e| {
                    configuration(format!(
                        "reading the options: option `schedule_start` is not an RFC 3339 time: {e}"
                    ))
                })?
                .with_timezone(&Utc),
            None => DateTime::UNIX_EPOCH,
        };
        Ok(Self {
            values,
            secret_names,
            secrets,
            base_url,
            schedule_start,
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn values(&self) -> &HashMap<String, String> {
        &self.values
    }

    /// The values set, secrets as `***`: what the run logs at its start.
    pub fn resolved(&self) -> serde_json::Value {
        let mut names: Vec<_> = self.values.keys().collect();
        names.sort();
        let map = names
            .into_iter()
            .map(|name| {
                let value = if self.secret_names.contains(name) {
                    "***".to_owned()
                } else {
                    self.values[name].clone()
                };
                (name.clone(), serde_json::Value::String(value))
            })
            .collect();
        serde_json::Value::Object(map)
    }

    /// Replaces every secret value (and its percent-encoded form) in `text` with `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            let encoded: String =
                percent_encoding::utf8_percent_encode(secret, template::SEGMENT).collect();
            let form: String = reqwest::Url::parse_with_params("http://x/", [("v", secret)])
                .map(|u| u.query().unwrap_or_default()[2..].to_owned())
                .unwrap_or_default();
            for form in [secret.as_str(), &encoded, &form] {
                if !form.is_empty() {
                    out = out.replace(form, "***");
                }
            }
        }
        out
    }
}

/// The value in the form the templates use, or an error naming the option (never the
/// value).
fn checked(input: &Input, value: String) -> Result<String, Failure> {
    let bad = |what: &str| {
        configuration(format!(
            "reading the options: option `{}` is not {what}",
            input.name
        ))
    };
    match input.kind {
        InputKind::String => Ok(value),
        InputKind::Integer => value
            .trim()
            .parse::<i64>()
            .map(|n| n.to_string())
            .map_err(|_| bad("an integer")),
        InputKind::Number => value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(|_| value.trim().to_owned())
            .ok_or_else(|| bad("a number")),
        InputKind::Boolean => match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" => Ok("true".into()),
            "0" | "false" => Ok("false".into()),
            _ => Err(bad("a boolean (1, 0, true or false)")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAILCHIMP: &str = include_str!("../tests/fixtures/mailchimp-members.json");

    fn mailchimp_inputs(auth: &Auth) -> Vec<Input> {
        inputs(&crate::aep::parse_text(MAILCHIMP).unwrap(), auth)
    }

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_inputs_of_the_mailchimp_fixture() {
        let inputs = mailchimp_inputs(&Auth::Basic);
        let names: Vec<_> = inputs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "listId",
                "domain",
                "base_url",
                "schedule_start",
                "username",
                "password"
            ]
        );
        assert_eq!(
            inputs[0],
            Input {
                name: "listId".into(),
                kind: InputKind::String,
                description: Some("listId for which members need to fetch.".into()),
                required: true,
                secret: false,
            }
        );
        assert!(inputs[1].required && !inputs[1].secret);
        assert!(!inputs[2].required && !inputs[3].required);
        assert!(inputs[5].secret && !inputs[4].secret);
    }

    #[test]
    fn each_authentication_has_its_secret_option() {
        let secret_names = |auth: Auth| -> Vec<String> {
            mailchimp_inputs(&auth)
                .into_iter()
                .filter(|i| i.secret)
                .map(|i| i.name)
                .collect()
        };
        assert!(secret_names(Auth::None).is_empty());
        assert_eq!(secret_names(Auth::Bearer), ["token"]);
        assert_eq!(
            secret_names(Auth::ApiKey {
                header: "X-Key".into()
            }),
            ["api_key"]
        );
    }

    #[test]
    fn reserved_placeholders_are_not_inputs() {
        let doc = serde_json::json!({
            "urlParams": {"host": "https://h", "path": "/{START_TIME}/{tenant}", "method": "GET",
                "queryParams": {"q": "{SCHEDULE_QUERY}", "k": "${key}"}},
            "headerParams": {"X-End": "{END_TIME}"},
            "contentPath": {"path": "$.r"},
            "paginationParams": {"type": "NONE"}
        });
        let inputs = inputs(&crate::aep::parse_value(&doc).unwrap(), &Auth::None);
        let names: Vec<_> = inputs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["tenant", "key", "base_url", "schedule_start"]);
    }

    #[test]
    fn options_are_read_checked_and_secrets_masked() {
        let inputs = mailchimp_inputs(&Auth::Bearer);
        let hosts = vec!["domain".to_string()];
        let err = Options::resolve(&inputs, &hosts, &vars(&[("listId", "L"), ("token", "t")]))
            .unwrap_err();
        assert!(err.message.contains("`domain`"), "{}", err.message);
        // With base_url, the host's placeholders are not needed; blank is unset.
        let options = Options::resolve(
            &inputs,
            &hosts,
            &vars(&[
                ("listId", "L"),
                ("PUP_AUTH_TOKEN", "s3cr/et"),
                ("base_url", "http://127.0.0.1:9"),
                ("schedule_start", " "),
            ]),
        )
        .unwrap();
        assert_eq!(options.get("token"), Some("s3cr/et"));
        assert_eq!(
            options.resolved(),
            serde_json::json!({"listId": "L", "token": "***", "base_url": "http://127.0.0.1:9"})
        );
        assert_eq!(options.schedule_start, DateTime::UNIX_EPOCH);
        assert_eq!(
            options.mask("GET /x?t=s3cr%2Fet s3cr/et"),
            "GET /x?t=*** ***"
        );
        let err = Options::resolve(
            &inputs,
            &hosts,
            &vars(&[
                ("listId", "L"),
                ("token", "t"),
                ("domain", "d"),
                ("schedule_start", "yesterday"),
            ]),
        )
        .unwrap_err();
        assert!(err.message.contains("schedule_start"), "{}", err.message);
    }

    #[test]
    fn basic_credentials_are_masked_in_their_header_form_too() {
        let inputs = mailchimp_inputs(&Auth::Basic);
        let options = Options::resolve(
            &inputs,
            &[],
            &vars(&[
                ("listId", "L"),
                ("domain", "d"),
                ("username", "u"),
                ("password", "p"),
            ]),
        )
        .unwrap();
        // base64("u:p")
        assert_eq!(options.mask("got Basic dTpw"), "got Basic ***");
    }

    #[test]
    fn typed_options_are_checked() {
        let input = |kind| Input {
            name: "n".into(),
            kind,
            description: None,
            required: true,
            secret: false,
        };
        assert_eq!(
            checked(&input(InputKind::Boolean), "1".into()).unwrap(),
            "true"
        );
        assert_eq!(
            checked(&input(InputKind::Integer), " 42".into()).unwrap(),
            "42"
        );
        assert!(checked(&input(InputKind::Integer), "4.2".into()).is_err());
        assert!(checked(&input(InputKind::Number), "NaN".into()).is_err());
        assert!(checked(&input(InputKind::Boolean), "yes".into()).is_err());
    }
}
