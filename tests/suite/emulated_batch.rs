//! Batches on emulated AWS, through the emulated API Gateway: `POST /v1/generations/batch` and
//! `GET /v1/generations/batches/{id}` each reach their own function (the single submit's role,
//! and a read-only one), items are admitted against the stack's per-tenant quotas one by one,
//! and the batch record is read back from DynamoDB with each job's status.

use serde_json::{Value, json};
use std::sync::OnceLock;
use vidpipe_tests::emulator::Emulator;

const ALICE: &str = "batch-alice";
const BOB: &str = "batch-bob";

/// Two jobs at a time per tenant, so a four-item batch meets the quota.
fn stack() -> &'static Emulator {
    static STACK: OnceLock<Emulator> = OnceLock::new();
    STACK.get_or_init(|| Emulator::start_with(&[], &[("MaxConcurrentJobsPerTenant", "2")]))
}

fn item(n: u64) -> Value {
    json!({
        "prompt": format!("Batch scene {n}. Paper boats on a pond."),
        "duration_seconds": 5,
        "aspect_ratio": "1:1",
        "resolution": "720p",
        "clip_count": 1,
        "transition": "cut",
        "seed": n
    })
}

fn results(v: &Value) -> Vec<&str> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["result"].as_str().unwrap())
        .collect()
}

#[test]
fn a_batch_through_the_gateway_is_judged_item_by_item_and_reads_back() {
    let emu = stack();
    let mut keyed = item(0);
    keyed["idempotency_key"] = json!("batch-key-0");
    let mut invalid = item(1);
    invalid["duration_seconds"] = json!(4);
    let body = json!({"items": [keyed.clone(), invalid, item(2), item(3)]});
    let r = emu.call("POST", "/v1/generations/batch", ALICE, Some(&body), &[]);
    assert_eq!(r.status, 201, "{}", r.json);
    // Two admitted, one invalid, one over the concurrent-jobs quota: each on its own.
    assert_eq!(results(&r.json), ["created", "error", "created", "error"]);
    let items = r.json["items"].as_array().unwrap();
    assert_eq!(items[1]["error"]["status"], 422);
    assert_eq!(
        items[1]["error"]["errors"][0]["field"],
        "items[1].duration_seconds"
    );
    assert_eq!(items[3]["error"]["status"], 429, "{}", items[3]);
    assert_eq!(items[3]["error"]["kind"], "quota-exceeded");
    let location = r.location.clone().expect("a Location header");
    assert_eq!(location, r.json["links"]["self"].as_str().unwrap());

    // Read back through its link, on its own function, with each job's status from the table.
    let read = emu.call_url("GET", &location, ALICE, None, &[]);
    assert_eq!(read.status, 200, "{}", read.json);
    assert_eq!(read.json["batch_id"], r.json["batch_id"]);
    for (now, then) in read.json["items"].as_array().unwrap().iter().zip(items) {
        assert_eq!(now["job_id"], then["job_id"]);
        assert_eq!(now["error"], then["error"]);
        assert_eq!(
            now["status"].is_string(),
            then["job_id"].is_string(),
            "{now}"
        );
    }
    let other = emu.call_url("GET", &location, BOB, None, &[]);
    assert_eq!(other.status, 404, "{}", other.json);

    // The keyed item again: its first job, even with the tenant at its limit.
    let again = emu.call(
        "POST",
        "/v1/generations/batch",
        ALICE,
        Some(&json!({"items": [keyed]})),
        &[],
    );
    assert_eq!(again.status, 201, "{}", again.json);
    assert_eq!(results(&again.json), ["replayed"]);
    assert_eq!(again.json["items"][0]["job_id"], items[0]["job_id"]);

    // Over fifty is refused whole, naming the field; nothing more was made.
    let many: Vec<Value> = (0..51).map(item).collect();
    let refused = emu.call(
        "POST",
        "/v1/generations/batch",
        ALICE,
        Some(&json!({ "items": many })),
        &[],
    );
    assert_eq!(refused.status, 422, "{}", refused.json);
    assert_eq!(refused.content_type, "application/problem+json");
    assert_eq!(refused.json["errors"][0]["field"], "items");
    let list = emu.call("GET", "/v1/generations?limit=100", ALICE, None, &[]);
    assert_eq!(
        list.json["items"].as_array().unwrap().len(),
        2,
        "{}",
        list.json
    );
}
