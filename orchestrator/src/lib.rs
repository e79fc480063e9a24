//! cde: registers connector images and runs them, each run in a container where its own
//! Container API supervises the connector.

pub mod api;
pub mod catalog;
mod cde;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod connection;
pub mod connector_folder;
pub mod console;
pub mod dataset;
pub mod delta;
pub mod demo;
pub mod document;
pub mod engine;
pub mod error;
pub mod event_log;
pub mod executable;
pub mod hooks;
pub mod http;
pub mod inbox;
pub mod lease;
pub mod listener;
pub mod manifest;
pub mod mapping;
pub mod model;
pub mod options;
pub mod pipeline;
pub mod private;
pub mod registry;
pub mod retention;
pub mod run;
pub mod rundir;
pub mod scheduler;
pub mod secret;
pub mod server;
pub mod session;
pub mod state;
pub mod store;
pub mod user;

pub use cde::Cde;
pub use config::Config;
pub use error::{Error, Result};
