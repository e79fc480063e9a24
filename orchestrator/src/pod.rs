//! A run's pod: the Container API sidecar owning a network namespace, and the connector
//! joined to it, so `http://cde-container-api` reaches this run's API and nothing else.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::runtime::{Output, Runtime, MANAGED_BY, MANAGED_BY_VALUE};

pub const API_HOST: &str = "cde-container-api";
const RUN_DIR_IN_SIDECAR: &str = "/cde/run";
const READY_LINE: &str = "container-api listening on";

/// What the connector container runs, and for which run.
pub struct ConnectorSpec<'a> {
    pub instance: &'a str,
    pub run_id: &'a str,
    pub connector_code: &'a str,
    pub image: &'a str,
    /// `[command] [arguments]`; the first element becomes the entrypoint.
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub limits: Limits,
    pub run_dir: &'a Path,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Sidecar,
    Connector,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Sidecar => "sidecar",
            Role::Connector => "connector",
        }
    }
}

pub const RUN_LABEL: &str = "cde.run";
pub const INSTANCE_LABEL: &str = "cde.instance";
const ROLE_LABEL: &str = "cde.role";
const WORK_DIR_IN_CONNECTOR: &str = "/cde/work";

fn labels(spec: &ConnectorSpec, role: Role) -> HashMap<String, String> {
    HashMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (INSTANCE_LABEL.to_owned(), spec.instance.to_owned()),
        (RUN_LABEL.to_owned(), spec.run_id.to_owned()),
        ("cde.connector".to_owned(), spec.connector_code.to_owned()),
        (ROLE_LABEL.to_owned(), role.as_str().to_owned()),
    ])
}

fn hardened(host_config: HostConfig) -> HostConfig {
    HostConfig {
        security_opt: Some(vec!["no-new-privileges".into()]),
        cap_drop: Some(vec!["ALL".into()]),
        ..host_config
    }
}

pub fn sidecar_body(spec: &ConnectorSpec, image: &str) -> Result<ContainerCreateBody> {
    // The sidecar writes the run directory as its owner, so files stay readable by the orchestrator.
    let owner = std::fs::metadata(spec.run_dir)?;
    Ok(ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(vec![
            "--run-dir".into(),
            RUN_DIR_IN_SIDECAR.into(),
            "--listen".into(),
            "127.0.0.1:80".into(),
        ]),
        user: Some(format!("{}:{}", owner.uid(), owner.gid())),
        labels: Some(labels(spec, Role::Sidecar)),
        host_config: Some(hardened(HostConfig {
            binds: Some(vec![format!(
                "{}:{RUN_DIR_IN_SIDECAR}",
                spec.run_dir.display()
            )]),
            extra_hosts: Some(vec![format!("{API_HOST}:127.0.0.1")]),
            memory: Some(SIDECAR_MEMORY),
            memory_swap: Some(SIDECAR_MEMORY),
            pids_limit: Some(64),
            ..Default::default()
        })),
        ..Default::default()
    })
}

const SIDECAR_MEMORY: i64 = 512 * 1024 * 1024;

