//! Where the commands act: this process with its own store and engine ([`Embedded`]), or a
//! `cde server` through its management API ([`Remote`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use container_api::LogLine;
use tokio::task::JoinHandle;

use super::remote::Remote;
use crate::api::connectors::Connector;
use crate::error::{Error, Result};

use crate::server::{api_token, Token};

use crate::model::{
    CheckReport, CheckRequest, ListenerStatus, Pipeline, PipelineRun, PipelineStatus, Registration,
    Run, RunFilter, RunInputs, RunRequest,
};
use crate::{Cde, Config};

/// How often runs and pipeline runs are polled for news.
pub const POLL: Duration = Duration::from_millis(200);

/// Work this process does itself on behalf of a started run or pipeline run; `None` when a
/// server does it.
pub type Executor<T> = Option<JoinHandle<Result<T>>>;

/// What every command needs of where it acts.
pub trait Backend {
    /// The embedded orchestrator, for the commands that only run in this process.
    fn local(&self, command: &str) -> Result<&Arc<Cde>>;

    async fn register(&self, path: &Path) -> Result<Registration>;
    async fn connectors(&self) -> Result<Vec<Connector>>;
    async fn connector(&self, code: &str) -> Result<Connector>;
    /// An HTTP connector's first request and what it found (`cde connector check`).
    async fn check(&self, code: &str, request: CheckRequest) -> Result<CheckReport>;

    /// Starts a run: executed by this process when embedded (with its retries: the
    /// executor's result is the last attempt), queued on the server otherwise.
    async fn start(&self, request: RunRequest, inputs: &RunInputs) -> Result<(Run, Executor<Run>)>;
    async fn run(&self, id: &str) -> Result<Run>;
    async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>>;
    async fn logs(&self, id: &str, from: i64) -> Result<Vec<(i64, LogLine)>>;
    async fn cancel(&self, id: &str) -> Result<Run>;

    /// Creates or replaces a pipeline from a JSON or YAML file.
    async fn save_pipeline(&self, path: &Path) -> Result<Pipeline>;
    async fn pipelines(&self) -> Result<Vec<Pipeline>>;
    async fn pipeline(&self, name: &str) -> Result<Pipeline>;
    /// Starts a run of a pipeline: executed by this process when embedded, by the server
    /// otherwise.
    async fn start_pipeline(&self, name: &str) -> Result<(PipelineRun, Executor<PipelineRun>)>;
    async fn pipeline_run(&self, id: &str) -> Result<PipelineRun>;
    async fn pipeline_runs(&self, name: &str, limit: i64) -> Result<Vec<PipelineRun>>;
    async fn listeners(&self, pipeline: &str) -> Result<Vec<ListenerStatus>>;
    /// A listener's secret; with `rotate`, replaced first by `given` or a random one.
    async fn listener_secret(
        &self,
        pipeline: &str,
        listener: &str,
        rotate: bool,
        given: Option<String>,
    ) -> Result<String>;

