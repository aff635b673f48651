//! Embedded adapters: SQLite job store and filesystem blob store, plus where they live on disk.
//! One conformance suite per port, run against every adapter of it.

mod fs;
mod sqlite;

pub use fs::{FsBlobStore, RESERVED_SEGMENT, file_url};
pub use sqlite::{SqliteJobStore, Unfinished};

use std::path::PathBuf;

/// The environment variable that moves the embedded state away from `./.vidpipe`.
pub const HOME_ENV: &str = "VIDPIPE_HOME";

/// Where one machine's vidpipe keeps its state: `<base>/vidpipe.sqlite3` and `<base>/blobs/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedPaths {
    pub base: PathBuf,
    /// The SQLite job store.
    pub db: PathBuf,
    /// The filesystem blob store's root (the local "bucket").
    pub blobs: PathBuf,
}

impl EmbeddedPaths {
    /// The layout under an explicit base directory. Reads nothing from the environment.
    pub fn new(base: impl Into<PathBuf>) -> Self {
        let base = base.into();
        Self {
            db: base.join("vidpipe.sqlite3"),
            blobs: base.join("blobs"),
            base,
        }
    }

    /// The one place the embedded layout consults the environment, meant for startup code (the
    /// CLI's `main`). Precedence: `explicit` (e.g. a `--home` flag), then a non-empty
    /// `VIDPIPE_HOME`, then `.vidpipe` in the current working directory. The base is made
    /// absolute here so a later `chdir` cannot move the state.
    pub fn from_env_or(explicit: Option<PathBuf>) -> Self {
        let base = explicit
            .or_else(|| {
                std::env::var_os(HOME_ENV)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(".vidpipe"));
        Self::new(std::path::absolute(&base).unwrap_or(base))
    }
}
