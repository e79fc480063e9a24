//! A running management API with the background loops of `cde server`, every task tracked
//! so that [`Server::shutdown`] stops them all and waits for them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};

use crate::{Cde, Config};

pub use crate::scheduler::Loop;

pub struct Server {
    addr: SocketAddr,
    cde: Arc<Cde>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Server {
    /// Binds `cde.config.listen` (port 0 picks a free port; see [`Server::addr`]) and
    /// serves the management API guarded by `token` and the web console, with the given
    /// loops beside it.
    pub async fn start(cde: Arc<Cde>, token: String, loops: &[Loop]) -> Result<Self> {
        let listen = cde.config.listen.clone();
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| Error::Other(format!("binding the management API to {listen}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Other(format!("the address bound for {listen}: {e}")))?;
        let server = Self {
            addr,
            cde: cde.clone(),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        };
        for background in loops {
            server.spawn_loop(background.run(cde.clone()));
        }
        let app = crate::console::app(cde, token);
        let stopped = server.stop.clone().cancelled_owned();
        server.tasks.spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!("serving the management API on {addr}: {e}");
            }
        });
        Ok(server)
    }

    /// Runs a loop until the server stops.
    fn spawn_loop(&self, work: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = work => {}
            }
        });
    }

    /// The address the API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn cde(&self) -> &Arc<Cde> {
        &self.cde
    }

    /// Stops accepting requests, lets those in progress finish, stops the loops and waits
    /// for all of it. Runs already executing go on in their containers; the next server
    /// adopts them.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Serves until ctrl-c or SIGTERM, then shuts down.
    pub async fn run_until_signal(self) -> Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| Error::Other(format!("installing the SIGTERM handler: {e}")))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        self.shutdown().await;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What `cde server` serves: the runs an earlier server left are recovered first, then the
/// API (with the token from [`api_token`]) and every loop start.
pub async fn serve(cde: Arc<Cde>) -> Result<Server> {
    let token = api_token(&cde.config, Token::CreateIfMissing)?;
    let adopted = cde.recover().await?;
    if adopted > 0 {
        eprintln!("adopted {adopted} run(s) left by an earlier server");
    }
    Server::start(cde, token, &Loop::ALL).await
}

/// Whether [`api_token`] may create the token file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// A server: the first one creates it.
    CreateIfMissing,
    /// A client of a server on this machine: it reads the server's.
    ReadOnly,
}

/// `CDE_API_TOKEN`, or the token in `<data dir>/api-token` (created by a server on first use).
pub fn api_token(config: &Config, mode: Token) -> Result<String> {
    if let Some(token) = &config.api_token {
        return Ok(token.clone());
    }
    let path = config.api_token_path();
    match std::fs::read_to_string(&path) {
        Ok(token) => Ok(token.trim().to_owned()),
        Err(e) if mode == Token::ReadOnly => Err(Error::Config(format!(
            "CDE_SERVER is set but CDE_API_TOKEN is not, and {} cannot be read: {e}",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let token = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(Error::file("creating the API token file", &path))?;
            file.write_all(token.as_bytes())
                .map_err(Error::file("writing the API token to", &path))?;
            eprintln!("created an API token in {}", path.display());
            Ok(token)
        }
        Err(e) => Err(Error::file("reading the API token from", &path)(e)),
    }
}
