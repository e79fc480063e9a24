//! A run's pod: one container of the connector image, in which the Container API
//! supervises the connector, so `http://cde-container-api` reaches this run's API and
//! nothing else.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{ContainerCreateBody, HostConfig};
use container_api::storage::CONTAINER_WORK_DIR;

use crate::error::{Error, Result};

use crate::engine::{Engine, MANAGED_BY, MANAGED_BY_VALUE};
use crate::model::{InputValues, Limits, Network};

pub const API_HOST: &str = "cde-container-api";
pub const RUN_LABEL: &str = "cde.run";
pub const INSTANCE_LABEL: &str = "cde.instance";
const RUN_DIR_IN_CONTAINER: &str = "/cde/run";
/// Where every container cde starts finds the cde executable (see `executable.rs`).
pub const EXECUTABLE_IN_CONTAINER: &str = "/cde/bin/cde";
/// How much longer than the supervisor's own grace period the engine waits before it
/// kills the container, so that the supervisor can still close the files.
pub const SUPERVISOR_MARGIN_SECS: u64 = 5;

/// What the run's container runs, and for which run.
pub struct ConnectorSpec<'a> {
    pub instance: &'a str,
    pub run_id: &'a str,
    pub connector_code: &'a str,
    pub image: &'a str,
    /// `[command] [arguments]`.
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub limits: Limits,
    pub run_dir: &'a Path,
    /// The static cde executable on the engine's host (see [`crate::executable`]).
    pub executable: &'a Path,
    /// Seconds the connector has between SIGTERM and SIGKILL.
    pub grace_secs: u64,
    /// The network the run joins.
    pub network: Network,
    /// The name of cde's own network, which `Network::Isolated` means (`CDE_RUN_NETWORK`).
    pub runs_network: &'a str,
    /// With `typed`, the Container API hands records' values to the connector with their
    /// JSON types (`--typed-values`).
    pub input_values: InputValues,
    /// The Container API answers every write with 400 (`--reject-writes`, for `cde test`).
    pub reject_writes: bool,
}

/// What the engine's `NetworkMode` must say for the run's network; creates cde's own
/// network on first use.
async fn network_mode(engine: &dyn Engine, spec: &ConnectorSpec<'_>) -> Result<String> {
    network_mode_of(engine, &spec.network, spec.runs_network).await
}

/// What the engine's `NetworkMode` must say for `network`, where `Network::Isolated` is
/// cde's own network `runs_network` (created on first use).
pub async fn network_mode_of(
    engine: &dyn Engine,
    network: &Network,
    runs_network: &str,
) -> Result<String> {
    match network {
        Network::Isolated => engine.ensure_isolated_network(runs_network).await,
        Network::None => Ok("none".into()),
        Network::Named(name) => {
            if engine.network_exists(name).await? {
                Ok(name.clone())
            } else {
                Err(Error::InvalidConfig(format!(
                    "network: there is no network {name:?} on the engine"
                )))
            }
        }
    }
}

