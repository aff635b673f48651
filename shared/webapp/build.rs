//! Rebuilds the crate when the web app's build output changes: rust-embed's generated
//! `include_bytes!` only covers files that existed at the last build, so a newly added file would
//! otherwise be missed until something else changed.

fn main() {
    println!("cargo:rerun-if-changed=../../web/dist");
}
