//! Connections: checked before they are saved (or saved anyway), their passwords sealed at
//! rest and kept when an edit leaves them out, discovered by a real run, reused by a
//! pipeline whose steps name them.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use cde::model::{Manifest, SaveConnection};
use cde::options::MASK;
use cde::Error;
use common::*;
use serde_json::json;

const SECRET: &str = "sk-live-4f9a1c0e77d2b3";

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn save(values: BTreeMap<String, String>, save_anyway: bool) -> SaveConnection {
    SaveConnection {
        connector: "shop-products".into(),
        values,
        save_anyway,
    }
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test]
async fn connections_are_checked_sealed_kept_on_edit_discovered_and_used_by_pipelines() {
    image("tests/connectors/feed");
    let data = tempfile::tempdir().unwrap();
    let cde = open(config(data.path())).await;
    let manifest = json!({
        "code": "shop-products", "label": "Shop products", "type": "data-source",
        "image": "cde-test/feed:latest", "command": "python3", "arguments": ["main.py", "source"],
        "health_check": "--health-check",
        "options": [{"name": "ROWS", "field_type": "textarea", "required": true},
                    {"name": "API_KEY", "field_type": "password"}],
    });
    cde.register(Manifest::parse(&manifest.to_string(), true).unwrap())
        .await
        .unwrap();

    // A check that fails names the option; a save it fails is refused unless on purpose.
    let check = cde
        .check_connection("shop-products", &values(&[]))
        .await
        .unwrap();
    assert!(!check.ok);
    assert_eq!(check.option.as_deref(), Some("ROWS"));
    assert!(check.reason.unwrap().contains("required"));
    let refused = cde
        .save_connection("shop", save(values(&[("API_KEY", SECRET)]), false))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::InvalidOption { option, .. } if option == "ROWS"),
        "{refused}"
    );
    assert!(matches!(
        cde.connection("shop").await,
        Err(Error::NotFound { .. })
    ));
    let anyway = cde
        .save_connection("draft", save(values(&[]), true))
        .await
        .unwrap();
    assert!(!anyway.check.unwrap().ok);
    assert!(matches!(
        cde.save_connection("Not Kebab", save(values(&[("ROWS", "[]")]), false))
            .await,
        Err(Error::InvalidConfig(_))
    ));

    // Saved: the password masked in answers, sealed in the store.
    let rows = r#"[{"id": "1", "title": "Hat", "price": "9"}]"#;
    let saved = cde
        .save_connection(
            "shop",
            save(values(&[("ROWS", rows), ("API_KEY", SECRET)]), false),
        )
        .await
        .unwrap();
    assert!(saved.check.as_ref().unwrap().ok);
    assert_eq!(saved.values["API_KEY"], MASK);

    // Discovered by a real run: its columns and rows kept with the connection.
    let discovered = cde.discover("shop").await.unwrap();
    let discovery = discovered.discovery.clone().unwrap();
    assert_eq!(discovery.columns, ["id", "price", "title"]);
    assert_eq!(
        discovery.rows,
        [json!({"id": "1", "price": "9", "title": "Hat"})]
    );
    assert_eq!(
        cde.connection("shop").await.unwrap().discovery,
        Some(discovery.clone())
    );

    // An edit that leaves the password out (or masked) keeps it; the discovery stays
    // while the values are the same, and goes when they change.
    for kept in [
        values(&[("ROWS", rows)]),
        values(&[("ROWS", rows), ("API_KEY", MASK)]),
    ] {
        let edited = cde
            .save_connection("shop", save(kept, false))
            .await
            .unwrap();
        assert_eq!(edited.discovery, Some(discovery.clone()));
        let stored = cde.store.connection("shop").await.unwrap();
        assert_eq!(stored.values["API_KEY"], SECRET);
    }
    let two = r#"[{"id": "1", "title": "Hat"}, {"id": "2", "title": "Scarf"}]"#;
    let changed = cde
        .save_connection("shop", save(values(&[("ROWS", two)]), false))
        .await
        .unwrap();
    assert_eq!(changed.discovery, None);
    assert_eq!(
        cde.store.connection("shop").await.unwrap().values["API_KEY"],
        SECRET
    );

    // A pipeline whose source names the connection runs with its values as they are now,
    // the step's own options first.
    let pipeline = cde::model::Pipeline::parse(
        &json!({"name": "from-connection", "sources": [{"connection": "shop"}]}).to_string(),
        true,
    )
    .unwrap();
    let stored = cde.save_pipeline(&pipeline).await.unwrap();
    assert_eq!(stored.sources, pipeline.sources, "stored as a reference");
    let run = cde.run_pipeline("from-connection", "test").await.unwrap();
    assert_eq!(run.status, cde::model::PipelineStatus::Succeeded, "{run:?}");
    let version = cde
        .dataset_page(
            &cde::dataset::pipeline_dataset("from-connection"),
            run.dataset_version.unwrap(),
            0,
            10,
        )
        .await
        .unwrap();
    assert_eq!(version.records.len(), 2, "{:?}", version.records);
    let unknown = cde::model::Pipeline::parse(
        &json!({"name": "dangling", "sources": [{"connection": "nope"}]}).to_string(),
        true,
    )
    .unwrap();
    let refused = cde.save_pipeline(&unknown).await.unwrap_err().to_string();
    assert!(
        refused.contains("sources[0] (connection nope)"),
        "{refused}"
    );

    // Neither saving, nor discovering, nor the pipeline's run wrote the password out.
    assert_eq!(
        files_containing(data.path(), SECRET.as_bytes()),
        Vec::<String>::new(),
        "the password reached a file unsealed"
    );

    // Listed masked; deleted.
    let listed = cde.connections().await.unwrap();
    assert_eq!(
        listed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["draft", "shop"]
    );
    assert!(listed
        .iter()
        .all(|c| c.values.get("API_KEY").is_none_or(|v| v == MASK)));
    cde.delete_connection("draft").await.unwrap();
    assert!(matches!(
        cde.delete_connection("draft").await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_discovery_stops_its_source_once_it_has_the_rows_it_keeps() {
    image("tests/connectors/behave");
    let data = tempfile::tempdir().unwrap();
    let cde = open(config(data.path())).await;
    cde.register_file(&behave_manifest()).await.unwrap();
    // 25 records at once, then a minute's sleep before 25 more.
    let slow = values(&[("MODE", "sleep"), ("SECONDS", "60"), ("RECORDS", "25")]);
    cde.save_connection(
        "slow",
        SaveConnection {
            connector: BEHAVE.into(),
            values: slow,
            save_anyway: false,
        },
    )
    .await
    .unwrap();
    let begun = std::time::Instant::now();
    let discovered = cde.discover("slow").await.unwrap();
    let took = begun.elapsed();
    assert!(
        took < std::time::Duration::from_secs(45),
        "the source was not stopped: {took:?}"
    );
    let discovery = discovered.discovery.unwrap();
    assert_eq!(discovery.rows.len(), cde::connection::DISCOVERED_ROWS);
    assert_eq!(discovery.columns, ["id", "n"]);
    let run = cde.store.run(&discovery.run_id).await.unwrap();
    assert_eq!(run.status, cde::model::RunStatus::Cancelled, "{run:?}");
}
