//! The domain's types, and nothing else: every other module depends on them, they depend
//! on no other module of the crate.

pub mod check;
pub mod conformance;
pub mod connection;
pub mod connector;
pub mod dataset;
pub mod lease;
pub mod limits;
pub mod listener;
pub mod manifest;
pub mod network;
pub mod pipeline;
pub mod retry;
pub mod run;

pub use check::{CheckReport, CheckRequest};
pub use conformance::{Check, CheckResult, ConformanceReport, Verdict};
pub use connection::{Connection, ConnectionCheck, Discovery, SaveConnection};
pub use connector::{ConnectorVersion, Registration};
pub use dataset::{Dataset, RunInputs};
pub use lease::{Lease, Leased};
pub use limits::{Limits, LimitsOverride};
pub use listener::{
    EventId, Listener, ListenerAuth, ListenerRead, ListenerSecret, ListenerStatus,
    SignatureEncoding,
};
pub use manifest::{
    ConnectorType, ExecutionMode, FieldType, InputValues, Manifest, OptionSpec, Role, Stage,
};
pub use network::Network;
pub use pipeline::{
    ColumnMapping, ListenerSource, Pipeline, PipelineRun, PipelineStatus, Source, Step, StepKind,
    StepRun, Trigger,
};
pub use retry::RetryPolicy;
pub use run::{DeltaCounts, Ending, OutputPage, Run, RunFilter, RunRequest, RunStatus};
