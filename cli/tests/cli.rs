//! The `vidpipe` command as a user runs it: exit codes, the one-line reason, the JSON contract
//! (`job_id`, `status`, `final`, `thumbnail`, `duration_seconds`) and the jobs commands.

use std::process::{Command, Output};
use vidpipe_tests::probe;

fn vidpipe(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vidpipe"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("run vidpipe")
}

#[test]
fn generate_prints_json_with_measurable_outputs_and_jobs_lists_it() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("out");
    let out = vidpipe(
        home.path(),
        &[
            "generate",
            "--prompt",
            "Lanterns drifting over a dark lake",
            "--duration",
            "6",
            "--aspect",
            "9:16",
            "--resolution",
            "720p",
            "--clips",
            "2",
            "--transition",
            "dissolve",
            "--out",
            out_dir.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert_eq!(v["status"], "completed");
    let final_path = std::path::PathBuf::from(v["final"].as_str().unwrap());
    assert_eq!(final_path, out_dir.join("final.mp4"));
    let f = probe(&final_path);
    assert_eq!((f.width, f.height), (720, 1280));
    assert!((f.duration - 6.0).abs() <= 1.0 / 30.0);
    assert!((v["duration_seconds"].as_f64().unwrap() - 6.0).abs() <= 1.0 / 30.0);
    let t = probe(std::path::Path::new(v["thumbnail"].as_str().unwrap()));
    assert_eq!((t.width, t.height), (360, 640));

    let id = v["job_id"].as_str().unwrap();
    let list = vidpipe(home.path(), &["jobs", "list", "--json"]);
    assert!(list.status.success());
    let l: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(l["jobs"][0]["job_id"], id);
    let show = vidpipe(home.path(), &["jobs", "show", id, "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(s["status"], "completed");
    assert_eq!(s["progress"], 100.0);
    assert_eq!(s["clips"].as_array().unwrap().len(), 2);
    let text = vidpipe(home.path(), &["jobs", "show", id]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("completed"));
}

#[test]
fn bad_input_exits_non_zero_with_one_line_naming_the_field() {
    let home = tempfile::tempdir().unwrap();
    let out = vidpipe(
        home.path(),
        &[
            "generate",
            "--prompt",
            "x",
            "--duration",
            "3",
            "--aspect",
            "16:9",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains("duration_seconds"), "{err}");

    let logo = home.path().join("logo.png");
    std::fs::write(&logo, "plain text").unwrap();
    let out = vidpipe(
        home.path(),
        &[
            "generate",
            "--prompt",
            "x",
            "--duration",
            "5",
            "--aspect",
            "16:9",
            "--logo",
            logo.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("--logo") && err.contains("not a valid image"),
        "{err}"
    );

    let list = vidpipe(home.path(), &["jobs", "list", "--json"]);
    let l: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert!(
        l["jobs"].as_array().unwrap().is_empty(),
        "a refused request leaves no job"
    );
}

#[test]
fn unknown_job_is_an_error() {
    let home = tempfile::tempdir().unwrap();
    let out = vidpipe(
        home.path(),
        &["jobs", "show", "job_0000000000000000000000000000abcd"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job"));
}

/// `vidpipe generate --webhook-url` tells a local receiver once, signed with this machine's
/// secret (kept in the state's SQLite file); without `--webhook-allow-loopback` such a target is
/// refused before anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_tells_its_webhook_once_signed() {
    use vidpipe_domain::ports::WebhookSecretStore;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let home = tempfile::tempdir().unwrap();
    let hook = format!("{}/hook", server.uri());
    let run = |extra: Vec<String>| {
        let home = home.path().to_owned();
        let hook = hook.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "generate".to_owned(),
                "--prompt".into(),
                "A paper boat on a puddle".into(),
                "--duration".into(),
                "5".into(),
                "--aspect".into(),
                "1:1".into(),
                "--resolution".into(),
                "720p".into(),
                "--clips".into(),
                "1".into(),
                "--webhook-url".into(),
                hook,
                "--json".into(),
            ];
            args.extend(extra);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            vidpipe(&home, &args)
        })
    };

    let refused = run(Vec::new()).await.unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("webhook_url"), "{err}");
    assert!(server.received_requests().await.unwrap().is_empty());

    let out = run(vec!["--webhook-allow-loopback".into()]).await.unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1, "exactly one delivery");
    let store =
        vidpipe_pipeline::embedded::SqliteJobStore::open(home.path().join("vidpipe.sqlite3"))
            .unwrap();
    let secret = store
        .get_secrets("local")
        .await
        .unwrap()
        .expect("made on first use");
    standardwebhooks::Webhook::new(secret.current.expose())
        .unwrap()
        .verify(&received[0].body, &received[0].headers)
        .expect("the delivery verifies under the machine's secret");
    let payload: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(payload["type"], "completed");
    assert_eq!(payload["data"]["job_id"], v["job_id"]);
}

#[test]
fn recompose_prints_the_generate_fields_and_compositions_lists_the_chain() {
    let home = tempfile::tempdir().unwrap();
    let out = vidpipe(
        home.path(),
        &[
            "generate",
            "--prompt",
            "A red kite over dunes",
            "--duration",
            "5",
            "--aspect",
            "16:9",
            "--resolution",
            "720p",
            "--clips",
            "2",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = g["job_id"].as_str().unwrap();

    let out = vidpipe(
        home.path(),
        &[
            "recompose",
            id,
            "--aspect",
            "1:1",
            "--transition",
            "cut",
            "--no-captions",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["job_id"], id);
    assert_eq!(r["status"], "completed");
    let first = format!("cmp_{}", &id[4..]);
    assert_eq!(r["parent_composition_id"], first.as_str());
    let cid = r["composition_id"].as_str().unwrap();
    assert_ne!(cid, first);
    let f = probe(std::path::Path::new(r["final"].as_str().unwrap()));
    assert_eq!((f.width, f.height), (720, 720));
    assert!((r["duration_seconds"].as_f64().unwrap() - f.duration).abs() < 1e-6);
    let t = probe(std::path::Path::new(r["thumbnail"].as_str().unwrap()));
    assert_eq!((t.width, t.height), (640, 640));

    let list = vidpipe(home.path(), &["compositions", id, "--json"]);
    assert!(list.status.success());
    let l: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let ids: Vec<_> = l
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["composition_id"].clone())
        .collect();
    assert_eq!(ids, vec![serde_json::json!(first), serde_json::json!(cid)]);
    assert_eq!(l[0]["parent_composition_id"], serde_json::Value::Null);
    assert_eq!(l[1]["parent_composition_id"], first.as_str());
    let text = vidpipe(home.path(), &["compositions", id]);
    assert!(String::from_utf8_lossy(&text.stdout).contains(cid));

    let bad = vidpipe(home.path(), &["recompose", id, "--aspect", "2:1"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("aspect_ratio"));
}
