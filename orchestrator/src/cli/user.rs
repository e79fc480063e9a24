//! `cde user`: the console's users besides the API token's holder.

use std::process::ExitCode;

use clap::Subcommand;

use super::backend::Backend;
use super::output::Output;
use crate::{Error, Result};

#[derive(Subcommand)]
pub enum Cmd {
    /// Add a user who signs in to the console with a password, read from standard input
    /// (one line, at least 12 characters).
    Add { name: String },
    /// List the users.
    List,
    /// Remove a user: their password no longer signs in (sessions end with the server).
    Remove { name: String },
}

impl Cmd {
    pub async fn run(self, backend: &impl Backend, out: Output) -> Result<ExitCode> {
        let cde = backend.local("user")?;
        match self {
            Cmd::Add { name } => {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map_err(|e| {
                    Error::Other(format!("reading the password from standard input: {e}"))
                })?;
                cde.add_user(&name, line.trim_end_matches(['\r', '\n']))
                    .await?;
                out.show(&serde_json::json!({"added": name}), |_| {
                    Ok(format!("user {name} added\n"))
                })?;
            }
            Cmd::List => {
                let users = cde.users().await?;
                out.show(&users, |users| {
                    Ok(users.iter().map(|u| format!("{u}\n")).collect())
                })?;
            }
            Cmd::Remove { name } => {
                cde.remove_user(&name).await?;
                out.show(&serde_json::json!({"removed": name}), |_| {
                    Ok(format!("user {name} removed\n"))
                })?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
