//! A provider that always fails, on the emulated stack: every clip render fails (ffmpeg is not
//! where the functions are told it is), the ASL's Catch records the failure, and the job ends
//! `failed` with a reason while no execution is left running.
//!
//! The name is exact: the procedural provider cannot spawn ffmpeg, which is
//! `MediaError::ToolMissing`, and `StepError::error_type` names a missing tool
//! `VidPipe.Internal` (a broken deployment, not a passing fault: no Retry matches it).

use serde_json::json;
use std::time::Duration;
use vidpipe_domain::names;
use vidpipe_tests::emulator::Emulator;

#[test]
fn a_failing_provider_ends_the_job_failed_with_a_reason_and_no_running_execution() {
    let emu = Emulator::start(&[("VIDPIPE_FFMPEG_DIR", "/nonexistent/ffmpeg")]);
    let body = json!({"prompt": "Doomed from the start", "duration_seconds": 5, "aspect_ratio": "1:1", "resolution": "720p", "clip_count": 1});
    let r = emu.call("POST", "/v1/generations", "tenant-f", Some(&body), &[]);
    assert_eq!(r.status, 202, "{:?}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let end = emu.wait_for(&id, "tenant-f", Duration::from_secs(300), |j| {
        matches!(
            j["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        )
    });
    assert_eq!(end["status"], "failed", "{end}");
    let error = &end["error"];
    assert_eq!(error["code"], names::INTERNAL, "{end}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("ffmpeg")),
        "{end}"
    );
    assert_eq!(error["stage"], "generating", "{end}");
    let running = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let sdk = vidpipe_aws::config::emulator_sdk_config(&emu.moto).await;
        let sfn = vidpipe_aws::SfnOrchestrator::new(
            vidpipe_aws::config::sfn_client(&sdk),
            emu.state_machine_arn.clone(),
        );
        sfn.is_running(&vidpipe_domain::JobId::parse(&id).unwrap())
            .await
            .unwrap()
    });
    assert_eq!(running, Some(false), "no execution may be left running");
}
