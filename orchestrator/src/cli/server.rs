//! `cde server`: the management API, the scheduler, recovery and the sweeper.

use std::process::ExitCode;

use super::backend::Backend;
use crate::Result;

pub async fn run(backend: &impl Backend) -> Result<ExitCode> {
    let cde = backend.local("server")?.clone();
    eprint!("cde server configuration:\n{}", cde.config.describe());
    let server = crate::server::serve(cde).await?;
    // On standard output, for whoever started the server on port 0 to find it.
    println!("cde server listening on {}", server.url());
    server.run_until_signal().await?;
    eprintln!("cde server stopped; runs in flight continue and are adopted at the next start");
    Ok(ExitCode::SUCCESS)
}
