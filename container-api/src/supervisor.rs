//! Supervisor mode (`container-api [OPTIONS] -- COMMAND...`): the Container API as the
//! entrypoint of the connector's own container. It listens first, then runs the
//! connector as its child, passes its stdout and stderr on line by line with the run's
//! secret values masked (see [`crate::mask`]), forwards SIGTERM and SIGINT
//! to it, kills it when it outlives the grace period, and once it has exited closes the
//! files, writes `summary.json` and exits with the connector's status.
//!
//! One container per run instead of a sidecar beside the connector: the engine starts
//! half as many containers, and the API is listening before the connector starts.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

use crate::diagnostics::SignalOutcome;
use crate::mask::{LineMasker, MASK_ENV};
use crate::server::{Config, Server};
use crate::storage::WORK_DIR;

/// The longest piece of a line held in memory; a longer line is passed on in pieces.
pub const MAX_LINE: usize = 1 << 20;

/// How long output still arriving after the connector exited (from processes it left
/// behind holding its stdout) is passed on before the supervisor stops reading.
const PIPE_DRAIN: Duration = Duration::from_secs(2);

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
    let masker = config.masker.clone();
    let server = Server::bind(config).await?;
    let state = server.state().clone();
    let url = format!("http://{}", server.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let mut child = Command::new(program);
    child
        .args(arguments)
        .env_remove(MASK_ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
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
        Ok(mut child) => {
            let pumps = [
                child
                    .stdout
                    .take()
                    .map(|out| tokio::spawn(pump(out, tokio::io::stdout(), masker.lines()))),
                child
                    .stderr
                    .take()
                    .map(|err| tokio::spawn(pump(err, tokio::io::stderr(), masker.lines()))),
            ];
            let (status, signalled) = follow(child, &mut term, &mut interrupt, grace).await?;
            if let Some(outcome) = signalled {
                state.signal_outcome(outcome);
            }
            drain(pumps).await;
            exit_code(status)
        }
        Err(e) => {
            eprintln!("cde: cannot start the connector command `{program}`: {e}");
            CANNOT_START
        }
    };
    let _ = stop.send(());
    serving.await??;
    Ok(status)
}

/// Waits (for at most [`PIPE_DRAIN`]) until the connector's output is passed on.
async fn drain(pumps: [Option<JoinHandle<()>>; 2]) {
    let deadline = tokio::time::Instant::now() + PIPE_DRAIN;
    for mut pump in pumps.into_iter().flatten() {
        if tokio::time::timeout_at(deadline, &mut pump).await.is_err() {
            pump.abort();
        }
    }
}

