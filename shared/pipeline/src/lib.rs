//! vidpipe's application layer: the step functions every runner calls (embedded, Lambda, Fargate),
//! job submission and cancellation, asset ingest, the clip cache, the embedded adapters and the
//! in-process runner.

pub mod embedded;
pub mod error;
pub mod local;
pub mod notify;
pub mod planners;
pub mod policy;
pub mod processing;
pub mod runner;
pub mod service;
pub mod steps;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use error::StepError;
pub use runner::{EmbeddedOrchestrator, EmbeddedRunner, RunEvent, RunnerConfig};
pub use service::{Service, ServiceError, Submitted};
pub use steps::StepDeps;
