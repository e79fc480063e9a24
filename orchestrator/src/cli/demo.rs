//! `cde demo`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use super::backend::Backend;
use super::output::Output;
use crate::model::{RunInputs, RunRequest};
use crate::Result;

#[derive(Args)]
pub struct Demo {
    /// The connector to run: `python`, the sample, built here from its sources (the default
    /// when they are at hand), or `builtin`, which needs no image build.
    #[arg(long, value_enum)]
    connector: Option<DemoConnector>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DemoConnector {
    Python,
    Builtin,
}

impl Demo {
    /// Prepares, registers and runs the demo connector, timing each phase.
    pub async fn run(self, backend: &impl Backend, out: Output) -> Result<ExitCode> {
        let cde = backend.local("demo")?;
        let started = Instant::now();
        let connector = self.connector.unwrap_or(match crate::demo::source_root() {
            Some(_) => DemoConnector::Python,
            None => DemoConnector::Builtin,
        });
        let manifest = match connector {
            DemoConnector::Python => {
                out.note(|| {
                    format!(
                        "cde demo: building the sample connector's image from {}",
                        crate::demo::SAMPLE_CONNECTOR
                    )
                });
                crate::demo::build_image(crate::demo::SAMPLE_CONNECTOR)?;
                let root = crate::demo::source_root().expect("checked by build_image");
                crate::model::Manifest::load(
                    &root
                        .join(crate::demo::SAMPLE_CONNECTOR)
                        .join("manifest.yaml"),
                )?
            }
            DemoConnector::Builtin => {
                out.note(|| "cde demo: the built-in connector, in an empty image".into());
                cde.builtin_demo().await?
            }
        };
        let image = started.elapsed();
        let registration = cde.register(manifest).await?;
        let registered = started.elapsed();
        out.note(|| {
            format!(
                "cde demo: registered {} version {}",
                registration.code, registration.version
            )
        });
        let request = RunRequest {
            connector: registration.code,
            options: [("NAME".to_owned(), "demo".to_owned())].into(),
            ..Default::default()
        };
        let status =
            super::run::run_and_watch(backend, request, &RunInputs::default(), out).await?;
        let total = started.elapsed();
        out.note(|| {
            format!(
                "cde demo: {} in total: image {}, registration {}, run {}",
                secs(total),
                secs(image),
                secs(registered - image),
                secs(total - registered)
            )
        });
        Ok(status)
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