/// Passes the lines of `from` on to `to`, each masked and flushed; a line longer than
/// [`MAX_LINE`] goes out in pieces, bytes that are not UTF-8 as U+FFFD. Reads to the
/// end even when `to` fails, so the connector never blocks on a full pipe.
async fn pump(from: impl AsyncRead + Unpin, to: impl AsyncWrite + Unpin, mut masker: LineMasker) {
    let mut reader = BufReader::with_capacity(64 * 1024, from);
    let mut to = Some(to);
    let mut line = Vec::new();
    loop {
        let buf = match reader.fill_buf().await {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if buf.is_empty() {
            break;
        }
        let room = MAX_LINE - line.len();
        let take = &buf[..buf.len().min(room)];
        match memchr::memchr(b'\n', take) {
            Some(i) => {
                line.extend_from_slice(&take[..i]);
                reader.consume(i + 1);
                pass_on(&mut to, &mut masker, &line, true).await;
                line.clear();
            }
            None => {
                let n = take.len();
                line.extend_from_slice(take);
                reader.consume(n);
                if line.len() >= MAX_LINE {
                    let end = piece_end(&line);
                    pass_on(&mut to, &mut masker, &line[..end], false).await;
                    line.drain(..end);
                }
            }
        }
    }
    if !line.is_empty() {
        pass_on(&mut to, &mut masker, &line, false).await;
    }
}

async fn pass_on(
    to: &mut Option<impl AsyncWrite + Unpin>,
    masker: &mut LineMasker,
    piece: &[u8],
    newline: bool,
) {
    let Some(out) = to else { return };
    let text = String::from_utf8_lossy(piece);
    // A CRLF line: the value may end right before the CR.
    let (text, cr) = match text.strip_suffix('\r') {
        Some(text) => (text, "\r"),
        None => (text.as_ref(), ""),
    };
    let mut masked = masker.mask(text);
    masked.push_str(cr);
    if newline {
        masked.push('\n');
    }
    let written = async {
        out.write_all(masked.as_bytes()).await?;
        out.flush().await
    };
    if written.await.is_err() {
        *to = None;
    }
}

/// Where to cut a full line buffer so no UTF-8 character is split.
fn piece_end(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for i in (len.saturating_sub(3)..len).rev() {
        let b = bytes[i];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        let width = match b {
            0xF8.. => 1, // never valid UTF-8
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if i + width > len && i > 0 { i } else { len };
    }
    len
}

/// Waits for the child, passing signals on; after the first one it has `grace` to exit
/// before it is killed. Tells how it ended after a signal, if it got one.
async fn follow(
    mut child: Child,
    term: &mut tokio::signal::unix::Signal,
    interrupt: &mut tokio::signal::unix::Signal,
    grace: Duration,
) -> anyhow::Result<(ExitStatus, Option<SignalOutcome>)> {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw)
        .context("the connector has no process id")?;
    let mut signalled: Option<tokio::time::Instant> = None;
    let outcome = |at: Option<tokio::time::Instant>, killed| {
        at.map(|at| SignalOutcome {
            after_ms: u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX),
            killed,
        })
    };
    loop {
        let until_kill = async {
            match signalled {
                Some(at) => tokio::time::sleep_until(at + grace).await,
                None => std::future::pending().await,
            }
        };
        let forward = tokio::select! {
            status = child.wait() => return Ok((status?, outcome(signalled, false))),
            _ = term.recv() => Signal::SIGTERM,
            _ = interrupt.recv() => Signal::SIGINT,
            () = until_kill => {
                child.start_kill()?;
                let status = child.wait().await?;
                return Ok((status, outcome(signalled, true)));
            }
        };
        // The child may have exited in the meantime; wait() above reports it.
        let _ = kill(pid, forward);
        signalled.get_or_insert_with(tokio::time::Instant::now);
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::Masker;

    async fn pumped(input: &[u8], secrets: &[&str]) -> Vec<u8> {
        let masker = Masker::new(secrets.iter().map(|s| s.to_string()));
        let mut out = Vec::new();
        pump(input, &mut out, masker.lines()).await;
        out
    }

    #[tokio::test]
    async fn lines_are_masked_and_passed_on() {
        assert_eq!(
            pumped(
                b"a hunter22 b\r\nx hunt\ner22 y\nlast hunter22",
                &["hunter22"]
            )
            .await,
            b"a ******** b\r\nx ********\n******** y\nlast ********"
        );
        assert_eq!(pumped(b"\xffok\n", &[]).await, "\u{fffd}ok\n".as_bytes());
        assert_eq!(pumped(b"", &["x"]).await, b"");
    }

    #[tokio::test]
    async fn a_long_line_goes_out_in_pieces_without_splitting_characters() {
        let mut input = vec![b'a'; MAX_LINE - 1];
        input.extend_from_slice("é".as_bytes());
        input.extend_from_slice(b"tail\nnext\n");
        let out = pumped(&input, &[]).await;
        assert_eq!(out, input);
    }

    #[test]
    fn pieces_end_on_character_boundaries() {
        assert_eq!(piece_end(b"abc"), 3);
        assert_eq!(piece_end("abé".as_bytes()), 4);
        assert_eq!(piece_end(&"abé".as_bytes()[..3]), 2);
        assert_eq!(piece_end(&"a€".as_bytes()[..3]), 1);
        assert_eq!(piece_end(&"a😀".as_bytes()[..4]), 1);
        assert_eq!(piece_end(b"\xff\xff\xff\xff"), 4);
    }
}
