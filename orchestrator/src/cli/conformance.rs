//! `cde test`: the conformance kit on a connector folder, a manifest or a registered code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use console::style;

use super::backend::Backend;
use super::dev::BuildArgs;
use super::output::Output;
use crate::conformance::{Kit, Settings};
use crate::connector_folder::ConnectorFolder;
use crate::error::Result;
use crate::model::{Check, CheckResult, Manifest, Verdict};
use crate::options::OptionValues;

#[derive(Args)]
pub struct Test {
    /// A connector folder (built first), a manifest file (its image already built), or the
    /// code of a registered connector.
    target: String,
    /// The folder's manifest, when it is not manifest.yaml (or .yml, .json) in it.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    #[command(flatten)]
    build: BuildArgs,
    /// An option value of the valid runs, NAME=VALUE (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// The feed of the valid run (JSONL); default: generated products.
    #[arg(long, value_name = "FILE.jsonl")]
    input: Option<PathBuf>,
    /// A value the connector must refuse, NAME=VALUE (repeatable); default: a required
    /// option left out, or a select or checkbox given a value outside its choices.
    #[arg(long = "invalid", value_name = "NAME=VALUE")]
    invalid: Vec<String>,
    /// Run only this check (repeatable): health-check, valid-run, columns, keeps-rows,
    /// column-prefix, empty-input, delta-streams, invalid-options, sigterm, bad-request,
    /// exhaustion, memory.
    #[arg(long = "only", value_name = "CHECK")]
    only: Vec<Check>,
}

impl Test {
    pub async fn run(self, backend: &impl Backend, out: Output) -> Result<ExitCode> {
        let cde = backend.local("test")?;
        let manifest = self.manifest_of(backend).await?;
        let settings = Settings {
            options: OptionValues::parse_pairs(&self.set)?,
            input: self.input,
            invalid: OptionValues::parse_pairs(&self.invalid)?,
            only: self.only,
        };
        out.note(|| format!("cde test: {} ({})", manifest.code, manifest.kind));
        let kit = Kit::new(&cde.config, manifest, settings);
        let checks = kit.run(|result| {
            if !out.json {
                println!("{}", line(result));
            }
        });
        // The checks are dropped (no run is started any more) before their runs are removed.
        let finished = tokio::select! {
            report = checks => Some(report),
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(report) = finished else {
            out.note(|| "cde test: interrupted; removing the kit's runs".into());
            kit.abandon().await?;
            return Ok(ExitCode::from(130));
        };
        let report = report?;
        if out.json {
            out.show(&report, |_| Ok(String::new()))?;
        } else {
            let failed = report
                .results
                .iter()
                .filter(|r| r.verdict == Verdict::Fail)
                .count();
            out.note(|| match failed {
                0 => format!("{}", style("every check passed").green().bold()),
                n => format!("{}", style(format!("{n} check(s) failed")).red().bold()),
            });
        }
        Ok(super::status(report.passed()))
    }

    /// A folder's manifest (its image built first), a manifest file's, or a registered one.
    async fn manifest_of(&self, backend: &impl Backend) -> Result<Manifest> {
        let target = std::path::Path::new(&self.target);
        if target.is_dir() {
            let folder = ConnectorFolder::open(target, self.manifest.as_deref())?;
            let manifest = folder.load_manifest()?;
            folder.build(&manifest, &self.build.build()).await?;
            return Ok(manifest);
        }
        if target.is_file() {
            return Manifest::load(target);
        }
        Ok(backend.connector(&self.target).await?.manifest)
    }
}

/// `PASS  health-check     exited 0 in 0.3 s, with no network`.
fn line(result: &CheckResult) -> String {
    let verdict = format!("{:<4}", result.verdict);
    let verdict = match result.verdict {
        Verdict::Pass => style(verdict).green().bold(),
        Verdict::Fail => style(verdict).red().bold(),
        Verdict::Skip => style(verdict).dim(),
    };
    format!(
        "{verdict}  {:<16} {}",
        result.check.to_string(),
        result.reason
    )
}
