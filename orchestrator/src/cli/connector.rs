//! `cde connector …`.

use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::backend::Backend;
use super::output::Output;
use crate::error::{Error, Result};

#[derive(Subcommand)]
pub enum Cmd {
    /// Register a manifest (JSON or YAML); a changed manifest adds a version.
    Register { path: PathBuf },
    /// List registered connectors.
    List,
    /// Show a connector's latest manifest.
    Show { code: String },
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
