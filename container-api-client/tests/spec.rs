//! The client against the API's OpenAPI document (`../openapi/container-api.json`): every
//! call it makes exists there with its method, path parameter and query parameters; the
//! values of its enums are the spec's; the fields it sends and reads are in the schemas.

use std::collections::BTreeSet;
use std::path::PathBuf;

use container_api_client::{fields, Endpoint, InputKind, Level, OutputKind};
use serde_json::Value;

/// The deprecated alias of `input` the spec lists and the client never sends.
const DEPRECATED_INPUT_ALIAS: &str = "full";

fn spec() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/container-api.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Follows `$ref`s, and takes the non-null branch of a `oneOf`/`anyOf` (how the spec
/// writes an optional object).
fn resolve<'a>(spec: &'a Value, mut schema: &'a Value) -> Result<&'a Value, String> {
    for _ in 0..32 {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let pointer = reference
                .strip_prefix('#')
                .ok_or_else(|| format!("external $ref {reference}"))?;
            schema = spec
                .pointer(pointer)
                .ok_or_else(|| format!("dangling $ref {reference}"))?;
            continue;
        }
        let branches = schema.get("oneOf").or_else(|| schema.get("anyOf"));
        if let Some(branches) = branches.and_then(Value::as_array) {
            let not_null: Vec<&Value> = branches
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            match not_null.as_slice() {
                [one] => {
                    schema = one;
                    continue;
                }
                _ => return Err(format!("ambiguous oneOf/anyOf: {schema}")),
            }
        }
        return Ok(schema);
    }
    Err("$ref loop".into())
}

/// The schema at `path` (property names) from `schema`, as declared (not resolved).
fn field<'a>(spec: &'a Value, schema: &'a Value, path: &[&str]) -> Result<&'a Value, String> {
    let mut at = schema;
    for (i, key) in path.iter().enumerate() {
        let object = resolve(spec, at)?;
        at = object
            .get("properties")
            .and_then(|p| p.get(*key))
            .ok_or_else(|| format!("no property `{}`", path[..=i].join(".")))?;
    }
    Ok(at)
}

fn json_schema(holder: &Value) -> Option<&Value> {
    holder.pointer("/content/application~1json/schema")
}

/// The values of the enum of the path parameter `name` of `operation`.
fn path_enum(spec: &Value, operation: &Value, name: &str) -> Result<BTreeSet<String>, String> {
    let parameter = parameters(operation)
        .find(|p| p["in"] == "path" && p["name"] == name)
        .ok_or_else(|| format!("no path parameter `{name}`"))?;
    let schema = resolve(spec, &parameter["schema"])?;
    let values = schema["enum"]
        .as_array()
        .ok_or_else(|| format!("path parameter `{name}` declares no enum"))?;
    Ok(values
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect())
}

fn parameters(operation: &Value) -> impl Iterator<Item = &Value> {
    operation["parameters"].as_array().into_iter().flatten()
}

fn client_values(values: impl IntoIterator<Item = &'static str>) -> BTreeSet<String> {
    values.into_iter().map(str::to_owned).collect()
}

