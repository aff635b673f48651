//! Empty: this package exists only to fetch the espeak-ng source (see Cargo.toml).
