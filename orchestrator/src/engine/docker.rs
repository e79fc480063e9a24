//! The Docker engine, through bollard.

use std::collections::HashMap;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, ContainerState, ContainerStateStatusEnum, Network, NetworkCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptions, InspectContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};

use super::{Container, Engine, Exit, Output, MANAGED_BY, MANAGED_BY_VALUE};
use crate::error::{Error, Result};

/// The bridge option that stops containers on one network from reaching each other.
pub const ICC_OPTION: &str = "com.docker.network.bridge.enable_icc";

/// The local Docker engine.
#[derive(Clone)]
pub struct Docker {
    docker: bollard::Docker,
}

/// The oldest engine API cde works with: `wait?condition=not-running` (API 1.30) is the
/// newest thing it asks for, after `Init` and `NanoCpus` in a container's host config
/// (1.25). bollard sends every request without a version prefix, so the engine answers in
/// its own newest API and would ignore, not refuse, fields it does not know: an older one
/// would run connectors without their init or CPU limit.
pub const MIN_API_VERSION: bollard::ClientVersion = bollard::ClientVersion {
    major_version: 1,
    minor_version: 30,
};

/// The first Docker release speaking [`MIN_API_VERSION`], for messages.
pub const MIN_API_DOCKER_RELEASE: &str = "17.06";

/// What to do when the engine cannot be reached, by why.
const START_ENGINE: &str = "start Docker or set DOCKER_HOST to the engine's socket";
const NOT_AN_ENGINE: &str = "set DOCKER_HOST to the Docker engine's socket";
const CHECK_ENGINE: &str =
    "check the engine (`docker info`) or set DOCKER_HOST to the engine's socket";

/// The engine's socket when `DOCKER_HOST` names none (bollard's default).
const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// How long connecting waits for the engine to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Docker {
    /// Connects to the local engine (`DOCKER_HOST` when it is a `unix://` address, else
    /// [`DEFAULT_SOCKET`]) and checks that it answers and speaks at least
    /// [`MIN_API_VERSION`]; fails with [`Error::EngineUnreachable`] or
    /// [`Error::EngineTooOld`] otherwise.
    pub async fn connect() -> Result<Self> {
        let address = local_address();
        let unreachable = |(reason, remedy)| Error::EngineUnreachable {
            address: address.clone(),
            reason,
            remedy,
        };
        let path = Path::new(address.trim_start_matches("unix://"));
        match std::fs::metadata(path) {
            Ok(metadata) if !metadata.file_type().is_socket() => {
                return Err(unreachable(("not a socket".into(), NOT_AN_ENGINE)))
            }
            Ok(_) => {}
            Err(e) => return Err(unreachable(io_failure(e.kind(), &e.to_string()))),
        }
        // bollard reads DOCKER_HOST the same way as `local_address`.
        let docker =
            bollard::Docker::connect_with_local_defaults().map_err(|e| unreachable(failure(&e)))?;
        let version = match tokio::time::timeout(CONNECT_TIMEOUT, docker.version()).await {
            Err(_) => {
                return Err(unreachable((
                    format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
                    CHECK_ENGINE,
                )))
            }
            Ok(answer) => answer.map_err(|e| unreachable(failure(&e)))?,
        };
        let reported = version.api_version.unwrap_or_default();
        let Some(api) = parse_api_version(&reported) else {
            return Err(unreachable((
                format!("it reported no API version cde can read ({reported:?})"),
                NOT_AN_ENGINE,
            )));
        };
        if api < MIN_API_VERSION {
            return Err(Error::EngineTooOld {
                address,
                api_version: reported,
                needed: MIN_API_VERSION.to_string(),
                release: MIN_API_DOCKER_RELEASE,
            });
        }
        // Tells bollard the engine's version too, for when it prefixes requests with it.
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unreachable(failure(&e)))?;
        Ok(Self { docker })
    }

    /// The container's state as `inspect` reports it; `None` when there is no such container.
    async fn state(&self, id: &str) -> Result<Option<ContainerState>> {
        match self.docker.inspect_container(id, None).await {
            Ok(inspected) => Ok(Some(inspected.state.unwrap_or_default())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(Error::engine(format!("inspecting container {id}"))(e)),
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
            .map_err(Error::engine(format!("listing network {name}")))?;
        Ok(networks
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .collect())
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
            Err(e) => Err(Error::engine(format!("creating network {name}"))(e)),
        }
    }
}