    /// Waits for a pipeline run started by [`Backend::start_pipeline`] to end.
    async fn finish_pipeline(
        &self,
        run: PipelineRun,
        executor: Executor<PipelineRun>,
    ) -> Result<PipelineRun> {
        if let Some(executor) = executor {
            return executor.await.map_err(|e| {
                Error::Other(format!(
                    "executing pipeline run {} of {}: {e}",
                    run.id, run.pipeline
                ))
            })?;
        }
        loop {
            let current = self.pipeline_run(&run.id).await?;
            if current.status != PipelineStatus::Running {
                return Ok(current);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

pub struct Embedded(pub Arc<Cde>);

impl Embedded {
    /// Checks the engine before a command that drives containers does anything, so that an
    /// engine that cannot be reached or is too old stops it with nothing created (no run,
    /// no pipeline run, no server). The other commands work without an engine; registering
    /// checks it itself before its health check creates anything.
    pub async fn preflight(&self, command: &super::Cmd) -> Result<()> {
        use super::{pipeline, Cmd};
        if matches!(
            command,
            Cmd::Server
                | Cmd::Demo(_)
                | Cmd::Run(_)
                | Cmd::Dev(_)
                | Cmd::Test(_)
                | Cmd::Pipeline(pipeline::Cmd::Run { .. })
        ) {
            self.0.check_engine().await?;
        }
        Ok(())
    }
}

impl Backend for Embedded {
    fn local(&self, _command: &str) -> Result<&Arc<Cde>> {
        Ok(&self.0)
    }

    async fn register(&self, path: &Path) -> Result<Registration> {
        self.0.register_file(path).await
    }

    async fn connectors(&self) -> Result<Vec<Connector>> {
        Ok(self
            .0
            .store
            .connectors()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn connector(&self, code: &str) -> Result<Connector> {
        Ok(self.0.store.connector(code).await?.into())
    }

    async fn check(&self, code: &str, request: CheckRequest) -> Result<CheckReport> {
        self.0.check(request.into_run_request(code)).await
    }

    async fn start(&self, request: RunRequest, inputs: &RunInputs) -> Result<(Run, Executor<Run>)> {
        let run = self.0.start_with(request, inputs).await?;
        let (cde, executing) = (self.0.clone(), run.clone());
        Ok((
            run,
            Some(tokio::spawn(async move {
                cde.execute_with_retries(executing).await
            })),
        ))
    }

    async fn run(&self, id: &str) -> Result<Run> {
        self.0.store.run(id).await
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        self.0.store.runs(filter).await
    }

    async fn logs(&self, id: &str, from: i64) -> Result<Vec<(i64, LogLine)>> {
        self.0.store.logs(id, from).await
    }

    async fn cancel(&self, id: &str) -> Result<Run> {
        self.0.cancel(id).await
    }

    async fn save_pipeline(&self, path: &Path) -> Result<Pipeline> {
        let pipeline = Pipeline::load(path)?;
        self.0.save_pipeline(&pipeline).await
    }

    async fn pipelines(&self) -> Result<Vec<Pipeline>> {
        self.0.store.pipelines().await
    }

    async fn pipeline(&self, name: &str) -> Result<Pipeline> {
        self.0.store.pipeline(name).await
    }

    async fn start_pipeline(&self, name: &str) -> Result<(PipelineRun, Executor<PipelineRun>)> {
        let run = self.0.begin_pipeline_run(name, "manual").await?;
        let (cde, executing) = (self.0.clone(), run.clone());
        Ok((
            run,
            Some(tokio::spawn(async move {
                cde.execute_pipeline_run(executing).await
            })),
        ))
    }

    async fn pipeline_run(&self, id: &str) -> Result<PipelineRun> {
        self.0.store.pipeline_run(id).await
    }

    async fn pipeline_runs(&self, name: &str, limit: i64) -> Result<Vec<PipelineRun>> {
        self.0.store.pipeline_runs(name, limit).await
    }

    async fn listeners(&self, pipeline: &str) -> Result<Vec<ListenerStatus>> {
        self.0.listeners(pipeline).await
    }

    async fn listener_secret(
        &self,
        pipeline: &str,
        listener: &str,
        rotate: bool,
        given: Option<String>,
    ) -> Result<String> {
        match rotate {
            true => {
                self.0
                    .rotate_listener_secret(pipeline, listener, given)
                    .await
            }
            false => self.0.listener_secret(pipeline, listener).await,
        }
    }
}

impl Backend for Remote {
    fn local(&self, command: &str) -> Result<&Arc<Cde>> {
        Err(Error::Config(format!(
            "`cde {command}` runs in this process; unset CDE_SERVER"
        )))
    }

    async fn register(&self, path: &Path) -> Result<Registration> {
        Remote::register(self, path).await
    }

    async fn connectors(&self) -> Result<Vec<Connector>> {
        Remote::connectors(self).await
    }

    async fn connector(&self, code: &str) -> Result<Connector> {
        Remote::connector(self, code).await
    }

    async fn check(&self, code: &str, request: CheckRequest) -> Result<CheckReport> {
        Remote::check(self, code, &request).await
    }

    async fn start(&self, request: RunRequest, inputs: &RunInputs) -> Result<(Run, Executor<Run>)> {
        if inputs.input.is_some() || inputs.previous.is_some() {
            self.local("run --input/--previous")?;
        }
        Ok((self.submit(&request).await?, None))
    }

    async fn run(&self, id: &str) -> Result<Run> {
        Remote::run(self, id).await
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        Remote::runs(self, filter).await
    }

    async fn logs(&self, id: &str, from: i64) -> Result<Vec<(i64, LogLine)>> {
        Remote::logs(self, id, from).await
    }

    async fn cancel(&self, id: &str) -> Result<Run> {
        Remote::cancel(self, id).await
    }

    async fn save_pipeline(&self, path: &Path) -> Result<Pipeline> {
        Remote::save_pipeline(self, path).await
    }

    async fn pipelines(&self) -> Result<Vec<Pipeline>> {
        Remote::pipelines(self).await
    }

    async fn pipeline(&self, name: &str) -> Result<Pipeline> {
        Remote::pipeline(self, name).await
    }

    async fn start_pipeline(&self, name: &str) -> Result<(PipelineRun, Executor<PipelineRun>)> {
        Ok((self.start_pipeline_run(name).await?, None))
    }

    async fn pipeline_run(&self, id: &str) -> Result<PipelineRun> {
        Remote::pipeline_run(self, id).await
    }

    async fn pipeline_runs(&self, name: &str, limit: i64) -> Result<Vec<PipelineRun>> {
        Remote::pipeline_runs(self, name, limit).await
    }

    async fn listeners(&self, pipeline: &str) -> Result<Vec<ListenerStatus>> {
        Remote::listeners(self, pipeline).await
    }

    async fn listener_secret(
        &self,
        pipeline: &str,
        listener: &str,
        rotate: bool,
        given: Option<String>,
    ) -> Result<String> {
        Remote::listener_secret(self, pipeline, listener, rotate, given).await
    }
}

/// The remote client when `CDE_SERVER` is set, with `CDE_API_TOKEN` or the token file of a
/// server sharing this data directory.
pub fn remote(config: &Config) -> Result<Option<Remote>> {
    let Some(url) = &config.server else {
        return Ok(None);
    };
    Ok(Some(Remote::new(url, api_token(config, Token::ReadOnly)?)))
}
