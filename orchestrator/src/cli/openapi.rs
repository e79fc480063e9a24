//! `cde openapi`.

use std::process::ExitCode;

use clap::Args;

use crate::Result;

#[derive(Args)]
pub struct Openapi {
    /// Print the JSON Schema of a connector manifest instead (`openapi/manifest.schema.json`).
    #[arg(long)]
    manifest_schema: bool,
}

impl Openapi {
    pub fn run(&self) -> Result<ExitCode> {
        match self.manifest_schema {
            true => print!("{}", crate::manifest::json_schema_text()),
            false => print!("{}", crate::api::openapi_json()),
        }
        Ok(ExitCode::SUCCESS)
    }
}
