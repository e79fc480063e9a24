//! Connections: a connector with the values an operator entered, checked before it is
//! saved (or saved anyway, on purpose), edited without retyping its secrets, reused by
//! pipelines, and discovered: a preview run of a source whose columns and first rows are
//! kept with it.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;

use crate::error::{Error, Result};
use crate::model::{
    Connection, ConnectionCheck, ConnectorType, Discovery, FieldType, Manifest, RunRequest,
    RunStatus, SaveConnection,
};
use crate::options::{OptionValues, MASK};
use crate::Cde;

/// Rows a discovery keeps; its run is stopped once it has written them.
pub const DISCOVERED_ROWS: usize = 20;

/// How often a discovery looks at what its run has written.
const DISCOVERY_POLL: std::time::Duration = std::time::Duration::from_millis(200);

impl Cde {
    /// Checks `values` for `connector`: first against its manifest's options, then with
    /// the connector itself (an HTTP connector's first request; otherwise its health
    /// check, run with the values as a run gets them). A failed check is an answer, not an
    /// error; an error is cde failing to check.
    pub async fn check_connection(
        &self,
        connector: &str,
        values: &BTreeMap<String, String>,
    ) -> Result<ConnectionCheck> {
        let manifest = self.store.connector(connector).await?.manifest;
        let outcome = |reason: Option<String>, option: Option<String>| ConnectionCheck {
            ok: reason.is_none(),
            reason,
            option,
            at: Utc::now(),
        };
        let resolved = match OptionValues::resolve(&manifest, values.clone()) {
            Ok(resolved) => resolved,
            Err(Error::InvalidOption { option, message }) => {
                return Ok(outcome(Some(message), Some(option)))
            }
            Err(Error::InvalidConfig(message)) => return Ok(outcome(Some(message), None)),
            Err(other) => return Err(other),
        };
        if crate::http::definition(&manifest)
            .map_err(Error::InvalidConfig)?
            .is_some()
        {
            let report = self
                .check(RunRequest {
                    connector: connector.to_owned(),
                    options: resolved.into_values(),
                    ..Default::default()
                })
                .await;
            return match report {
                Ok(report) if report.ok => Ok(outcome(None, None)),
                Ok(report) => Ok(outcome(
                    Some(format!(
                        "{}: {}",
                        report.request,
                        report.failure.unwrap_or_else(|| "failed".to_owned())
                    )),
                    None,
                )),
                Err(Error::InvalidConfig(message)) => Ok(outcome(Some(message), None)),
                Err(other) => Err(other),
            };
        }
        match self.health_check_with(&manifest, resolved.as_map()).await {
            Ok(()) => Ok(outcome(None, None)),
            Err(Error::HealthCheck { reason, .. }) => Ok(outcome(Some(reason), None)),
            Err(other) => Err(other),
        }
    }

    /// Saves connection `name`: a password left out or given as the mask keeps the value
    /// saved before. The values are checked first; a failed check refuses the save unless
    /// `save_anyway`. A discovery is kept while the connector and values stay the same.
    pub async fn save_connection(&self, name: &str, request: SaveConnection) -> Result<Connection> {
        if !crate::manifest::is_kebab_case(name) {
            return Err(Error::InvalidConfig(format!(
                "connection name {name:?} must be kebab-case"
            )));
        }
        let manifest = self.store.connector(&request.connector).await?.manifest;
        let before = match self.store.connection(name).await {
            Ok(before) => Some(before),
            Err(Error::NotFound { .. }) => None,
            Err(other) => return Err(other),
        };
        let mut values = request.values;
        for option in manifest
            .options
            .iter()
            .filter(|o| o.field_type == FieldType::Password)
        {
            let kept = before
                .as_ref()
                .filter(|b| b.connector == request.connector)
                .and_then(|b| b.values.get(&option.name));
            let given = values.get(&option.name).map(String::as_str);
            if let (None | Some("") | Some(MASK), Some(kept)) = (given, kept) {
                values.insert(option.name.clone(), kept.clone());
            }
        }
        let check = self.check_connection(&request.connector, &values).await?;
        if !check.ok && !request.save_anyway {
            let reason = check.reason.clone().unwrap_or_default();
            return Err(match check.option {
                Some(option) => Error::InvalidOption {
                    option,
                    message: reason,
                },
                None => Error::InvalidConfig(format!(
                    "the check of connection {name} failed: {reason} (save_anyway saves it all the same)"
                )),
            });
        }
        let now = Utc::now();
        let discovery = before
            .as_ref()
            .filter(|b| b.connector == request.connector && b.values == values)
            .and_then(|b| b.discovery.clone());
        let connection = Connection {
            name: name.to_owned(),
            connector: request.connector,
            discovery,
            created_at: before.as_ref().map_or(now, |b| b.created_at),
            updated_at: now,
            values,
            check: Some(check),
        };
        self.store.save_connection(&connection).await?;
        self.masked_connection(connection).await
    }

