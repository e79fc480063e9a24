//! cde's declarative HTTP connector: a data source or destination described by a spec
//! document (AEP `sourceSpec`, a CDP hub OpenAPI document) instead of code. It runs inside
//! a run's container as any connector does (`cde http-connector`), and speaks the Container
//! API for records, logs and incremental state.

pub mod transport;
