//! An engine that cannot serve stops every command that needs one before it does anything:
//! a socket that is missing, not a socket, or refused, and an engine too old. Each is one
//! line on standard error saying what to do, exit status 2, and nothing created: no run, no
//! pipeline run, no server. The real `cde` binary, as a process with its own data directory
//! and `DOCKER_HOST`; no Docker engine is needed (the old one is a fake, below).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::process::Command;

/// Far more than a debug build of `cde` takes to start and fail on a busy machine.
const DEADLINE: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A data directory with the `behave` connector and a pipeline of it, and room for sockets.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    async fn new() -> Self {
        let scratch = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        // Straight into the store: registering a connector runs its health check on an engine.
        let config = cde::Config {
            data_dir: scratch.data_dir(),
            ..cde::Config::default()
        };
        let cde = cde::Cde::open(config).await.unwrap();
        let manifest =
            cde::model::Manifest::load(&root().join("tests/connectors/behave/manifest.yaml"))
                .unwrap();
        cde.store.register(&manifest).await.unwrap();
        drop(cde);
        let pipeline = scratch.path("pipeline.yaml");
        std::fs::write(
            &pipeline,
            "name: nightly\nsources:\n  - connector: behave\n",
        )
        .unwrap();
        // Saving a pipeline needs no engine.
        let saved = scratch
            .cde(
                "unix:///nowhere.sock",
                &["pipeline", "create"],
                Some(&pipeline),
            )
            .await;
        assert!(saved.status.success(), "{}", text(&saved.stderr));
        scratch
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `cde <args> [file]` with this data directory and `docker_host`, run to its end (killed
    /// at the deadline).
    async fn cde(&self, docker_host: &str, args: &[&str], file: Option<&Path>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cde"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CDE_") {
                command.env_remove(key);
            }
        }
        command
            .args(args)
            .args(file)
            .env("CDE_DATA_DIR", self.data_dir())
            // A server that did start would not take a port another one has.
            .env("CDE_LISTEN", "127.0.0.1:0")
            .env("DOCKER_HOST", docker_host)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().unwrap();
        match tokio::time::timeout(DEADLINE, child.wait_with_output()).await {
            Ok(output) => output.unwrap(),
            // Dropping the wait killed the child.
            Err(_) => panic!("cde {args:?} did not end within {DEADLINE:?}"),
        }
    }

    /// The JSON `cde <args> --json` prints, which must succeed without an engine.
    async fn json(&self, docker_host: &str, args: &[&str]) -> Value {
        let output = self
            .cde(docker_host, &[args, &["--json"]].concat(), None)
            .await;
        assert!(
            output.status.success(),
            "cde {args:?} without an engine: {}",
            text(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Every command that needs the engine fails with one line containing `expected` (each
    /// part), exit status 2, and leaves nothing behind; those that do not need it work.
    async fn assert_refused(&self, docker_host: &str, expected: &[&str]) {
        let sample = root().join("sample-connectors/python/manifest.yaml");
        let commands: [(&[&str], Option<&Path>); 5] = [
            (&["server"], None),
            (&["run", "behave"], None),
            (&["pipeline", "run", "nightly"], None),
            (&["demo"], None),
            (&["connector", "register"], Some(&sample)),
        ];
        for (args, file) in commands {
            let output = self.cde(docker_host, args, file).await;
            let stderr = text(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "cde {args:?}: {stderr}");
            assert_eq!(
                stderr.lines().count(),
                1,
                "cde {args:?}: one line on standard error: {stderr}"
            );
            assert!(stderr.starts_with("error: "), "cde {args:?}: {stderr}");
            for part in expected {
                assert!(stderr.contains(part), "cde {args:?}: {part:?} in {stderr}");
            }
            // The server never announced itself (nor did a run).
            assert_eq!(text(&output.stdout), "", "cde {args:?}: standard output");
        }
        assert_eq!(self.json(docker_host, &["runs"]).await, json!([]));
        assert_eq!(
            self.json(docker_host, &["pipeline", "runs", "nightly"])
                .await,
            json!([])
        );
        let connectors = self.json(docker_host, &["connector", "list"]).await;
        let codes: Vec<&str> = connectors
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["behave"], "only the connector put in the store");
        let runs_dir = self.data_dir().join("runs");
        let run_dirs = std::fs::read_dir(&runs_dir).map_or(0, |entries| entries.count());
        assert_eq!(run_dirs, 0, "run directories in {}", runs_dir.display());
        assert!(
            !self.data_dir().join("api-token").exists(),
            "the server created its API token"
        );
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn unix(path: &Path) -> String {
    format!("unix://{}", path.display())
}

#[tokio::test]
async fn a_missing_socket_stops_every_command_that_needs_the_engine() {
    let scratch = Scratch::new().await;
    let host = unix(&scratch.path("nope.sock"));
    scratch
        .assert_refused(
            &host,
            &[
                &format!("cannot reach the Docker engine at {host}: no such socket; "),
                "start Docker or set DOCKER_HOST to the engine's socket",
            ],
        )
        .await;
}

#[tokio::test]
async fn a_path_that_is_not_a_socket_is_named_so() {
    let scratch = Scratch::new().await;
    let file = scratch.path("docker.sock");
    std::fs::write(&file, "").unwrap();
    let host = unix(&file);
    scratch
        .assert_refused(
            &host,
            &[
                &format!("cannot reach the Docker engine at {host}: not a socket; "),
                "set DOCKER_HOST to the Docker engine's socket",
            ],
        )
        .await;
}

#[tokio::test]
async fn a_socket_nobody_listens_on_is_refused() {
    let scratch = Scratch::new().await;
    let socket = scratch.path("closed.sock");
    // Bound, then closed: the socket file stays and connecting to it is refused.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let host = unix(&socket);
    scratch
        .assert_refused(
            &host,
            &[
                &format!("cannot reach the Docker engine at {host}: connection refused"),
                "start Docker or set DOCKER_HOST to the engine's socket",
            ],
        )
        .await;
}

#[tokio::test]
async fn an_engine_too_old_is_named_with_both_versions() {
    let scratch = Scratch::new().await;
    let socket = scratch.path("old.sock");
    let asked = old_engine(&socket);
    let host = unix(&socket);
    scratch
        .assert_refused(
            &host,
            &[&format!(
                "error: the Docker engine at {host} speaks API 1.24; cde needs API 1.30 or newer (Docker 17.06+): upgrade the engine"
            )],
        )
        .await;
    // It was asked its version, and nothing else: nothing was created on it either.
    let asked = asked.lock().unwrap().clone();
    assert!(!asked.is_empty());
    for path in &asked {
        assert!(
            path.ends_with("/version") || path.ends_with("/_ping"),
            "the engine was asked {path}: {asked:?}"
        );
    }
}

/// A Docker 1.12 engine (API 1.24) on `socket`, as far as `/_ping` and `/version` go, with
/// or without a version prefix; anything else is a 404. Records the paths it was asked.
fn old_engine(socket: &Path) -> Arc<Mutex<Vec<String>>> {
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let recorded = asked.clone();
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let recorded = recorded.clone();
        async move {
            let path = uri.path().to_owned();
            recorded.lock().unwrap().push(path.clone());
            let answer: Response = if path.ends_with("/_ping") {
                "OK".into_response()
            } else if path.ends_with("/version") {
                Json(json!({
                    "Version": "1.12.6",
                    "ApiVersion": "1.24",
                    "MinAPIVersion": "1.12",
                    "GitCommit": "78d1802",
                    "GoVersion": "go1.6.4",
                    "Os": "linux",
                    "Arch": "amd64",
                    "KernelVersion": "4.4.0",
                }))
                .into_response()
            } else {
                (
                    StatusCode::NOT_FOUND,
                    Json(json!({"message": format!("page not found: {path}")})),
                )
                    .into_response()
            };
            answer
        }
    });
    // Ends with the test's runtime.
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    asked
}
