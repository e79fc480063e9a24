//! The Docker engine, as the rest of the orchestrator needs it.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, ContainerState, ContainerStateStatusEnum, Network, NetworkCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
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

/// The bridge option that stops containers on one network from reaching each other.
pub const ICC_OPTION: &str = "com.docker.network.bridge.enable_icc";

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

    /// Bytes the container has written to its writable layer (`SizeRw`); `None` when the
    /// container is gone. The engine walks the layer to answer, so this is not cheap.
    pub async fn writable_layer_bytes(&self, id: &str) -> Result<Option<u64>> {
        let options = InspectContainerOptionsBuilder::default().size(true).build();
        match self.docker.inspect_container(id, Some(options)).await {
            Ok(inspected) => Ok(Some(inspected.size_rw.unwrap_or(0).max(0) as u64)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(docker_error(format!("measuring container {id}"), e)),
        }
    }

    /// Networks named exactly `name` (the engine filters by substring).
    pub async fn networks_named(&self, name: &str) -> Result<Vec<Network>> {
        let filters = HashMap::from([("name", vec![name])]);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let networks = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|e| docker_error(format!("listing network {name}"), e))?;
        Ok(networks
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .collect())
    }

    /// Whether a network of that name (or ID) exists.
    pub async fn network_exists(&self, name: &str) -> Result<bool> {
        match self.docker.inspect_network(name, None).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(docker_error(format!("inspecting network {name}"), e)),
        }
    }

    /// The ID of cde's own bridge network `name`, on which containers cannot reach each
    /// other, created on first use. The engine does not refuse a second network of the same
    /// name, so processes creating it at once may make several: all then pick the first
    /// created, and each removes its own if that is not the one. (A creation still in
    /// flight is not listed yet, so two processes may still each keep their own; both
    /// networks isolate runs, and later runs all join the first.)
    pub async fn ensure_isolated_network(&self, name: &str) -> Result<String> {
        // Within one process, runs starting at once create it once; across processes the
        // choice below settles it (at worst two processes use a network each, both isolating).
        static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _creating = CREATING.lock().await;
        let existing = self.networks_named(name).await?;
        let id = match chosen(&existing) {
            Some(id) => id,
            None => {
                let created = self.create_isolated_network(name).await?;
                let now = self.networks_named(name).await?;
                let Some(id) = chosen(&now).or_else(|| created.clone()) else {
                    return Err(Error::Config(format!(
                        "network {name} was removed while cde created it"
                    )));
                };
                if let Some(created) = created.filter(|created| *created != id) {
                    if let Err(e) = self.docker.remove_network(&created).await {
                        tracing::warn!("removing the duplicate network {name} ({created}): {e}");
                    }
                }
                id
            }
        };
        let network = self
            .docker
            .inspect_network(&id, None)
            .await
            .map_err(|e| docker_error(format!("inspecting network {name}"), e))?;
        let icc = network
            .options
            .as_ref()
            .and_then(|options| options.get(ICC_OPTION))
            .map(String::as_str);
        if network.driver.as_deref() != Some("bridge") || icc != Some("false") {
            return Err(Error::Config(format!(
                "network {name} exists but is not a bridge with {ICC_OPTION}=false: runs on it could reach each other; remove it (cde creates it) or set CDE_RUN_NETWORK"
            )));
        }
        Ok(id)
    }

    /// Creates the network; `None` when one of that name appeared meanwhile.
    async fn create_isolated_network(&self, name: &str) -> Result<Option<String>> {
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            options: Some(HashMap::from([(ICC_OPTION.to_owned(), "false".to_owned())])),
            labels: Some(HashMap::from([(
                MANAGED_BY.to_owned(),
                MANAGED_BY_VALUE.to_owned(),
            )])),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(created) => Ok(Some(created.id)),
            // 409: the engine refused a second network of that name.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(None),
            Err(e) => Err(docker_error(format!("creating network {name}"), e)),
        }
    }

    /// Removes every network named `name`; none is fine.
    pub async fn remove_networks_named(&self, name: &str) -> Result<()> {
        for network in self.networks_named(name).await? {
            let id = network.id.unwrap_or_default();
            match self.docker.remove_network(&id).await {
                Err(e) if !is_not_found(&e) => {
                    return Err(docker_error(format!("removing network {name} ({id})"), e))
                }
                _ => {}
            }
        }
        Ok(())
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

fn docker_error(operation: String, error: bollard::errors::Error) -> Error {
    Error::Io(std::io::Error::other(format!("{operation}: {error}")))
}

/// Of several networks with one name, the one every process picks: the first created.
fn chosen(networks: &[Network]) -> Option<String> {
    networks
        .iter()
        .filter_map(|n| {
            let created = n
                .created
                .as_deref()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
            // A network without a readable time sorts last.
            Some(((created.is_none(), created), n.id.clone()?))
        })
        .min()
        .map(|(_, id)| id)
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
