//! `cde gc`.

use std::process::ExitCode;

use clap::Args;

use super::backend::Backend;
use super::output::Output;
use crate::Result;

#[derive(Args)]
pub struct Gc {
    /// Only print what would be removed.
    #[arg(long)]
    dry_run: bool,
}

impl Gc {
    pub async fn run(self, backend: &impl Backend, out: Output) -> Result<ExitCode> {
        let report = backend.local("gc")?.collect_garbage(self.dry_run).await?;
        out.show(&report, |r| Ok(r.describe()))?;
        Ok(super::status(report.errors.is_empty()))
    }
}
