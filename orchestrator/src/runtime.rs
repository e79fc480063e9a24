//! The Docker engine, as the rest of the orchestrator needs it.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, ContainerState, ContainerStateStatusEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::{Stream, StreamExt};

use crate::error::{Error, Result};

/// Every container and image cde creates carries this label.
pub const MANAGED_BY: &str = "cde.managed-by";
pub const MANAGED_BY_VALUE: &str = "cde";

#[derive(Clone)]
pub struct Runtime {
    docker: Docker,
}

/// How a container ended, as `inspect` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: i64,
    pub oom_killed: bool,
}

/// A container as listed.
pub struct Container {
    pub id: String,
    pub labels: HashMap<String, String>,
    /// Unix seconds.
    pub created: i64,
}

/// One chunk of a container's output.
pub enum Output {
    Stdout(bytes::Bytes),
    Stderr(bytes::Bytes),
}

impl Runtime {
    pub async fn connect() -> Result<Self> {
        let docker = Docker::connect_with_local_defaults()?
            .negotiate_version()
            .await?;
        Ok(Self { docker })
    }

    pub async fn image_exists(&self, image: &str) -> Result<bool> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String> {
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        Ok(self.docker.create_container(Some(options), body).await?.id)
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        Ok(self.docker.start_container(id, None).await?)
    }

    /// Output from the container's start, following until it stops; with `timestamps`,
    /// every frame starts with the engine's RFC 3339 time and a space.
    pub fn follow(&self, id: &str, timestamps: bool) -> impl Stream<Item = Result<Output>> + use<> {
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .timestamps(timestamps)
            .build();
        self.docker
            .logs(id, Some(options))
            .filter_map(|chunk| async {
                match chunk {
                    Ok(bollard::container::LogOutput::StdOut { message }) => {
                        Some(Ok(Output::Stdout(message)))
                    }
                    Ok(bollard::container::LogOutput::StdErr { message }) => {
                        Some(Ok(Output::Stderr(message)))
                    }
                    Ok(_) => None,
                    Err(e) => Some(Err(e.into())),
                }
            })
    }

    /// Waits until the container is not running, then reads its exit code and OOM flag;
    /// `None` when the container is gone or being removed.
    pub async fn wait(&self, id: &str) -> Result<Option<Exit>> {
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let waited = self.docker.wait_container(id, Some(options)).next().await;
        match waited {
            // bollard reports a non-zero exit as an error; inspect below has the facts.
            None
            | Some(Ok(_))
            | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })) => {}
            Some(Err(e)) if is_not_found(&e) => return Ok(None),
            Some(Err(e)) => return Err(e.into()),
        }
        let Some(state) = self.state(id).await? else {
            return Ok(None);
        };
        // `docker rm -f` marks the container as being removed before it kills it.
        if state.status == Some(ContainerStateStatusEnum::REMOVING) {
            return Ok(None);
        }
        if state.status == Some(ContainerStateStatusEnum::RUNNING) {
            return Err(Error::Io(std::io::Error::other(format!(
                "container {id} still running after wait"
            ))));
        }
        Ok(Some(Exit {
            code: state.exit_code.unwrap_or(-1),
            oom_killed: state.oom_killed.unwrap_or(false),
        }))
    }

    /// SIGTERM, then SIGKILL after `grace_secs`.
    pub async fn stop(&self, id: &str, grace_secs: u64) -> Result<()> {
        let options = StopContainerOptionsBuilder::default()
            .t(i32::try_from(grace_secs).unwrap_or(i32::MAX))
            .build();
        match self.docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn remove(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Err(e) if !is_not_found(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The last `lines` lines of the container's output, joined by ` | `.
    pub async fn output_tail(&self, id: &str, lines: usize) -> Result<String> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let chunks: Vec<_> = self.docker.logs(id, Some(options)).collect().await;
        let mut text = String::new();
        for chunk in chunks {
            text.push_str(&String::from_utf8_lossy(&chunk?.into_bytes()));
        }
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" | "))
    }

    /// The container's state as `inspect` reports it; `None` when there is no such container.
    async fn state(&self, id: &str) -> Result<Option<ContainerState>> {
        match self.docker.inspect_container(id, None).await {
            Ok(inspected) => Ok(Some(inspected.state.unwrap_or_default())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn exists(&self, id: &str) -> Result<bool> {
        Ok(self.state(id).await?.is_some())
    }

    /// Whether the container was ever started (it may have exited since); false when it is gone.
    pub async fn has_started(&self, id: &str) -> Result<bool> {
        Ok(self
            .state(id)
            .await?
            .is_some_and(|state| state.status != Some(ContainerStateStatusEnum::CREATED)))
    }

    /// All containers (running or not) carrying `label` (`key` or `key=value`).
    pub async fn containers_labelled(&self, label: &str) -> Result<Vec<Container>> {
        let filters = HashMap::from([("label", vec![label])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        Ok(self
            .docker
            .list_containers(Some(options))
            .await?
            .into_iter()
            .filter_map(|c| {
                Some(Container {
                    id: c.id?,
                    labels: c.labels.unwrap_or_default(),
                    created: c.created.unwrap_or_default(),
                })
            })
            .collect())
    }
}

pub fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