    /// Connection `name`, its passwords masked.
    pub async fn connection(&self, name: &str) -> Result<Connection> {
        let connection = self.store.connection(name).await?;
        self.masked_connection(connection).await
    }

    /// Every connection, passwords masked.
    pub async fn connections(&self) -> Result<Vec<Connection>> {
        let manifests: HashMap<String, Manifest> = self
            .store
            .connectors()
            .await?
            .into_iter()
            .map(|c| (c.manifest.code.clone(), c.manifest))
            .collect();
        let connections = self.store.connections().await?;
        Ok(connections
            .into_iter()
            .map(|c| {
                let manifest = manifests.get(&c.connector);
                masked(c, manifest)
            })
            .collect())
    }

    async fn masked_connection(&self, connection: Connection) -> Result<Connection> {
        let manifest = match self.store.connector(&connection.connector).await {
            Ok(connector) => Some(connector.manifest),
            Err(Error::NotFound { .. }) => None,
            Err(other) => return Err(other),
        };
        Ok(masked(connection, manifest.as_ref()))
    }

    /// Discovers what source connection `name` produces: a preview run of it in this
    /// process with its values, stopped (cancelled) once it has written
    /// [`DISCOVERED_ROWS`] rows; the columns and those rows are kept with the connection
    /// until it is discovered again or its values change.
    pub async fn discover(&self, name: &str) -> Result<Connection> {
        let mut connection = self.store.connection(name).await?;
        let manifest = self.store.connector(&connection.connector).await?.manifest;
        if manifest.kind != ConnectorType::DataSource {
            return Err(Error::InvalidConfig(format!(
                "connection {name}: only a data source is discovered; {} is a {}",
                manifest.code, manifest.kind
            )));
        }
        let run = self
            .start_with(
                RunRequest {
                    connector: connection.connector.clone(),
                    options: connection.values.clone(),
                    ..Default::default()
                },
                &Default::default(),
            )
            .await?;
        let id = run.id.clone();
        // A preview: once the source has written the rows kept, it is stopped.
        let execution = self.execute_with_retries(run);
        tokio::pin!(execution);
        let enough = async {
            loop {
                tokio::time::sleep(DISCOVERY_POLL).await;
                let written = self.output_page(&id, false, 0, DISCOVERED_ROWS).await;
                if written.is_ok_and(|page| page.records.len() >= DISCOVERED_ROWS) {
                    return;
                }
            }
        };
        let (run, stopped) = tokio::select! {
            run = &mut execution => (run?, false),
            () = enough => {
                self.cancel(&id).await?;
                (execution.await?, true)
            }
        };
        let previewed =
            run.status == RunStatus::Succeeded || (stopped && run.status == RunStatus::Cancelled);
        if !previewed {
            return Err(Error::InvalidConfig(format!(
                "connection {name}: the discovery run {} ended {}: {}",
                run.id,
                run.status.as_str(),
                run.reason.unwrap_or_default()
            )));
        }
        let page = self.output_page(&run.id, false, 0, DISCOVERED_ROWS).await?;
        connection.discovery = Some(Discovery {
            run_id: run.id,
            columns: crate::dataset::columns_of(&page.records),
            rows: page.records,
            at: Utc::now(),
        });
        self.store.save_connection(&connection).await?;
        self.masked_connection(connection).await
    }

    pub async fn delete_connection(&self, name: &str) -> Result<()> {
        self.store.delete_connection(name).await
    }
}

/// `connection` with its passwords masked, as `manifest` (its connector's) declares them;
/// with no manifest (a connector removed since), every value.
fn masked(mut connection: Connection, manifest: Option<&Manifest>) -> Connection {
    match manifest {
        Some(manifest) => connection.values = crate::options::mask(manifest, &connection.values),
        None => connection
            .values
            .values_mut()
            .for_each(|v| *v = MASK.to_owned()),
    }
    connection
}
