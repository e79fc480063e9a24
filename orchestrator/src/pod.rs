//! A run's pod: the Container API sidecar owning a network namespace, and the connector
//! joined to it, so `http://cde-container-api` reaches this run's API and nothing else.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::runtime::{Output, Runtime, MANAGED_BY, MANAGED_BY_VALUE};

pub const API_HOST: &str = "cde-container-api";
const RUN_DIR_IN_SIDECAR: &str = "/cde/run";
const READY_LINE: &str = "container-api listening on";

/// What the connector container runs.
pub struct ConnectorSpec<'a> {
    pub connector_code: &'a str,
    pub image: &'a str,
    /// `[command] [arguments]`; the first element becomes the entrypoint.
    pub command: Vec<String>,
    pub env: Vec<String>,
}

fn labels(run_id: &str, connector_code: &str, role: &str) -> HashMap<String, String> {
    HashMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        ("cde.run".to_owned(), run_id.to_owned()),
        ("cde.connector".to_owned(), connector_code.to_owned()),
        ("cde.role".to_owned(), role.to_owned()),
    ])
}

fn hardened(host_config: HostConfig) -> HostConfig {
    HostConfig {
        security_opt: Some(vec!["no-new-privileges".into()]),
        cap_drop: Some(vec!["ALL".into()]),
        ..host_config
    }
}

pub fn sidecar_body(
    run_id: &str,
    connector_code: &str,
    image: &str,
    run_dir: &Path,
) -> Result<ContainerCreateBody> {
    // The sidecar writes the run directory as its owner, so files stay readable by the orchestrator.
    let owner = std::fs::metadata(run_dir)?;
    Ok(ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(vec![
            "--run-dir".into(),
            RUN_DIR_IN_SIDECAR.into(),
            "--listen".into(),
            "127.0.0.1:80".into(),
        ]),
        user: Some(format!("{}:{}", owner.uid(), owner.gid())),
        labels: Some(labels(run_id, connector_code, "sidecar")),
        host_config: Some(hardened(HostConfig {
            binds: Some(vec![format!("{}:{RUN_DIR_IN_SIDECAR}", run_dir.display())]),
            extra_hosts: Some(vec![format!("{API_HOST}:127.0.0.1")]),
            ..Default::default()
        })),
        ..Default::default()
    })
}

pub fn connector_body(run_id: &str, sidecar_id: &str, spec: &ConnectorSpec) -> ContainerCreateBody {
    let mut env = spec.env.clone();
    env.push(format!("CONTAINER_API_URL=http://{API_HOST}"));
    let (entrypoint, arguments) = spec
        .command
        .split_first()
        .expect("command is validated non-empty");
    ContainerCreateBody {
        image: Some(spec.image.to_owned()),
        entrypoint: Some(vec![entrypoint.clone()]),
        cmd: Some(arguments.to_vec()),
        env: Some(env),
        labels: Some(labels(run_id, spec.connector_code, "connector")),
        host_config: Some(hardened(HostConfig {
            network_mode: Some(format!("container:{sidecar_id}")),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Starts the sidecar and returns its container id once it listens.
pub async fn start_sidecar(
    runtime: &Runtime,
    run_id: &str,
    body: ContainerCreateBody,
    ready_timeout: Duration,
) -> Result<String> {
    let id = runtime.create(&format!("cde-{run_id}-api"), body).await?;
    runtime.start(&id).await?;
    let mut output = Box::pin(runtime.follow(&id));
    let mut seen = String::new();
    let ready = tokio::time::timeout(ready_timeout, async {
        while let Some(chunk) = output.next().await {
            let (Output::Stdout(bytes) | Output::Stderr(bytes)) = chunk?;
            seen.push_str(&String::from_utf8_lossy(&bytes));
            if seen.contains(READY_LINE) {
                return Ok(true);
            }
        }
        Ok::<_, Error>(false)
    })
    .await;
    match ready {
        Ok(Ok(true)) => Ok(id),
        Ok(Ok(false)) => Err(Error::SidecarNotReady(format!(
            "it exited: {}",
            seen.trim()
        ))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::SidecarNotReady(format!(
            "not listening after {ready_timeout:?}: {}",
            seen.trim()
        ))),
    }
}

/// Removes every container of the run, whatever state it is in.
pub async fn remove(runtime: &Runtime, run_id: &str) -> Result<()> {
    for id in runtime
        .containers_labelled(&format!("cde.run={run_id}"))
        .await?
    {
        runtime.remove(&id).await?;
    }
    Ok(())
}

/// Splits a stream's chunks into lines; the last unterminated line comes out on `finish`.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let Some(last_newline) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return vec![];
        };
        let rest = self.pending.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut self.pending, rest);
        complete[..complete.len() - 1]
            .split(|&b| b == b'\n')
            .map(line_text)
            .collect()
    }

    pub fn finish(self) -> Option<String> {
        (!self.pending.is_empty()).then(|| line_text(&self.pending))
    }
}

fn line_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes.strip_suffix(b"\r").unwrap_or(bytes)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_chunks() {
        let mut splitter = LineSplitter::default();
        assert!(splitter.push(b"hel").is_empty());
        assert_eq!(splitter.push(b"lo\r\nworld\n\nbye"), ["hello", "world", ""]);
        assert_eq!(splitter.push(b" now\n"), ["bye now"]);
        assert_eq!(splitter.finish(), None);
        let mut splitter = LineSplitter::default();
        splitter.push(b"tail \xff");
        assert_eq!(splitter.finish().as_deref(), Some("tail \u{fffd}"));
    }

    #[test]
    fn connector_joins_the_sidecar_namespace() {
        let spec = ConnectorSpec {
            connector_code: "c",
            image: "img",
            command: vec!["python3".into(), "main.py".into(), "--x=1".into()],
            env: vec!["NAME=a".into()],
        };
        let body = connector_body("r1", "sidecar-id", &spec);
        assert_eq!(body.entrypoint.unwrap(), ["python3"]);
        assert_eq!(body.cmd.unwrap(), ["main.py", "--x=1"]);
        assert_eq!(
            body.env.unwrap(),
            ["NAME=a", "CONTAINER_API_URL=http://cde-container-api"]
        );
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("container:sidecar-id"));
        assert_eq!(host.cap_drop.unwrap(), ["ALL"]);
        assert_eq!(body.labels.unwrap()["cde.run"], "r1");
    }
}
