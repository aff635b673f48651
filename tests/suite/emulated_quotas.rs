//! Per-tenant quotas through the API on emulated AWS. The stack is started with the template's
//! own parameters set low (`MaxConcurrentJobsPerTenant=2`, `DailyOutputMinutesPerTenant=4`), so
//! the limits reach the API function the way a deployment sets them. A tenant over a quota gets
//! `429` with `Retry-After` and a problem naming the quota, its limit, usage and request; nothing
//! is recorded for the refused request, another tenant is unaffected, an idempotent replay is
//! still answered, and a cancel gives the slot back.

use chrono::{Timelike, Utc};
use serde_json::{Value, json};
use vidpipe_tests::emulator::{Emulator, Response};

const LIMIT: u64 = 2;
/// Room for alice's three accepted minutes, and less than the longest request (300 s).
const DAILY_MINUTES: &str = "4";

fn body(seed: u64) -> Value {
    // A minute of video in ten clips: no job can end between its submit and the cancel below,
    // even on a loaded machine.
    json!({
        "prompt": "Harbour cranes at night. Containers swing. A ship leaves.",
        "duration_seconds": 60,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "clip_count": 10,
        "seed": seed
    })
}

fn submit(emu: &Emulator, tenant: &str, body: &Value, key: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = key
        .map(|k| vec![("idempotency-key", k)])
        .unwrap_or_default();
    emu.call("POST", "/v1/generations", tenant, Some(body), &headers)
}

fn generations(emu: &Emulator, tenant: &str) -> Vec<Value> {
    let r = emu.call("GET", "/v1/generations?limit=100", tenant, None, &[]);
    assert_eq!(r.status, 200, "{}", r.json);
    r.json["items"].as_array().unwrap().clone()
}

fn cancel(emu: &Emulator, tenant: &str, id: &str) {
    let r = emu.call(
        "POST",
        &format!("/v1/generations/{id}/cancel"),
        tenant,
        None,
        &[],
    );
    assert_eq!(r.status, 202, "{}", r.json);
    assert_eq!(r.json["status"], "cancelled", "{}", r.json);
}

/// The refusal's common shape: 429, a problem+json naming `quota`, and `Retry-After`.
fn assert_quota_problem(r: &Response, quota: &str) -> u64 {
    assert_eq!(r.status, 429, "{}", r.json);
    assert_eq!(r.content_type, "application/problem+json");
    assert_eq!(
        r.json["type"], "urn:vidpipe:problem:quota-exceeded",
        "{}",
        r.json
    );
    assert_eq!(r.json["status"], 429);
    assert_eq!(r.json["quota"], quota, "{}", r.json);
    let detail = r.json["detail"].as_str().unwrap();
    assert!(
        detail.contains(quota),
        "the detail names the quota: {detail}"
    );
    assert!(
        r.json["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    r.header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {:?}", r.headers))
        .parse()
        .expect("Retry-After is whole seconds")
}

#[test]
fn over_a_quota_is_429_naming_it_with_retry_after_and_other_tenants_are_unaffected() {
    let emu = Emulator::start_with(
        &[],
        &[
            ("MaxConcurrentJobsPerTenant", "2"),
            ("DailyOutputMinutesPerTenant", DAILY_MINUTES),
        ],
    );
    let (alice, bob, carol) = ("quota-alice", "quota-bob", "quota-carol");

    // Up to the limit: accepted.
    let mut live = Vec::new();
    for seed in 0..LIMIT {
        let key = format!("alice-{seed}");
        let r = submit(&emu, alice, &body(seed), Some(&key));
        assert_eq!(r.status, 202, "{}", r.json);
        live.push(r.json["id"].as_str().unwrap().to_owned());
    }

    // One more: refused, naming the quota, and nothing recorded.
    let r = submit(&emu, alice, &body(9), None);
    let retry_after = assert_quota_problem(&r, "concurrent_jobs");
    assert_eq!(retry_after, 30, "about one short generation");
    assert_eq!(r.json["limit"], LIMIT as f64, "{}", r.json);
    assert_eq!(r.json["used"], LIMIT as f64, "{}", r.json);
    assert_eq!(r.json["requested"], 1.0, "{}", r.json);
    assert_eq!(generations(&emu, alice).len(), LIMIT as usize);

    // A replay of an accepted request is answered at the limit: it asks for nothing new.
    let replay = submit(&emu, alice, &body(0), Some("alice-0"));
    assert_eq!(replay.status, 200, "{}", replay.json);
    assert_eq!(replay.json["id"], live[0].as_str());
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));

    // Another tenant is not counted against alice's quota.
    let r = submit(&emu, bob, &body(1), None);
    assert_eq!(r.status, 202, "bob is unaffected: {}", r.json);
    let bobs = r.json["id"].as_str().unwrap().to_owned();

    // A cancel ends a job, and its slot is alice's again.
    cancel(&emu, alice, &live.remove(0));
    let r = submit(&emu, alice, &body(2), None);
    assert_eq!(
        r.status, 202,
        "the cancelled job's slot is free: {}",
        r.json
    );
    live.push(r.json["id"].as_str().unwrap().to_owned());
    let r = submit(&emu, alice, &body(3), None);
    assert_quota_problem(&r, "concurrent_jobs");

    // The daily budget: 241 s of output is over a 4-minute day whatever else runs, and waiting
    // for it means waiting for the next UTC day (rounded up by a second).
    let mut long = body(4);
    long["duration_seconds"] = json!(241);
    let before = Utc::now();
    let r = submit(&emu, carol, &long, None);
    let retry_after = assert_quota_problem(&r, "daily_output_minutes");
    assert_eq!(r.json["limit"], 4.0, "{}", r.json);
    assert_eq!(r.json["used"], 0.0, "{}", r.json);
    assert_eq!(r.json["requested"], 4.02, "241 s in minutes: {}", r.json);
    let to_midnight = 86_400 - u64::from(before.num_seconds_from_midnight());
    assert!(
        retry_after <= to_midnight + 1 && retry_after + 5 >= to_midnight,
        "Retry-After {retry_after} s, midnight UTC in {to_midnight} s"
    );
    assert!(generations(&emu, carol).is_empty());

    // Nothing keeps rendering once the test's point is made (a job that already ended is 409).
    for (tenant, id) in live.iter().map(|id| (alice, id)).chain([(bob, &bobs)]) {
        let r = emu.call(
            "POST",
            &format!("/v1/generations/{id}/cancel"),
            tenant,
            None,
            &[],
        );
        assert!(matches!(r.status, 202 | 409), "{}", r.json);
    }
}
