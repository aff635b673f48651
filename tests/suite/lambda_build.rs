//! Every function in template.yaml builds as a release Lambda bootstrap with cargo lambda: arm64
//! (what the template deploys) when that target is installed, else x86_64, as the design allows.
//! Each bootstrap must exist, be an ELF executable for that architecture, and its size is printed.
//! Every API route's bootstrap (one Lambda per route) must fit in 6.5 MB on arm64: each links only
//! the clients its route calls.

use std::path::Path;
use std::process::Command;

/// Each route's arm64 bootstrap fits in this. The largest, cancel-generation, links every
/// provider's cancel client; it measured 6.00 MB once the request took provider and planner
/// choices and the API gained recompose and timelines, so the budget leaves it 0.5 MB of room
/// while still catching a route that links a client it never calls (a few MB each).
const API_SIZE_LIMIT: usize = 6_500_000;

const PACKAGES: [(&str, &str); 4] = [
    ("vidpipe-fn-generate", "vidpipe-generate"),
    ("vidpipe-fn-worker", "vidpipe-worker"),
    ("vidpipe-fn-dispatch", "vidpipe-dispatch"),
    ("vidpipe-fn-process", "vidpipe-process"),
];

fn arm64_target_installed() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == "aarch64-unknown-linux-gnu")
        })
        .unwrap_or(false)
}

#[test]
fn every_function_builds_as_a_release_bootstrap() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let arm64 = arm64_target_installed();
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).args(["lambda", "build", "--release"]);
    if arm64 {
        cmd.arg("--arm64");
    }
    // One route per wiring: routes with the same grants share a wiring, so their bootstraps
    // differ only in the route they name (a constant). Building every route's in release with
    // whole-program LTO would add minutes per route to every run for the same numbers.
    let mut seen = Vec::new();
    let api_bins: Vec<&str> = vidpipe_lambda::api::API_FUNCTIONS
        .iter()
        .filter(|f| {
            let new = !seen.contains(&f.grants);
            seen.push(f.grants);
            new
        })
        .map(|f| f.bin)
        .collect();
    cmd.args(["-p", "vidpipe-fn-api"]);
    for bin in &api_bins {
        cmd.args(["--bin", bin]);
    }
    // With any --bin given, cargo builds only the bins named: every package's is.
    for (package, bin) in PACKAGES {
        cmd.args(["-p", package, "--bin", bin]);
    }
    let out = cmd
        .output()
        .expect("run cargo lambda (scripts/setup.sh installs it; source scripts/env.sh)");
    assert!(
        out.status.success(),
        "cargo lambda build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ELF e_machine: 0xB7 aarch64, 0x3E x86_64.
    let machine: u16 = if arm64 { 0xB7 } else { 0x3E };
    let mut oversized = Vec::new();
    for bin in api_bins
        .iter()
        .copied()
        .chain(PACKAGES.iter().map(|(_, bin)| *bin))
    {
        let bootstrap = target_dir(root).join("lambda").join(bin).join("bootstrap");
        let bytes =
            std::fs::read(&bootstrap).unwrap_or_else(|e| panic!("{}: {e}", bootstrap.display()));
        assert_eq!(&bytes[..4], b"\x7fELF", "{bin} is not an ELF executable");
        assert_eq!(
            u16::from_le_bytes([bytes[18], bytes[19]]),
            machine,
            "{bin} has the wrong architecture"
        );
        println!(
            "{bin:<38} {:>6.2} MB ({})",
            bytes.len() as f64 / 1e6,
            if arm64 { "arm64" } else { "x86_64" }
        );
        if arm64 && bin.starts_with("vidpipe-api-") && bytes.len() > API_SIZE_LIMIT {
            oversized.push(format!("{bin}: {:.2} MB", bytes.len() as f64 / 1e6));
        }
    }
    assert!(
        oversized.is_empty(),
        "route bootstraps over {} MB on arm64: {oversized:?}",
        API_SIZE_LIMIT / 1_000_000
    );
}

/// Where cargo builds: `CARGO_TARGET_DIR` when set (a shared target), else the workspace's.
fn target_dir(root: &Path) -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}
