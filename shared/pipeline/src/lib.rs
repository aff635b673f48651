//! vidpipe's application layer: the two pipelines' steps, which every runner calls (embedded,
//! Lambda, Fargate), and what they share: job submission and cancellation, asset ingest, the
//! clip cache, retry policies, scratch folders, failure reasons, signed webhooks, the embedded
//! adapters and the conformance suites of the ports.

pub mod batch;
pub mod cursor;
pub mod edit;
pub mod embedded;
pub mod error;
pub mod failure;
pub mod generation;
pub mod handoff;
pub mod live;
pub mod local;
pub mod notify;
pub mod policy;
pub mod processing;
pub mod scratch;
pub mod service;
pub mod uploads;
pub mod versions;
pub mod webhooks;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use error::StepError;
pub use generation::{EmbeddedOrchestrator, EmbeddedRunner, RunEvent, RunnerConfig, StepDeps};
pub use service::{Service, ServiceError, Submitted};
