//! Registering connectors: validation, the health check, versions.

use std::path::Path;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};

use crate::engine::container;
use crate::error::{Error, Result};
use crate::model::{Manifest, Registration};
use crate::{executable, Cde};

impl Cde {
    pub async fn register_file(&self, path: &Path) -> Result<Registration> {
        self.register(Manifest::load(path)?).await
    }

    /// Registers a validated manifest; a changed one becomes a new version once its
    /// health check passes.
    pub async fn register(&self, manifest: Manifest) -> Result<Registration> {
        if let Ok(latest) = self.store.connector(&manifest.code).await {
            if latest.manifest == manifest {
                return Ok(Registration {
                    code: manifest.code,
                    version: latest.version,
                    created: false,
                });
            }
        }
        self.health_check(&manifest).await?;
        let (version, created) = self.store.register(&manifest).await?;
        Ok(Registration {
            code: manifest.code,
            version,
            created,
        })
    }

    /// `[command] [arguments] [health_check]` in a throw-away container, without network
    /// and with the cde executable mounted as in a run, must exit 0 within the health-check
    /// timeout.
    pub(crate) async fn health_check(&self, manifest: &Manifest) -> Result<()> {
        self.health_check_with(manifest, &Default::default()).await
    }

    /// [`Cde::health_check`] with option values delivered as a run's are: a connector's
    /// check of its configuration.
    pub(crate) async fn health_check_with(
        &self,
        manifest: &Manifest,
        values: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        let failed = |reason: String| Error::HealthCheck {
            code: manifest.code.clone(),
            reason,
        };
        let engine = self.engine().await?;
        if !engine.image_exists(&manifest.image).await? {
            return Err(failed(format!("image not found: {}", manifest.image)));
        }
        // A manifest's limits were checked when it was parsed.
        let limits = self.config.default_limits().with(&manifest.limits);
        let (env, option_arguments) =
            crate::options::OptionValues::delivery(values, manifest.execution_mode);
        let arguments = manifest
            .arguments
            .iter()
            .cloned()
            .chain(option_arguments)
            .chain(manifest.health_check.clone())
            .collect();
        let body = ContainerCreateBody {
            image: Some(manifest.image.clone()),
            entrypoint: Some(vec![manifest.command.clone()]),
            cmd: Some(arguments),
            env: Some(env),
            labels: Some(container::labels(
                self.store.instance(),
                &[("cde.role", "health-check")],
            )),
            host_config: Some(HostConfig {
                // As in a run, the cde executable is at hand (the demo's connector is it).
                binds: Some(vec![format!(
                    "{}:{}:ro",
                    self.executable().await?.display(),
                    executable::IN_CONTAINER
                )]),
                ..container::confined(&limits, "none")
            }),
            ..Default::default()
        };
        let name = format!(
            "cde-health-{}-{}",
            manifest.code,
            uuid::Uuid::new_v4().simple()
        );
        let timeout = Duration::from_secs(self.config.health_check_timeout_secs);
        container::run_once(engine, &name, body, timeout)
            .await?
            .map_err(failed)
    }
}
