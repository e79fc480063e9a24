//! Helpers shared by the end-to-end test files.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cde::model::{Run, RunRequest};
use cde::{Cde, Config};
use sqlx::Connection;

pub mod server;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub const SAMPLE: &str = "sample-python-source";
pub const BEHAVE: &str = "behave";

pub fn sample_manifest() -> PathBuf {
    root().join("sample-connectors/python/manifest.yaml")
}

pub fn behave_manifest() -> PathBuf {
    root().join("tests/connectors/behave/manifest.yaml")
}

/// Builds a connector image once per test binary (a cached build product, like base images).
pub fn image(dir: &str) {
    static BUILT: OnceLock<Mutex<HashMap<String, ()>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if !built.contains_key(dir) {
        cde::demo::build_image(dir).expect("connector image builds");
        built.insert(dir.to_owned(), ());
    }
}

pub fn sample_image() {
    image("sample-connectors/python");
}

pub fn behave_image() {
    image("tests/connectors/behave");
}

/// The network the tests' runs join, apart from a real installation's (`.ci/run` removes it).
pub const TEST_NETWORK: &str = "cde-test-runs";

/// The static cde executable runs mount (the test binary running is not one).
pub fn executable() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cde"))
}

pub fn config(data_dir: &Path) -> Config {
    Config {
        data_dir: data_dir.to_path_buf(),
        executable: Some(executable()),
        run_network: TEST_NETWORK.into(),
        stop_grace_secs: 2,
        run_lease_secs: 3,
        // A management API over this configuration binds a free port.
        listen: "127.0.0.1:0".into(),
        ..Config::default()
    }
}

pub async fn open(config: Config) -> Cde {
    Cde::open(config).await.unwrap()
}

pub fn request(connector: &str, options: &[(&str, &str)]) -> RunRequest {
    RunRequest {
        connector: connector.to_owned(),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    }
}

/// Containers of a run still on the engine (there must be none once it is recorded).
pub async fn leftovers(cde: &Cde, run_id: &str) -> Vec<String> {
    let runtime = cde.engine().await.unwrap();
    runtime
        .containers_labelled(&format!("cde.run={run_id}"))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// Output records of a run.
pub fn records(run: &Run) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.output_path())
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// How often the waiting helpers look again.
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Looks at `check` every 100 ms until it answers `Ok`, for up to `timeout`; then gives its
/// last `Err`, what it saw instead. The one polling loop of the tests: a test waits on a
/// condition with a deadline, never on a fixed sleep.
pub async fn poll_until<T, S, F, Fut>(timeout: std::time::Duration, mut check: F) -> Result<T, S>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, S>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let seen = check().await;
        if seen.is_ok() || std::time::Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `GET <url>/health` until it answers with success, for up to `timeout`; else the
/// last status or error seen.
pub async fn answers_health(
    client: &reqwest::Client,
    url: &str,
    timeout: std::time::Duration,
) -> Result<(), String> {
    let health = format!("{url}/health");
    poll_until(timeout, || async {
        match client.get(&health).send().await {
            Ok(answer) if answer.status().is_success() => Ok(()),
            Ok(answer) => Err(answer.status().to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

/// [`poll_until`], failing the test when `timeout` passes first: the message names `what`
/// was awaited and shows what `check` saw last.
pub async fn wait_until<T, S, F, Fut>(
    what: impl std::fmt::Display,
    timeout: std::time::Duration,
    check: F,
) -> T
where
    S: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, S>>,
{
    match poll_until(timeout, check).await {
        Ok(value) => value,
        Err(seen) => panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen:#?}"),
    }
}

/// Waits until the run reaches `status` (or any finished one); fails the test after `secs`.
pub async fn wait_for(cde: &Cde, run_id: &str, status: cde::model::RunStatus, secs: u64) -> Run {
    wait_until(
        format!("run {run_id} to be {status} or finished"),
        std::time::Duration::from_secs(secs),
        || async {
            let run = cde.store.run(run_id).await.unwrap();
            if run.status == status || run.status.is_finished() {
                Ok(run)
            } else {
                Err(run)
            }
        },
    )
    .await
}

/// The lease held on a run (`Leased::Run`) or a pipeline run.
pub async fn lease(cde: &Cde, on: cde::model::Leased, id: &str) -> cde::model::Lease {
    cde.store
        .lease(on, id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{on:?} {id} holds no lease"))
}

/// A fresh PostgreSQL database from `CDE_TEST_DATABASE_URL`, dropped on drop; `None` (with a note) outside CI when unset.
pub struct Postgres {
    admin_url: String,
    name: String,
}

impl Postgres {
    pub async fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("CDE_TEST_DATABASE_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set CDE_TEST_DATABASE_URL"
            );
            eprintln!("PostgreSQL part skipped: set CDE_TEST_DATABASE_URL (see .ci/run)");
            return None;
        };
        let name = format!("cde_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        Some(Self { admin_url, name })
    }

    pub fn url(&self) -> String {
        let base = self.admin_url.rsplit_once('/').unwrap().0;
        format!("{base}/{}", self.name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
            })
        })
        .join()
        .unwrap();
    }
}

/// The local Python base image (made once by `scripts/make-base-image.sh`, then cached).
pub async fn python_image() -> String {
    let script = root().join("scripts/make-base-image.sh");
    let making = tokio::process::Command::new(&script)
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(600), making)
        .await
        .expect("the base image is made within 10 minutes")
        .expect("make-base-image.sh runs");
    assert!(out.status.success(), "make-base-image.sh failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().last().expect("a tag").trim().to_owned()
}

/// What a test made on the engine itself (containers, networks), named and labelled so
/// that it all goes when the test ends, failed or not.
pub struct Labelled {
    kind: String,
    run: String,
}

impl Labelled {
    pub fn new(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            run: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        }
    }

    /// `cde.test.run=<run>`, for `--label`.
    pub fn label(&self) -> String {
        format!("cde.test.run={}", self.run)
    }

    /// A name of this test's own: `cde-test-<kind>-<what>-<run>`.
    pub fn name(&self, what: &str) -> String {
        format!("cde-test-{}-{what}-{}", self.kind, self.run)
    }
}

impl Drop for Labelled {
    fn drop(&mut self) {
        let docker = |args: &[&str]| {
            std::process::Command::new("docker")
                .args(args)
                .output()
                .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
                .unwrap_or_default()
        };
        let filter = format!("label={}", self.label());
        for id in docker(&["ps", "-aq", "--filter", &filter]).split_whitespace() {
            docker(&["rm", "-f", id]);
        }
        for id in docker(&["network", "ls", "-q", "--filter", &filter]).split_whitespace() {
            docker(&["network", "rm", id]);
        }
    }
}
