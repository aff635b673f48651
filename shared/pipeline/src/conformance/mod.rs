//! One conformance suite per port, run against every adapter of it.
//!
//! Each suite is a set of plain `pub async fn` checks over the port trait that panic with a clear
//! message on the first contract violation, plus a `run_all`. Checks use only the trait API and
//! fresh ids, owners and key prefixes, so one backend (a SQLite file, a moto server) can host
//! every check, and reruns, without cleanup.

pub mod batch_store;
pub mod blob_store;
pub mod clip_provider;
pub mod composition_store;
pub mod job_store;
pub mod lease_store;
pub mod live_store;
pub mod narrator;
pub mod planner;
pub mod process_store;
pub mod quota_store;
pub mod webhook_store;

/// A short random tag that keeps one check's owners and keys apart from every other check's.
pub(crate) fn unique(label: &str) -> String {
    format!("conf-{label}-{}", uuid::Uuid::now_v7().simple())
}