pub fn connector_body(spec: &ConnectorSpec, sidecar_id: &str) -> ContainerCreateBody {
    let mut env = spec.env.clone();
    env.push(format!("CONTAINER_API_URL=http://{API_HOST}"));
    env.push(format!("CDE_WORK_DIR={WORK_DIR_IN_CONNECTOR}"));
    let (entrypoint, arguments) = spec
        .command
        .split_first()
        .expect("command is validated non-empty");
    ContainerCreateBody {
        image: Some(spec.image.to_owned()),
        entrypoint: Some(vec![entrypoint.clone()]),
        cmd: Some(arguments.to_vec()),
        env: Some(env),
        labels: Some(labels(spec, Role::Connector)),
        host_config: Some(hardened(HostConfig {
            network_mode: Some(format!("container:{sidecar_id}")),
            // PID 1 ignores signals it has no handler for; an init makes SIGTERM end a
            // connector that never asked to handle it.
            init: Some(true),
            binds: Some(vec![format!(
                "{}/work:{WORK_DIR_IN_CONNECTOR}",
                spec.run_dir.display()
            )]),
            memory: Some(spec.limits.memory_bytes()),
            memory_swap: Some(spec.limits.memory_bytes()),
            nano_cpus: Some(spec.limits.nano_cpus()),
            pids_limit: Some(spec.limits.pids),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Creates the pod and starts the sidecar; returns the connector's container id, created
/// but not started, once the sidecar listens.
pub async fn start(
    runtime: &Runtime,
    spec: &ConnectorSpec<'_>,
    sidecar_image: &str,
    ready_timeout: Duration,
) -> Result<String> {
    let sidecar = runtime
        .create(
            &format!("cde-{}-api", spec.run_id),
            sidecar_body(spec, sidecar_image)?,
        )
        .await?;
    let connector_name = format!("cde-{}-connector", spec.run_id);
    let (ready, connector) = tokio::join!(
        start_sidecar(runtime, &sidecar, ready_timeout),
        runtime.create(&connector_name, connector_body(spec, &sidecar)),
    );
    ready?;
    connector
}

/// Starts the sidecar and returns once it listens.
async fn start_sidecar(runtime: &Runtime, id: &str, ready_timeout: Duration) -> Result<()> {
    runtime.start(id).await?;
    let mut output = Box::pin(runtime.follow(id, false));
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
        Ok(Ok(true)) => Ok(()),
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

/// The containers of a run that exist on the engine.
#[derive(Debug, Default)]
pub struct Pod {
    pub sidecar: Option<String>,
    pub connector: Option<String>,
}

pub async fn find(runtime: &Runtime, run_id: &str) -> Result<Pod> {
    let mut pod = Pod::default();
    for container in runtime
        .containers_labelled(&format!("{RUN_LABEL}={run_id}"))
        .await?
    {
        match container.labels.get(ROLE_LABEL).map(String::as_str) {
            Some("sidecar") => pod.sidecar = Some(container.id),
            Some("connector") => pod.connector = Some(container.id),
            _ => {}
        }
    }
    Ok(pod)
}

/// Removes every container of the run, whatever state it is in.
pub async fn remove(runtime: &Runtime, run_id: &str) -> Result<()> {
    let containers = runtime
        .containers_labelled(&format!("{RUN_LABEL}={run_id}"))
        .await?;
    let removals = containers.iter().map(|c| runtime.remove(&c.id));
    futures_util::future::try_join_all(removals).await?;
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
            instance: "i1",
            run_id: "r1",
            connector_code: "c",
            image: "img",
            command: vec!["python3".into(), "main.py".into(), "--x=1".into()],
            env: vec!["NAME=a".into()],
            limits: Limits {
                timeout_secs: 5,
                memory_mb: 64,
                cpus: 0.5,
                pids: 32,
            },
            run_dir: Path::new("/data/runs/r1"),
        };
        let body = connector_body(&spec, "sidecar-id");
        assert_eq!(body.entrypoint.unwrap(), ["python3"]);
        assert_eq!(body.cmd.unwrap(), ["main.py", "--x=1"]);
        assert_eq!(
            body.env.unwrap(),
            [
                "NAME=a",
                "CONTAINER_API_URL=http://cde-container-api",
                "CDE_WORK_DIR=/cde/work"
            ]
        );
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("container:sidecar-id"));
        assert_eq!(host.cap_drop.unwrap(), ["ALL"]);
        assert_eq!(host.security_opt.unwrap(), ["no-new-privileges"]);
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.pids_limit, Some(32));
        assert_eq!(host.init, Some(true));
        assert_eq!(host.binds.unwrap(), ["/data/runs/r1/work:/cde/work"]);
        let labels = body.labels.unwrap();
        assert_eq!(labels["cde.run"], "r1");
        assert_eq!(labels["cde.instance"], "i1");
        assert_eq!(labels["cde.role"], "connector");
    }
}
