//! `cde demo`.

use std::process::ExitCode;

use super::backend::Backend;
use super::output::Output;
use crate::model::{RunInputs, RunRequest};
use crate::Result;

/// Builds, registers and runs the sample Python connector.
pub async fn run(backend: &impl Backend, out: Output) -> Result<ExitCode> {
    let cde = backend.local("demo")?;
    crate::demo::build_sample_image()?;
    let root = crate::api_binary::source_root().expect("checked by build_sample_image");
    let manifest = root
        .join(crate::demo::SAMPLE_CONNECTOR)
        .join("manifest.yaml");
    let registration = cde.register_file(&manifest).await?;
    eprintln!(
        "registered {} version {}",
        registration.code, registration.version
    );
    let request = RunRequest {
        connector: registration.code,
        options: [("NAME".to_owned(), "demo".to_owned())].into(),
        ..Default::default()
    };
    super::run::run_and_watch(backend, request, &RunInputs::default(), out).await
}
