//! AWS adapters for the domain ports.
