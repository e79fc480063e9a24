//! Incremental state across runs, on the real engine with the `behave` connector
//! (`STATE=count`): a success keeps what the run put, a failure moves nothing, and the key
//! follows the connector's non-secret options or the pipeline step.

mod common;

use cde::model::{Run, RunStatus};
use cde::Cde;
use common::*;

async fn behave(data: &std::path::Path) -> Cde {
    behave_image();
    let cde = open(config(data)).await;
    cde.register_file(&behave_manifest()).await.unwrap();
    cde
}

/// What the run read as its previous count (its `state` record).
fn previous(run: &Run) -> i64 {
    let records = records(run);
    let state = records
        .iter()
        .find(|r| r["id"] == "state")
        .unwrap_or_else(|| panic!("no state record in {records:?} of {run:?}"));
    match &state["previous"] {
        serde_json::Value::String(n) => n.parse().unwrap(),
        n => n.as_i64().unwrap(),
    }
}

async fn counted(cde: &Cde, options: &[(&str, &str)]) -> Run {
    let mut all = vec![("STATE", "count"), ("RECORDS", "0")];
    all.extend_from_slice(options);
    cde.run(request(BEHAVE, &all)).await.unwrap()
}

#[tokio::test]
async fn a_success_keeps_the_state_and_a_failure_moves_nothing() {
    let data = tempfile::tempdir().unwrap();
    let cde = behave(data.path()).await;

    let first = counted(&cde, &[("TOKEN", "t1")]).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    assert_eq!(previous(&first), 0);
    // A changed secret keeps the key; the state went on.
    let second = counted(&cde, &[("TOKEN", "t2")]).await;
    assert_eq!(previous(&second), 1, "{second:?}");
    let key = second.state_key.clone().unwrap();
    assert_eq!(first.state_key.as_deref(), Some(key.as_str()));
    assert_eq!(
        cde.store.state(&key).await.unwrap().as_deref(),
        Some(r#"{"n":2}"#)
    );

    // Other non-secret options: another key, starting afresh.
    let tagged = counted(&cde, &[("TAG", "other")]).await;
    assert_eq!(previous(&tagged), 0, "{tagged:?}");
    assert_ne!(tagged.state_key, first.state_key);

    // A failed run put n=1 under its own key before failing: kept for nobody.
    for _ in 0..2 {
        let failed = counted(&cde, &[("MODE", "fail")]).await;
        assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
        assert_eq!(previous(&failed), 0, "the failure before did not commit");
        let failed_key = failed.state_key.unwrap();
        assert_eq!(cde.store.state(&failed_key).await.unwrap(), None);
    }
    assert_eq!(
        cde.store.state(&key).await.unwrap().as_deref(),
        Some(r#"{"n":2}"#)
    );
}
