//! The committed `openapi/container-api.json` is exactly what the code generates.

use std::path::PathBuf;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/container-api.json")
}

#[test]
fn committed_spec_is_fresh() {
    let generated = container_api::openapi_json();
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale; regenerate it with\n  \
         cargo run -p container-api -- openapi > openapi/container-api.json\n\
         (or UPDATE_OPENAPI=1 cargo test -p container-api --test openapi)",
        path.display()
    );
}

#[test]
fn every_route_of_the_contract_is_documented() {
    let spec = container_api::openapi();
    let mut operations: Vec<String> = spec
        .paths
        .paths
        .iter()
        .flat_map(|(path, item)| {
            [
                ("get", item.get.is_some()),
                ("post", item.post.is_some()),
                ("put", item.put.is_some()),
            ]
            .into_iter()
            .filter(|(_, present)| *present)
            .map(move |(method, _)| format!("{method} {path}"))
        })
        .collect();
    operations.sort();
    assert_eq!(
        operations,
        [
            "get /csa-classifications",
            "get /input/{type}/next",
            "get /input/{type}/next_batch",
            "get /input/{type}/restart",
            "get /items/{type}/count",
            "get /openapi.json",
            "get /ping",
            "get /processes/pending",
            "get /processes/{id}",
            "get /state",
            "post /logs/{level}",
            "post /output/{type}",
            "post /output/{type}/close",
            "post /storage/internal",
            "post /store/to-transport",
            "put /state",
        ]
    );
}

#[test]
fn documented_path_values_are_the_accepted_ones() {
    let spec: serde_json::Value = serde_json::from_str(&container_api::openapi_json()).unwrap();
    let values = |path: &str, method: &str| -> Vec<String> {
        let parameter = &spec["paths"][path][method]["parameters"][0];
        serde_json::from_value(parameter["schema"]["enum"].clone()).unwrap()
    };
    assert_eq!(values("/logs/{level}", "post"), container_api::LOG_LEVELS);
    assert_eq!(values("/output/{type}", "post"), ["output", "feedback"]);
    for path in [
        "/input/{type}/next",
        "/input/{type}/next_batch",
        "/input/{type}/restart",
        "/items/{type}/count",
    ] {
        assert_eq!(
            values(path, "get"),
            ["input", "full", "new", "modified", "unchanged", "deleted"],
            "{path}"
        );
    }
}
