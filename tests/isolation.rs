//! Runs cannot reach each other, and their disk is bounded, against the real Docker engine,
//! with the `probe` test connector.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cde::engine::Engine;
use cde::model::Manifest;
use cde::model::Network;
use cde::model::{Run, RunRequest, RunStatus};
use cde::Cde;
use common::*;

const PROBE: &str = "probe";
const PROBE_OFFLINE: &str = "probe-offline";

/// cde with the probe registered twice: `probe` (default network) and `probe-offline`
/// (`network: none`), and a network of its own that it removes when dropped.
struct Setup {
    cde: Arc<Cde>,
    network: String,
    _data: tempfile::TempDir,
}

impl Drop for Setup {
    fn drop(&mut self) {
        // Also after a failed assertion; the test's own engine connection belongs to its
        // (now blocked) runtime, so this one connects anew.
        let network = self.network.clone();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let runtime = cde::engine::Docker::connect().await.unwrap();
                if let Err(e) = runtime.remove_networks_named(&network).await {
                    eprintln!("{e}");
                }
            })
        })
        .join()
        .unwrap();
    }
}

async fn setup() -> Setup {
    image("tests/connectors/probe");
    let data = tempfile::tempdir().unwrap();
    let mut config = config(data.path());
    let network = format!(
        "cde-test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    config.run_network = network.clone();
    let cde = Arc::new(open(config).await);
    let manifest = Manifest::load(&root().join("tests/connectors/probe/manifest.yaml")).unwrap();
    cde.register(manifest.clone()).await.unwrap();
    cde.register(Manifest {
        code: PROBE_OFFLINE.into(),
        network: Network::None,
        ..manifest
    })
    .await
    .unwrap();
    Setup {
        cde,
        network,
        _data: data,
    }
}

/// Starts a run in the background; returns its id and its executor.
async fn start(cde: &Arc<Cde>, request: RunRequest) -> (String, tokio::task::JoinHandle<Run>) {
    let run = cde.submit(request).await.unwrap();
    let claimed = cde.claim(run.clone()).await.unwrap().unwrap();
    let executor = tokio::spawn({
        let cde = cde.clone();
        async move { cde.execute(claimed).await.unwrap() }
    });
    (run.id, executor)
}

/// Waits for a log line of the run starting with `prefix`, up to `secs`.
async fn log_line(cde: &Cde, run_id: &str, prefix: &str, secs: u64) -> String {
    wait_until(
        format!("a log line {prefix:?} from run {run_id}"),
        Duration::from_secs(secs),
        || async {
            let logs = cde.store.logs(run_id, 0).await.unwrap();
            if let Some((_, line)) = logs.iter().find(|(_, l)| l.message.starts_with(prefix)) {
                return Ok(line.message.clone());
            }
            let run = cde.store.run(run_id).await.unwrap();
            assert!(
                !run.status.is_finished(),
                "no log line {prefix:?} from run {run:?}: {logs:?}"
            );
            Err(logs)
        },
    )
    .await
}

/// A listening run on `network`; returns its id, executor and `ip:port`.
async fn listener(
    cde: &Arc<Cde>,
    network: Option<Network>,
) -> (String, tokio::task::JoinHandle<Run>, String) {
    let mut request = request(PROBE, &[("MODE", "listen"), ("SECONDS", "90")]);
    request.network = network;
    let (id, executor) = start(cde, request).await;
    let line = log_line(cde, &id, "listening on ", 60).await;
    let address = line.trim_start_matches("listening on ").to_owned();
    assert!(!address.starts_with("None"), "{line}");
    (id, executor, address)
}

async fn stop(cde: &Cde, id: &str, executor: tokio::task::JoinHandle<Run>) {
    cde.cancel(id).await.unwrap();
    let run = executor.await.unwrap();
    assert!(run.status.is_finished(), "{run:?}");
    assert!(leftovers(cde, id).await.is_empty());
}

/// One record the probe wrote.
fn probe_record(run: &Run) -> serde_json::Value {
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let records = records(run);
    assert_eq!(records.len(), 1, "{records:?}");
    records.into_iter().next().unwrap()
}

async fn connect(cde: &Cde, target: &str, network: Option<Network>) -> serde_json::Value {
    let mut request = request(PROBE, &[("MODE", "connect"), ("TARGET", target)]);
    request.network = network;
    probe_record(&cde.run(request).await.unwrap())
}

#[tokio::test]
async fn runs_on_cdes_network_cannot_reach_each_other() {
    let setup = setup().await;
    let cde = &setup.cde;
    let bridge = || Some(Network::Named("bridge".into()));

    // The attack is real on the engine's default bridge.
    let (a, a_executor, address) = listener(cde, bridge()).await;
    let reached = connect(cde, &address, bridge()).await;
    assert_eq!(reached["reached"], true, "{reached}");
    assert_eq!(reached["received"], "the-secret", "{reached}");
    stop(cde, &a, a_executor).await;

    // On cde's network (the default) it fails.
    let (a, a_executor, address) = listener(cde, None).await;
    let blocked = connect(cde, &address, None).await;
    assert_eq!(blocked["reached"], false, "{blocked}");
    assert_eq!(blocked["received"], "", "{blocked}");
    let runtime = cde.engine().await.unwrap();
    assert!(runtime.network_exists(&setup.network).await.unwrap());

    // So does it without any network, where the Container API still takes the record.
    let offline = cde
        .run(request(
            PROBE_OFFLINE,
            &[("MODE", "none"), ("TARGET", address.as_str())],
        ))
        .await
        .unwrap();
    let offline = probe_record(&offline);
    assert_eq!(offline["interfaces"], "lo", "{offline}");
    assert_eq!(offline["routes"], 0, "{offline}");
    assert_eq!(offline["reached"], false, "{offline}");
    stop(cde, &a, a_executor).await;

    // The run request can take a run off the network too.
    let mut offline = request(PROBE, &[("MODE", "none")]);
    offline.network = Some(Network::None);
    let offline = probe_record(&cde.run(offline).await.unwrap());
    assert_eq!(offline["interfaces"], "lo", "{offline}");
    // While a run on cde's network has one.
    let online = probe_record(&cde.run(request(PROBE, &[("MODE", "none")])).await.unwrap());
    assert_ne!(online["interfaces"], "lo", "{online}");
}

#[tokio::test]
async fn a_run_on_a_missing_network_fails_naming_it() {
    let setup = setup().await;
    let mut request = request(PROBE, &[("MODE", "none")]);
    request.network = Some(Network::Named("cde-test-no-such-network".into()));
    let run = setup.cde.run(request).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let reason = run.reason.unwrap();
    assert!(
        reason.contains("network") && reason.contains("cde-test-no-such-network"),
        "{reason}"
    );
}

#[tokio::test]
async fn runs_creating_cdes_network_at_once_agree_on_one() {
    let (one, two) = (
        cde::engine::Docker::connect().await.unwrap(),
        cde::engine::Docker::connect().await.unwrap(),
    );
    for _ in 0..5 {
        let name = format!(
            "cde-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let (first, second) = tokio::join!(
            one.ensure_isolated_network(&name),
            two.ensure_isolated_network(&name)
        );
        let left = one.networks_named(&name).await.unwrap().len();
        let again = one.ensure_isolated_network(&name).await;
        one.remove_networks_named(&name).await.unwrap();
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first, second);
        assert_eq!(first, again.unwrap());
        assert_eq!(left, 1, "one network of that name is left");
        assert!(!one.network_exists(&name).await.unwrap());
    }
}

async fn fill(dir: Option<&str>) {
    let setup = setup().await;
    let mut options = vec![("MODE", "fill"), ("FILL_MAX_MB", "2048")];
    if let Some(dir) = dir {
        options.push(("FILL_DIR", dir));
    }
    let mut request = request(PROBE, &options);
    request.limits.disk_mb = Some(64);
    request.limits.timeout_secs = Some(300);
    let begun = Instant::now();
    let run = tokio::time::timeout(Duration::from_secs(120), setup.cde.run(request))
        .await
        .expect("the run ends well before its timeout")
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert_eq!(run.reason.as_deref(), Some("disk limit exceeded (64 MiB)"));
    assert!(begun.elapsed() < Duration::from_secs(120));
    assert!(leftovers(&setup.cde, &run.id).await.is_empty());
}

#[tokio::test]
async fn filling_the_work_directory_past_the_disk_limit_fails_the_run() {
    fill(None).await;
}

#[tokio::test]
async fn filling_the_containers_own_layer_past_the_disk_limit_fails_the_run() {
    fill(Some("/tmp")).await;
}
