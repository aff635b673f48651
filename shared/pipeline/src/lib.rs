//! vidpipe's application layer: the step functions every runner calls (embedded, Lambda, Fargate),
//! job submission and cancellation, asset ingest, the clip cache, the embedded adapters and the
//! in-process runner.

pub mod embedded;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