/// The labels of a container of cde instance `instance`, with `more` of its own.
pub fn labels(instance: &str, more: &[(&str, &str)]) -> HashMap<String, String> {
    [(MANAGED_BY, MANAGED_BY_VALUE), (INSTANCE_LABEL, instance)]
        .iter()
        .chain(more)
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// Creates, starts and waits for a throw-away container (a health check, the mount check),
/// then removes it. `Ok(Err(why))` when it did not exit 0 within `timeout`, `why` naming
/// how it ended and ending with its last lines of output.
pub async fn run_once(
    engine: &dyn Engine,
    name: &str,
    body: ContainerCreateBody,
    timeout: std::time::Duration,
) -> Result<std::result::Result<(), String>> {
    Ok(run_to_end(engine, name, body, timeout, 5)
        .await?
        .and_then(|(code, output)| match code {
            0 => Ok(()),
            code if output.is_empty() => Err(format!("exited with code {code}")),
            code => Err(format!("exited with code {code}: {output}")),
        }))
}

/// [`run_once`], giving the exit code and the last `lines` of output of a container that
/// exited within `timeout`, whatever its code.
pub async fn run_to_end(
    engine: &dyn Engine,
    name: &str,
    body: ContainerCreateBody,
    timeout: std::time::Duration,
    lines: usize,
) -> Result<std::result::Result<(i64, String), String>> {
    let id = engine.create(name, body).await?;
    let outcome = async {
        engine.start(&id).await?;
        let exit = match tokio::time::timeout(timeout, engine.wait(&id)).await {
            Err(_) => return Ok(Err(format!("did not exit within {}s", timeout.as_secs()))),
            Ok(exit) => exit?,
        };
        Ok(match exit {
            None => Err("its container disappeared".into()),
            Some(exit) => {
                let output = engine.output_tail(&id, lines).await.unwrap_or_default();
                Ok((exit.code, output))
            }
        })
    }
    .await;
    engine.remove(&id).await?;
    outcome
}

/// What confines every container cde starts, a run's or a health check's: no new
/// privileges, no capabilities, the limits (swap included), and an init as PID 1.
pub fn confined(limits: &Limits, network_mode: &str) -> HostConfig {
    HostConfig {
        network_mode: Some(network_mode.to_owned()),
        // PID 1 ignores signals it has no handler for; an init passes SIGTERM on to
        // the supervisor and reaps whatever the connector leaves behind.
        init: Some(true),
        security_opt: Some(vec!["no-new-privileges".into()]),
        cap_drop: Some(vec!["ALL".into()]),
        memory: Some(limits.memory_bytes()),
        memory_swap: Some(limits.memory_bytes()),
        nano_cpus: Some(limits.nano_cpus()),
        pids_limit: Some(limits.pids),
        ..Default::default()
    }
}

/// The run's one container: the connector image, with the cde executable mounted
/// as its entrypoint, which listens on `127.0.0.1:80` and then runs the connector command
/// as its child (see `container-api/src/supervisor.rs`).
/// `network_mode` is what the engine is told (see [`Network`]).
pub fn container_body(spec: &ConnectorSpec, network_mode: &str) -> ContainerCreateBody {
    let mut env = spec.env.clone();
    env.push(format!("CONTAINER_API_URL=http://{API_HOST}"));
    env.push(format!("CDE_WORK_DIR={CONTAINER_WORK_DIR}"));
    let mut cmd: Vec<String> = [
        "container-api",
        "--run-dir",
        RUN_DIR_IN_CONTAINER,
        "--listen",
        "127.0.0.1:80",
        "--grace",
        &spec.grace_secs.to_string(),
    ]
    .map(String::from)
    .into();
    if spec.input_values == InputValues::Typed {
        cmd.push("--typed-values".into());
    }
    if spec.reject_writes {
        cmd.push("--reject-writes".into());
    }
    cmd.push("--".into());
    cmd.extend(spec.command.iter().cloned());
    let run_dir = spec.run_dir.display();
    ContainerCreateBody {
        image: Some(spec.image.to_owned()),
        entrypoint: Some(vec![EXECUTABLE_IN_CONTAINER.to_owned()]),
        cmd: Some(cmd),
        env: Some(env),
        labels: Some(labels(
            spec.instance,
            &[
                (RUN_LABEL, spec.run_id),
                ("cde.connector", spec.connector_code),
            ],
        )),
        host_config: Some(HostConfig {
            binds: Some(vec![
                format!("{}:{EXECUTABLE_IN_CONTAINER}:ro", spec.executable.display()),
                format!("{run_dir}:{RUN_DIR_IN_CONTAINER}"),
                // Inputs may be links to datasets, which no run may change.
                format!("{run_dir}/input:{RUN_DIR_IN_CONTAINER}/input:ro"),
                format!("{run_dir}/work:{CONTAINER_WORK_DIR}"),
            ]),
            extra_hosts: Some(vec![format!("{API_HOST}:127.0.0.1")]),
            ..confined(&spec.limits, network_mode)
        }),
        ..Default::default()
    }
}

/// Creates the run's container, not yet started, on its network.
pub async fn create(engine: &dyn Engine, spec: &ConnectorSpec<'_>) -> Result<String> {
    let network_mode = network_mode(engine, spec).await?;
    engine
        .create(
            &format!("cde-{}", spec.run_id),
            container_body(spec, &network_mode),
        )
        .await
}

/// The run's container, if it exists on the engine.
pub async fn find(engine: &dyn Engine, run_id: &str) -> Result<Option<String>> {
    let containers = engine
        .containers_labelled(&format!("{RUN_LABEL}={run_id}"))
        .await?;
    Ok(containers.into_iter().next().map(|c| c.id))
}

/// Removes every container of the run, whatever state it is in.
pub async fn remove(engine: &dyn Engine, run_id: &str) -> Result<()> {
    let containers = engine
        .containers_labelled(&format!("{RUN_LABEL}={run_id}"))
        .await?;
    let removals = containers.iter().map(|c| engine.remove(&c.id));
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

    fn spec() -> ConnectorSpec<'static> {
        ConnectorSpec {
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
                disk_mb: 100,
            },
            run_dir: Path::new("/data/runs/r1"),
            executable: Path::new("/data/bin/cde-0123"),
            grace_secs: 7,
            network: Network::Isolated,
            runs_network: "cde-runs",
            input_values: InputValues::Text,
            reject_writes: false,
        }
    }

    #[test]
    fn the_api_supervises_the_connector_in_one_container() {
        let body = container_body(&spec(), "0123abcd");
        assert_eq!(body.image.as_deref(), Some("img"));
        assert_eq!(body.entrypoint.unwrap(), ["/cde/bin/cde"]);
        assert_eq!(
            body.cmd.unwrap(),
            [
                "container-api",
                "--run-dir",
                "/cde/run",
                "--listen",
                "127.0.0.1:80",
                "--grace",
                "7",
                "--",
                "python3",
                "main.py",
                "--x=1"
            ]
        );
        assert_eq!(
            body.env.unwrap(),
            [
                "NAME=a",
                "CONTAINER_API_URL=http://cde-container-api",
                "CDE_WORK_DIR=/cde/work"
            ]
        );
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("0123abcd"));
        assert_eq!(host.extra_hosts.unwrap(), ["cde-container-api:127.0.0.1"]);
        assert_eq!(host.cap_drop.unwrap(), ["ALL"]);
        assert_eq!(host.security_opt.unwrap(), ["no-new-privileges"]);
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.pids_limit, Some(32));
        assert_eq!(host.init, Some(true));
        assert_eq!(
            host.binds.unwrap(),
            [
                "/data/bin/cde-0123:/cde/bin/cde:ro",
                "/data/runs/r1:/cde/run",
                "/data/runs/r1/input:/cde/run/input:ro",
                "/data/runs/r1/work:/cde/work"
            ]
        );
        let labels = body.labels.unwrap();
        assert_eq!(labels["cde.run"], "r1");
        assert_eq!(labels["cde.instance"], "i1");
        assert_eq!(labels["cde.managed-by"], "cde");
    }

    #[test]
    fn typed_values_are_asked_of_the_api_before_the_command() {
        let spec = ConnectorSpec {
            input_values: InputValues::Typed,
            ..spec()
        };
        let cmd = container_body(&spec, "none").cmd.unwrap();
        assert_eq!(
            cmd,
            [
                "container-api",
                "--run-dir",
                "/cde/run",
                "--listen",
                "127.0.0.1:80",
                "--grace",
                "7",
                "--typed-values",
                "--",
                "python3",
                "main.py",
                "--x=1"
            ]
        );
    }

    #[test]
    fn network_values() {
        assert_eq!("isolated".parse::<Network>(), Ok(Network::Isolated));
        assert_eq!("none".parse::<Network>(), Ok(Network::None));
        assert_eq!(
            "ops_net.1".parse::<Network>(),
            Ok(Network::Named("ops_net.1".into()))
        );
        for bad in ["", "host", "container:abc", "-x", "a b"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::to_string(&Network::Named("n".into())).unwrap(),
            "\"n\""
        );
    }
}
