//! `cde pipeline …`.

use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::backend::Backend;
use super::output::Output;
use crate::error::{Error, Result};
use crate::model::{ListenerStatus, PipelineRun, PipelineStatus};

#[derive(Subcommand)]
pub enum Cmd {
    /// Create or replace a pipeline from a file (JSON or YAML).
    Create { path: PathBuf },
    /// List pipelines.
    List,
    /// Show a pipeline's definition.
    Show { name: String },
    /// Run a pipeline to its end and show each step (exit status 0 exactly when it succeeded).
    Run { name: String },
    /// List a pipeline's recent runs.
    Runs {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// List a pipeline's webhook listeners: URLs, masked secrets, event counts.
    Listeners { name: String },
    /// Print a listener's secret, to configure its sender with.
    Secret {
        name: String,
        listener: String,
        /// Replace it first with a new random secret (deliveries with the old one are then
        /// refused).
        #[arg(long)]
        rotate: bool,
        /// With --rotate: the new secret is read from standard input (its first line)
        /// instead of generated, for a sender that chooses its own.
        #[arg(long, requires = "rotate")]
        stdin: bool,
    },
}

impl Cmd {
    pub async fn run(self, backend: &impl Backend, out: Output) -> Result<ExitCode> {
        match self {
            Cmd::Create { path } => {
                out.show(&backend.save_pipeline(&path).await?, |p| {
                    Ok(format!("saved pipeline {}\n", p.name))
                })?;
            }
            Cmd::List => {
                out.show(&backend.pipelines().await?, |pipelines| {
                    let mut text = format!(
                        "{:<32} {:>7} {:>8} {:>7}  SCHEDULE\n",
                        "PIPELINE", "SOURCES", "SERVICES", "EXPORTS"
                    );
                    for p in pipelines {
                        writeln!(
                            text,
                            "{:<32} {:>7} {:>8} {:>7}  {}",
                            p.name,
                            p.sources.len(),
                            p.services.len(),
                            p.exports.len(),
                            p.schedule.as_deref().unwrap_or("-")
                        )
                        .expect("writing to a String");
                    }
                    Ok(text)
                })?;
            }
            Cmd::Show { name } => {
                out.show(&backend.pipeline(&name).await?, |pipeline| {
                    serde_yaml_ng::to_string(pipeline)
                        .map_err(|e| Error::Other(format!("printing pipeline {name} as YAML: {e}")))
                })?;
            }
            Cmd::Run { name } => {
                let (run, executor) = backend.start_pipeline(&name).await?;
                out.note(|| format!("pipeline run {} of {name}", run.id));
                let run = backend.finish_pipeline(run, executor).await?;
                out.show(&run, |run| Ok(describe(run)))?;
                return Ok(super::status(run.status == PipelineStatus::Succeeded));
            }
            Cmd::Runs { name, limit } => {
                out.show(&backend.pipeline_runs(&name, limit).await?, |runs| {
                    Ok(runs.iter().map(|run| describe(run) + "\n").collect())
                })?;
            }
            Cmd::Listeners { name } => {
                out.show(&backend.listeners(&name).await?, |listeners| {
                    Ok(describe_listeners(listeners))
                })?;
            }
            Cmd::Secret {
                name,
                listener,
                rotate,
                stdin,
            } => {
                let given = match stdin {
                    true => {
                        let mut line = String::new();
                        std::io::stdin().read_line(&mut line).map_err(|e| {
                            Error::Other(format!("reading the secret from standard input: {e}"))
                        })?;
                        Some(line.trim_end_matches(['\r', '\n']).to_owned())
                    }
                    false => None,
                };
                let secret = backend
                    .listener_secret(&name, &listener, rotate, given)
                    .await?;
                out.show(&crate::model::ListenerSecret { secret }, |s| {
                    Ok(format!("{}\n", s.secret))
                })?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn describe_listeners(listeners: &[ListenerStatus]) -> String {
    let mut text = format!(
        "{:<24} {:<12} {:<9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}  URL\n",
        "LISTENER",
        "AUTH",
        "SECRET",
        "RECEIVED",
        "DEDUPED",
        "REJECTED",
        "CONSUMED",
        "PENDING",
        "OLDEST"
    );
    for l in listeners {
        let oldest = l
            .oldest_pending_secs
            .map_or("-".to_owned(), |secs| format!("{secs:.0}s"));
        writeln!(
            text,
            "{:<24} {:<12} {:<9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}  {}",
            l.name,
            l.auth.kind(),
            l.secret,
            l.received,
            l.deduplicated,
            l.rejected,
            l.consumed,
            l.pending,
            oldest,
            l.url
        )
        .expect("writing to a String");
    }
    text
}

fn describe(run: &PipelineRun) -> String {
    let mut text = format!(
        "pipeline run {} of {}: {}{}\n",
        run.id,
        run.pipeline,
        run.status.as_str(),
        run.reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    if let Some(version) = run.dataset_version {
        writeln!(text, "dataset pipeline/{} version {version}", run.pipeline)
            .expect("writing to a String");
    }
    writeln!(
        text,
        "{:>4}  {:<8} {:<30} {:<10} {:>8} {:>8}  RUN",
        "STEP", "KIND", "CONNECTOR", "STATUS", "ROWS IN", "ROWS OUT"
    )
    .expect("writing to a String");
    let count = |rows: Option<i64>| rows.map_or("-".to_owned(), |r| r.to_string());
    for step in &run.steps {
        writeln!(
            text,
            "{:>4}  {:<8} {:<30} {:<10} {:>8} {:>8}  {}",
            step.position,
            step.kind.as_str(),
            step.connector,
            step.status,
            count(step.rows_in),
            count(step.rows_out),
            step.run_id.as_deref().unwrap_or("-")
        )
        .expect("writing to a String");
    }
    text
}
