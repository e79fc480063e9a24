//! `cde server` as a process of the test, on a port of its choosing.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::*;

pub const TOKEN: &str = "server-test-token";

pub struct Server {
    pub child: Child,
    pub url: String,
    /// Kept open: the server's standard output goes nowhere else.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts `cde server` on a port of its choosing and reads the address it announces.
    pub async fn start(data_dir: &std::path::Path) -> Self {
        Self::start_with(data_dir, &[]).await
    }

    /// [`Server::start`] with more environment variables.
    pub async fn start_with(data_dir: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("server.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cde"))
            .env("CDE_RUN_NETWORK", TEST_NETWORK)
            .arg("server")
            .env("CDE_DATA_DIR", data_dir)
            .env("CDE_LISTEN", "127.0.0.1:0")
            .env("CDE_API_TOKEN", TOKEN)
            .env("CDE_MAX_CONCURRENT_RUNS", "6")
            .env("CDE_STOP_GRACE_SECS", "2")
            .env("CDE_RUN_LEASE_SECS", "3")
            .env("RUST_LOG", "cde=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // Ends at the announcement, or at end of file if the server exits first.
        stdout.read_line(&mut line).unwrap();
        let Some(url) = line.trim().strip_prefix("cde server listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "cde server did not announce its address ({line:?}): {}",
                std::fs::read_to_string(data_dir.join("server.log")).unwrap()
            );
        };
        let server = Self {
            child,
            url: url.to_owned(),
            _stdout: stdout,
        };
        let client = reqwest::Client::new();
        let health = format!("{}/health", server.url);
        let answered = answers_health(&client, &server.url, Duration::from_secs(20)).await;
        if let Err(last) = answered {
            panic!(
                "cde server did not answer on {health} within 20 s ({last}): {}",
                std::fs::read_to_string(data_dir.join("server.log")).unwrap()
            );
        }
        server
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    pub async fn get(&self, path: &str) -> Value {
        let answer = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "GET {path}: {}",
            answer.status()
        );
        answer.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let answer = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "POST {path}: {}",
            answer.status()
        );
        answer.json().await.unwrap()
    }

    /// Waits until run `id`'s status is `done`; fails the test after `secs`.
    pub async fn wait_for_run(&self, id: &str, done: impl Fn(&str) -> bool, secs: u64) -> Value {
        wait_until(
            format!("run {id} to move on"),
            Duration::from_secs(secs),
            || async {
                let run = self.get(&format!("/runs/{id}")).await;
                match done(run["status"].as_str().unwrap()) {
                    true => Ok(run),
                    false => Err(run),
                }
            },
        )
        .await
    }

    /// Messages of run `id`'s log.
    pub async fn log_messages(&self, id: &str) -> Vec<String> {
        let logs = self.get(&format!("/runs/{id}/logs")).await;
        logs.as_array()
            .unwrap()
            .iter()
            .map(|l| l["message"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