#[async_trait]
impl Engine for Docker {
    async fn image_exists(&self, image: &str) -> Result<bool> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(Error::engine(format!("inspecting image {image}"))(e)),
        }
    }

    async fn import_empty_image(&self, image: &str, labels: &[(&str, &str)]) -> Result<()> {
        let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
        let options = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(tag.into()),
            changes: labels
                .iter()
                .map(|(key, value)| format!("LABEL {key}={value}"))
                .collect(),
            ..Default::default()
        };
        // Two zero blocks: a tar archive with nothing in it.
        let archive = bollard::body_full(bytes::Bytes::from_static(&[0; 1024]));
        self.docker
            .create_image(Some(options), Some(archive), None)
            .try_collect::<Vec<_>>()
            .await
            .map_err(Error::engine(format!("importing the empty image {image}")))?;
        Ok(())
    }

    async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String> {
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(Error::engine(format!("creating container {name}")))?;
        Ok(created.id)
    }

    async fn start(&self, id: &str) -> Result<()> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(Error::engine(format!("starting container {id}")))
    }

    /// Output from the container's start, following until it stops; with `timestamps`,
    /// every frame starts with the engine's RFC 3339 time and a space.
    fn follow(&self, id: &str, timestamps: bool) -> BoxStream<'static, Result<Output>> {
        let op = format!("reading the output of container {id}");
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .timestamps(timestamps)
            .build();
        self.docker
            .logs(id, Some(options))
            .filter_map(move |chunk| {
                let op = op.clone();
                async move {
                    match chunk {
                        Ok(bollard::container::LogOutput::StdOut { message }) => {
                            Some(Ok(Output::Stdout(message)))
                        }
                        Ok(bollard::container::LogOutput::StdErr { message }) => {
                            Some(Ok(Output::Stderr(message)))
                        }
                        Ok(_) => None,
                        Err(e) => Some(Err(Error::engine(op)(e))),
                    }
                }
            })
            .boxed()
    }

    /// Waits until the container is not running, then reads its exit code and OOM flag;
    /// `None` when the container is gone or being removed.
    async fn wait(&self, id: &str) -> Result<Option<Exit>> {
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
            Some(Err(e)) => return Err(Error::engine(format!("waiting for container {id}"))(e)),
        }
        let Some(state) = self.state(id).await? else {
            return Ok(None);
        };
        // `docker rm -f` marks the container as being removed before it kills it.
        if state.status == Some(ContainerStateStatusEnum::REMOVING) {
            return Ok(None);
        }
        if state.status == Some(ContainerStateStatusEnum::RUNNING) {
            return Err(Error::Other(format!(
                "waiting for container {id}: still running after the wait ended"
            )));
        }
        Ok(Some(Exit {
            code: state.exit_code.unwrap_or(-1),
            oom_killed: state.oom_killed.unwrap_or(false),
        }))
    }

    /// SIGTERM, then SIGKILL after `grace_secs`.
    async fn stop(&self, id: &str, grace_secs: u64) -> Result<()> {
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
            Err(e) => Err(Error::engine(format!("stopping container {id}"))(e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Err(e) if !is_not_found(&e) => {
                Err(Error::engine(format!("removing container {id}"))(e))
            }
            _ => Ok(()),
        }
    }

    /// The last `lines` lines of the container's output, joined by ` | `.
    async fn output_tail(&self, id: &str, lines: usize) -> Result<String> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let chunks: Vec<_> = self.docker.logs(id, Some(options)).collect().await;
        let mut text = String::new();
        for chunk in chunks {
            let chunk = chunk.map_err(Error::engine(format!(
                "reading the output of container {id}"
            )))?;
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" | "))
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        Ok(self.state(id).await?.is_some())
    }

    /// Whether the container was ever started (it may have exited since); false when it is gone.
    async fn has_started(&self, id: &str) -> Result<bool> {
        Ok(self
            .state(id)
            .await?
            .is_some_and(|state| state.status != Some(ContainerStateStatusEnum::CREATED)))
    }

    /// Bytes the container has written to its writable layer (`SizeRw`); `None` when the
    /// container is gone. The engine walks the layer to answer, so this is not cheap.
    async fn writable_layer_bytes(&self, id: &str) -> Result<Option<u64>> {
        let options = InspectContainerOptionsBuilder::default().size(true).build();
        match self.docker.inspect_container(id, Some(options)).await {
            Ok(inspected) => Ok(Some(inspected.size_rw.unwrap_or(0).max(0) as u64)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(Error::engine(format!("measuring container {id}"))(e)),
        }
    }

    /// Whether a network of that name (or ID) exists.
    async fn network_exists(&self, name: &str) -> Result<bool> {
        match self.docker.inspect_network(name, None).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(Error::engine(format!("inspecting network {name}"))(e)),
        }
    }

    /// The ID of cde's own bridge network `name`, on which containers cannot reach each
    /// other, created on first use. The engine does not refuse a second network of the same
    /// name, so processes creating it at once may make several: all then pick the first
    /// created, and each removes its own if that is not the one. (A creation still in
    /// flight is not listed yet, so two processes may still each keep their own; both
    /// networks isolate runs, and later runs all join the first.)
    async fn ensure_isolated_network(&self, name: &str) -> Result<String> {
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
            .map_err(Error::engine(format!("inspecting network {name}")))?;
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

    /// Removes every network named `name`; none is fine.
    async fn remove_networks_named(&self, name: &str) -> Result<()> {
        for network in self.networks_named(name).await? {
            let id = network.id.unwrap_or_default();
            match self.docker.remove_network(&id).await {
                Err(e) if !is_not_found(&e) => {
                    return Err(Error::engine(format!("removing network {name} ({id})"))(e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// All containers (running or not) carrying `label` (`key` or `key=value`).
    async fn containers_labelled(&self, label: &str) -> Result<Vec<Container>> {
        let filters = HashMap::from([("label", vec![label])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        Ok(self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(Error::engine(format!(
                "listing containers labelled {label}"
            )))?
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

/// The engine's address as bollard's local connection reads it: `DOCKER_HOST` when it is a
/// `unix://` address, else the default socket.
fn local_address() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|host| host.starts_with("unix://"))
        .unwrap_or_else(|| DEFAULT_SOCKET.to_owned())
}

/// Why the engine cannot be reached, and what to do about it, from bollard's error.
fn failure(error: &bollard::errors::Error) -> (String, &'static str) {
    use bollard::errors::Error as E;
    match error {
        E::SocketNotFoundError(_) => io_failure(std::io::ErrorKind::NotFound, ""),
        E::IOError { err } => io_failure(err.kind(), &err.to_string()),
        E::RequestTimeoutError => io_failure(std::io::ErrorKind::TimedOut, ""),
        E::DockerResponseServerError {
            status_code,
            message,
        } => (
            format!(
                "it answered HTTP {status_code} ({}), not as a Docker engine does",
                one_line(message)
            ),
            NOT_AN_ENGINE,
        ),
        other => {
            // The connector's error (refused, denied…) is somewhere in the chain.
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(other);
            while let Some(e) = cause {
                if let Some(io) = e.downcast_ref::<std::io::Error>() {
                    return io_failure(io.kind(), &io.to_string());
                }
                cause = e.source();
            }
            (one_line(&other.to_string()), CHECK_ENGINE)
        }
    }
}

/// Why a socket cannot be used, and what to do about it, from the I/O error's kind.
fn io_failure(kind: std::io::ErrorKind, text: &str) -> (String, &'static str) {
    use std::io::ErrorKind as K;
    match kind {
        K::NotFound => ("no such socket".into(), START_ENGINE),
        K::ConnectionRefused => (
            "connection refused (nothing listens on the socket)".into(),
            START_ENGINE,
        ),
        K::PermissionDenied => (
            "permission denied".into(),
            "run cde as a user who may use the socket (one in the `docker` group) or set DOCKER_HOST to a socket you may use",
        ),
        K::TimedOut => ("no answer in time".into(), CHECK_ENGINE),
        _ => (one_line(text), CHECK_ENGINE),
    }
}

/// `major.minor`, as the engine reports its API version.
fn parse_api_version(text: &str) -> Option<bollard::ClientVersion> {
    let (major, minor) = text.split_once('.')?;
    Some(bollard::ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

/// `text` on one line, for messages printed as one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root (as in CI) may use any socket, so the end-to-end tests cannot see this one.
    #[test]
    fn a_socket_one_may_not_use_says_so_on_one_line() {
        let (reason, remedy) = io_failure(std::io::ErrorKind::PermissionDenied, "");
        let error = Error::EngineUnreachable {
            address: DEFAULT_SOCKET.into(),
            reason,
            remedy,
        };
        assert_eq!(
            error.to_string(),
            "cannot reach the Docker engine at unix:///var/run/docker.sock: permission denied; \
             run cde as a user who may use the socket (one in the `docker` group) or set \
             DOCKER_HOST to a socket you may use"
        );
    }

    #[test]
    fn api_versions_compare_by_number() {
        let version = |text| parse_api_version(text).unwrap();
        assert!(version("1.24") < MIN_API_VERSION);
        assert!(version("1.30") >= MIN_API_VERSION);
        assert!(version("1.41") > version("1.9"));
        assert!(parse_api_version("1.41.0").is_none());
        assert!(parse_api_version("").is_none());
    }
}
