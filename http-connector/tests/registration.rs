//! What the orchestrator does at registration: build a definition, parse it, list its
//! inputs; through the public API only.

use http_connector::{parse, Auth, Definition, Input, InputKind};
use serde_json::json;

const MAILCHIMP: &str = include_str!("fixtures/mailchimp-members.json");

fn definition(spec: serde_json::Value, auth: Auth) -> Definition {
    serde_json::from_value(json!({
        "dialect": "aep", "spec": spec, "auth": serde_json::to_value(auth).unwrap(), "kind": "data-source"
    }))
    .unwrap()
}

#[test]
fn the_mailchimp_fixture_registers_with_its_inputs() {
    let connector = parse(&definition(json!(MAILCHIMP), Auth::Basic)).unwrap();
    let inputs = connector.inputs();
    let by_name = |name: &str| -> &Input { inputs.iter().find(|i| i.name == name).unwrap() };
    assert_eq!(
        by_name("listId").description.as_deref(),
        Some("listId for which members need to fetch.")
    );
    assert!(by_name("listId").required);
    assert!(by_name("domain").required);
    assert_eq!(by_name("domain").kind, InputKind::String);
    assert!(!by_name("base_url").required);
    assert!(!by_name("schedule_start").required);
    assert!(by_name("password").secret);
    assert_eq!(
        serde_json::to_value(by_name("schedule_start")).unwrap()["kind"],
        "string"
    );
}

#[test]
fn a_bad_spec_is_refused_at_registration_with_its_json_path() {
    let broken = MAILCHIMP.replace("\"OFFSET\"", "\"SCROLL\"");
    let err = parse(&definition(json!(broken), Auth::None)).unwrap_err();
    assert_eq!(err.path, "sourceSpec.attributes.paginationParams.type");
    assert!(err.to_string().contains("SCROLL"), "{err}");

    let err = parse(&definition(
        json!(MAILCHIMP),
        Auth::ApiKey {
            header: "bad header".into(),
        },
    ))
    .unwrap_err();
    assert_eq!(err.path, "auth.header");
}
