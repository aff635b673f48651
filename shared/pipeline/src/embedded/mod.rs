//! Embedded adapters: SQLite job store and filesystem blob store.
