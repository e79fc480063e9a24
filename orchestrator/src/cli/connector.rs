//! `cde connector …`.

use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::backend::Backend;
use super::output::Output;
use crate::error::{Error, Result};
use crate::model::CheckRequest;
use crate::options::OptionValues;

#[derive(Subcommand)]
pub enum Cmd {
    /// Register a manifest (JSON or YAML); a changed manifest adds a version.
    Register { path: PathBuf },
    /// List registered connectors.
    List,
    /// Show a connector's latest manifest.
    Show { code: String },
    /// Make an HTTP connector's first request with these options and tell what it found
    /// (status, records of the first page, their columns); nothing is written.
    Check {
        code: String,
        /// An option value, NAME=VALUE (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// The network to join: isolated (cde's own), none, or an existing network's name.
        #[arg(long, value_name = "NETWORK")]
        network: Option<crate::model::Network>,
    },
}

impl Cmd {
    pub async fn run(self, backend: &impl Backend, out: Output) -> Result<ExitCode> {
        match self {
            Cmd::Register { path } => {
                out.show(&backend.register(&path).await?, |r| {
                    let what = if r.created { "registered" } else { "unchanged" };
                    Ok(format!("{what} {} version {}\n", r.code, r.version))
                })?;
            }
            Cmd::List => {
                out.show(&backend.connectors().await?, |connectors| {
                    let mut text =
                        format!("{:<32} {:>7}  {:<12}  IMAGE\n", "CODE", "VERSION", "TYPE");
                    for connector in connectors {
                        let m = &connector.manifest;
                        writeln!(
                            text,
                            "{:<32} {:>7}  {:<12}  {}",
                            m.code, connector.version, m.kind, m.image
                        )
                        .expect("writing to a String");
                    }
                    Ok(text)
                })?;
            }
            Cmd::Check { code, set, network } => {
                let request = CheckRequest {
                    options: OptionValues::parse_pairs(&set)?,
                    network,
                };
                let report = backend.check(&code, request).await?;
                out.show(&report, |r| {
                    let mut text = format!("request   {}\n", r.request);
                    if let Some(status) = r.status {
                        writeln!(text, "status    {status}").expect("writing to a String");
                    }
                    if r.ok {
                        writeln!(text, "records   {} on the first page", r.records)
                            .expect("writing to a String");
                        writeln!(text, "columns   {}", r.columns.join(", "))
                            .expect("writing to a String");
                    }
                    if let Some(failure) = &r.failure {
                        let kind = r.failure_kind.as_deref().unwrap_or("failure");
                        writeln!(text, "failed    {kind}: {failure}").expect("writing to a String");
                    }
                    Ok(text)
                })?;
                return Ok(super::status(report.ok));
            }
            Cmd::Show { code } => {
                out.show(&backend.connector(&code).await?, |connector| {
                    let yaml = serde_yaml_ng::to_string(&connector.manifest).map_err(|e| {
                        Error::Other(format!("printing connector {code} as YAML: {e}"))
                    })?;
                    Ok(format!("# version {}\n{yaml}", connector.version))
                })?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