/// The values the client sends for the path parameter of `endpoint`, and the ones the
/// spec may list beyond them.
fn expected_enum(
    endpoint: Endpoint,
) -> Option<(&'static str, BTreeSet<String>, &'static [&'static str])> {
    match endpoint {
        Endpoint::Append | Endpoint::Close => Some((
            "type",
            client_values(OutputKind::ALL.iter().map(|k| k.as_str())),
            &[],
        )),
        Endpoint::Next | Endpoint::NextBatch | Endpoint::Restart | Endpoint::Count => Some((
            "type",
            client_values(InputKind::ALL.iter().map(|k| k.as_str())),
            &[DEPRECATED_INPUT_ALIAS],
        )),
        Endpoint::Log => Some((
            "level",
            client_values(Level::ALL.iter().map(|l| l.as_str())),
            &[],
        )),
        Endpoint::Ping => None,
    }
}

/// Everything wrong with `endpoint` according to `spec`.
fn problems(spec: &Value, endpoint: Endpoint) -> Vec<String> {
    let mut found = Vec::new();
    let template = endpoint.path_template();
    let method = endpoint.method().to_ascii_lowercase();
    let Some(operation) = spec["paths"].get(template).and_then(|p| p.get(&method)) else {
        return vec![format!(
            "{} {template} is not in the spec",
            endpoint.method()
        )];
    };

    // Path parameters: the template's `{name}`s are the spec's, with the same enum.
    let in_template: BTreeSet<&str> = template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name))
        .collect();
    let in_spec: BTreeSet<&str> = parameters(operation)
        .filter(|p| p["in"] == "path")
        .filter_map(|p| p["name"].as_str())
        .collect();
    if in_template != in_spec {
        found.push(format!(
            "path parameters {in_template:?}, spec has {in_spec:?}"
        ));
    }
    match (expected_enum(endpoint), in_template.iter().next()) {
        (Some((name, client, extra)), Some(_)) => match path_enum(spec, operation, name) {
            Ok(spec_values) => {
                let mut expected = client.clone();
                expected.extend(extra.iter().map(|s| s.to_string()));
                if spec_values != expected {
                    found.push(format!(
                        "`{{{name}}}` values: client {client:?} (+ {extra:?}), spec {spec_values:?}"
                    ));
                }
            }
            Err(e) => found.push(e),
        },
        (None, None) => {}
        (expected, parameter) => found.push(format!(
            "client enum {:?} for path parameter {parameter:?}",
            expected.map(|e| e.0)
        )),
    }

    // Query parameters.
    for name in endpoint.query_parameters() {
        if !parameters(operation).any(|p| p["in"] == "query" && p["name"] == *name) {
            found.push(format!("no query parameter `{name}`"));
        }
    }

    // Success statuses and the fields read from them.
    let responses = &operation["responses"];
    for status in endpoint.success_statuses() {
        if responses.get(status.to_string()).is_none() {
            found.push(format!("no {status} answer"));
        }
    }
    for path in endpoint.response_fields() {
        let status = endpoint.success_statuses()[0].to_string();
        match responses.get(&status).and_then(json_schema) {
            Some(schema) => {
                if let Err(e) = field(spec, schema, path) {
                    found.push(format!("{status} answer: {e}"));
                }
            }
            None => found.push(format!("{status} answer has no JSON schema")),
        }
    }

    // The request body's fields.
    let request = operation.get("requestBody").and_then(json_schema);
    for path in endpoint.request_fields() {
        match request {
            Some(schema) => {
                if let Err(e) = field(spec, schema, path) {
                    found.push(format!("request body: {e}"));
                }
            }
            None => found.push("no JSON request body".into()),
        }
    }

    // Error answers: a `message`; a 400 also the `errors` map of strings.
    let Some(responses) = responses.as_object() else {
        found.push("no responses".into());
        return found;
    };
    for (status, answer) in responses {
        if status.starts_with('2') {
            continue;
        }
        let Some(schema) = json_schema(answer) else {
            continue;
        };
        if let Err(e) = field(spec, schema, &[fields::MESSAGE]) {
            found.push(format!("{status} answer: {e}"));
        }
        if status == "400" {
            match field(spec, schema, &[fields::ERRORS]).and_then(|e| resolve(spec, e)) {
                Ok(errors) if errors["additionalProperties"]["type"] == "string" => {}
                Ok(errors) => found.push(format!("400 `errors` is not a map of strings: {errors}")),
                Err(e) => found.push(format!("400 answer: {e}")),
            }
        }
    }
    found
}

#[test]
fn every_call_of_the_client_is_in_the_spec() {
    let spec = spec();
    let mut all = Vec::new();
    for endpoint in Endpoint::ALL {
        for problem in problems(&spec, *endpoint) {
            all.push(format!(
                "{} {}: {problem}",
                endpoint.method(),
                endpoint.path_template()
            ));
        }
    }
    assert!(
        all.is_empty(),
        "the client disagrees with the spec:\n{}",
        all.join("\n")
    );
}

#[test]
fn the_client_covers_the_core_of_the_contract() {
    // Every output, input and log path of the spec is one the client calls.
    let spec = spec();
    let called: BTreeSet<(String, &str)> = Endpoint::ALL
        .iter()
        .map(|e| (e.method().to_ascii_lowercase(), e.path_template()))
        .collect();
    let mut missing = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let core = ["/output/", "/input/", "/items/", "/logs/", "/ping"];
        if !core.iter().any(|prefix| path.starts_with(prefix)) {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            if !called.contains(&(method.clone(), path.as_str())) {
                missing.push(format!("{method} {path}"));
            }
        }
    }
    assert!(missing.is_empty(), "not covered by the client: {missing:?}");
}

#[test]
fn the_check_fails_when_client_and_spec_disagree() {
    // A renamed path (as if the client called `/outputs/{type}`).
    let mut renamed = spec();
    let paths = renamed["paths"].as_object_mut().unwrap();
    let item = paths.remove("/output/{type}").unwrap();
    paths.insert("/outputs/{type}".into(), item);
    assert_eq!(
        problems(&renamed, Endpoint::Append),
        ["POST /output/{type} is not in the spec"]
    );

    // One more log level in the spec.
    let mut more = spec();
    let level = more
        .pointer_mut("/paths/~1logs~1{level}/post/parameters/0/schema/enum")
        .and_then(Value::as_array_mut)
        .expect("the enum of {level}");
    level.push("verbose".into());
    assert_eq!(problems(&more, Endpoint::Log).len(), 1);

    // `count` renamed in the schema.
    let mut count = spec();
    let properties = count
        .pointer_mut("/components/schemas/Count/properties")
        .and_then(Value::as_object_mut)
        .unwrap();
    let schema = properties.remove("count").unwrap();
    properties.insert("total".into(), schema);
    assert_eq!(
        problems(&count, Endpoint::Count),
        ["200 answer: no property `data.count`"]
    );

    // `meta.separator` gone from the write request.
    let mut meta = spec();
    meta.pointer_mut("/components/schemas/Meta/properties")
        .and_then(Value::as_object_mut)
        .unwrap()
        .remove("separator");
    assert_eq!(
        problems(&meta, Endpoint::Append),
        ["request body: no property `meta.separator`"]
    );
}
