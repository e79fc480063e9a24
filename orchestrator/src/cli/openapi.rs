//! `cde openapi`.

use std::process::ExitCode;

use crate::Result;

pub fn run() -> Result<ExitCode> {
    print!("{}", crate::api::openapi_json());
    Ok(ExitCode::SUCCESS)
}
