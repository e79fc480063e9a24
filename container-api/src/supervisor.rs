//! Supervisor mode (`container-api [OPTIONS] -- COMMAND...`): the Container API as the
//! entrypoint of the connector's own container. It listens first, then runs the
//! connector as its child with the same stdout and stderr, forwards SIGTERM and SIGINT
//! to it, kills it when it outlives the grace period, and once it has exited closes the
//! files, writes `summary.json` and exits with the connector's status.
//!
//! One container per run instead of a sidecar beside the connector: the engine starts
//! half as many containers, and the API is listening before the connector starts.

use std::process::ExitStatus;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

use crate::server::{Config, Server};
use crate::storage::WORK_DIR;

/// The exit status when the command cannot be started, as in a shell.
pub const CANNOT_START: i32 = 127;

/// Runs `command` under a Container API serving `config`; returns the exit status for
/// this process: the connector's own, or 128 + the signal that ended it.
pub async fn run(config: Config, command: &[String], grace: Duration) -> anyhow::Result<i32> {
    let (program, arguments) = command
        .split_first()
        .context("no connector command given after --")?;
    // Registered before the child starts, so no signal is missed.
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let work_dir = config.run_dir.join(WORK_DIR).display().to_string();
    let server = Server::bind(config).await?;
    let url = format!("http://{}", server.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let mut child = Command::new(program);
    child.args(arguments);
    // What a container run sets explicitly; defaults for a connector run on the host.
    for (name, value) in [
        ("CONTAINER_API_URL", url.as_str()),
        ("CDE_WORK_DIR", work_dir.as_str()),
    ] {
        if std::env::var_os(name).is_none() {
            child.env(name, value);
        }
    }
    let status = match child.spawn() {
        Ok(child) => exit_code(follow(child, &mut term, &mut interrupt, grace).await?),
        Err(e) => {
            eprintln!("cde: cannot start the connector command `{program}`: {e}");
            CANNOT_START
        }
    };
    let _ = stop.send(());
    serving.await??;
    Ok(status)
}

/// Waits for the child, passing signals on; after the first one it has `grace` to exit
/// before it is killed.
async fn follow(
    mut child: Child,
    term: &mut tokio::signal::unix::Signal,
    interrupt: &mut tokio::signal::unix::Signal,
    grace: Duration,
) -> anyhow::Result<ExitStatus> {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw)
        .context("the connector has no process id")?;
    let mut deadline = None;
    loop {
        let until_kill = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let forward = tokio::select! {
            status = child.wait() => return Ok(status?),
            _ = term.recv() => Signal::SIGTERM,
            _ = interrupt.recv() => Signal::SIGINT,
            () = until_kill => {
                child.start_kill()?;
                return Ok(child.wait().await?);
            }
        };
        // The child may have exited in the meantime; wait() above reports it.
        let _ = kill(pid, forward);
        deadline.get_or_insert(tokio::time::Instant::now() + grace);
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1)
}
