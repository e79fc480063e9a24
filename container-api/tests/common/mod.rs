//! The real server, in process on 127.0.0.1:0, driven over HTTP.
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};

use container_api::{Config, Server, Summary};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestServer {
    pub base: String,
    pub dir: TempDir,
    pub client: reqwest::Client,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<anyhow::Result<Summary>>,
}

pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// `configure` may change the config and prepare the run dir (which exists by then).
pub async fn start_with(configure: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("run"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    std::fs::create_dir_all(&config.run_dir).unwrap();
    configure(&mut config);
    let server = Server::bind(config).await.unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    TestServer {
        base,
        dir,
        client: reqwest::Client::new(),
        stop,
        handle,
    }
}

/// A server whose run has the given input streams (`(type, lines)`).
pub async fn start_with_inputs(inputs: &[(&str, &str)]) -> TestServer {
    start_with(|config| write_inputs(&config.run_dir, inputs)).await
}

pub fn write_inputs(run_dir: &Path, inputs: &[(&str, &str)]) {
    let dir = run_dir.join("input");
    std::fs::create_dir_all(&dir).unwrap();
    for (kind, text) in inputs {
        std::fs::write(dir.join(format!("{kind}.jsonl")), text).unwrap();
    }
}

impl TestServer {
    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        into_parts(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        into_parts(response).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        into_parts(request.send().await.unwrap()).await
    }

    /// Asserts the server still answers and writes after whatever happened.
    pub async fn assert_still_serving(&self) {
        assert_eq!(
            self.get("/ping").await,
            (StatusCode::OK, json!({"message": "pong"}))
        );
        assert_eq!(
            self.post("/logs/debug", json!({"message": "still here"}))
                .await,
            written()
        );
    }

    pub async fn shutdown(self) -> (Summary, TempDir) {
        self.stop.send(()).unwrap();
        let summary = self.handle.await.unwrap().unwrap();
        (summary, self.dir)
    }
}

/// Status and JSON body; an empty body (204) is `Value::Null`.
pub async fn into_parts(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    if status == StatusCode::NO_CONTENT {
        assert_eq!(response.bytes().await.unwrap().len(), 0);
        return (status, Value::Null);
    }
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/json", "status {status}");
    (status, response.json().await.unwrap())
}

pub fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn output_path(run_dir: &Path, kind: &str) -> PathBuf {
    run_dir.join("output").join(format!("{kind}.jsonl"))
}

pub fn validation_failed(errors: Value) -> Value {
    json!({"message": "Validation failed", "errors": errors})
}

pub fn written() -> (StatusCode, Value) {
    (
        StatusCode::CREATED,
        json!({"message": "Written successfully."}),
    )
}

/// The real `container-api` binary, started on a free port of 127.0.0.1; killed
/// when dropped unless [`Sidecar::stop`] ended it.
pub struct Sidecar {
    child: std::process::Child,
    stderr: std::fs::File,
    pub addr: std::net::SocketAddr,
}

impl Sidecar {
    pub fn start(run_dir: &Path, extra_args: &[&str]) -> Self {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        // A file rather than a pipe, so a chatty server never blocks on a full pipe.
        let stderr = tempfile::tempfile().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_container-api"))
            .args(["--listen", "127.0.0.1:0", "--run-dir"])
            .arg(run_dir)
            .args(extra_args)
            .stdout(Stdio::piped())
            .stderr(stderr.try_clone().unwrap())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        stdout.read_line(&mut ready).unwrap();
        let addr = ready
            .strip_prefix("container-api listening on ")
            .unwrap_or_else(|| panic!("unexpected ready line {ready:?}"))
            .trim_end()
            .parse()
            .unwrap();
        Self {
            child,
            stderr,
            addr,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM, then waits; returns whether it exited 0 and what it wrote to stderr.
    pub fn stop(mut self) -> (bool, String) {
        use std::io::{Read, Seek};
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exited = self.child.wait().unwrap();
        let mut stderr = String::new();
        self.stderr.rewind().unwrap();
        self.stderr.read_to_string(&mut stderr).unwrap();
        (exited.success(), stderr)
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
