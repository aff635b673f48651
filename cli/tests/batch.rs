//! `vidpipe batch` as a user runs it: a CSV or JSON Lines file of requests, bounded concurrency,
//! the results file, and resuming after the process is killed mid-run. Jobs are counted through
//! `vidpipe jobs list`, so a row said to be done must have made exactly one job. Requests are
//! small (5 s, 1:1 720p, one clip, cuts, no captions) so twenty render in seconds.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use vidpipe_tests::probe;

fn vidpipe(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vidpipe"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("run vidpipe")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Every job on this home, as `jobs list` gives them.
fn jobs(home: &Path) -> Vec<Value> {
    let out = vidpipe(home, &["jobs", "list", "--limit", "100", "--json"]);
    assert!(out.status.success());
    json(&out)["jobs"].as_array().unwrap().clone()
}

fn completed(jobs: &[Value]) -> usize {
    jobs.iter().filter(|j| j["status"] == "completed").count()
}

fn csv_row(n: usize, duration: &str, aspect: &str, fps: &str) -> String {
    format!(
        "\"Scene {n}: a lighthouse, then the sea\",{duration},{aspect},720p,{fps},1,cut,false,{n}\n"
    )
}

#[test]
fn twenty_csv_rows_with_three_invalid_make_seventeen_jobs_and_three_itemised_errors() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let file = dir.path().join("campaign.csv");
    let mut text =
        String::from("prompt,duration,aspect,resolution,fps,clips,transition,captions,seed\n");
    for n in 1..=20 {
        text.push_str(&match n {
            4 => csv_row(n, "4", "1:1", "24"),
            9 => csv_row(n, "5", "2:1", "24"),
            16 => csv_row(n, "5", "1:1", "60"),
            _ => csv_row(n, "5", "1:1", "24"),
        });
    }
    std::fs::write(&file, text).unwrap();
    let started = Instant::now();
    let out = vidpipe(
        &home,
        &[
            "batch",
            file.to_str().unwrap(),
            "--concurrency",
            "4",
            "--json",
        ],
    );
    let elapsed = started.elapsed();
    // Invalid rows make the batch as a whole unsuccessful, and say so by the exit code.
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(
        (
            v["rows"].as_u64(),
            v["completed"].as_u64(),
            v["invalid"].as_u64(),
            v["failed"].as_u64()
        ),
        (Some(20), Some(17), Some(3), Some(0)),
        "{v}"
    );
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 20);
    for (row, field) in [(4, "duration_seconds"), (9, "aspect_ratio"), (16, "fps")] {
        let item = &items[row - 1];
        assert_eq!(item["row"], row);
        assert_eq!(item["status"], "invalid", "{item}");
        let fields: Vec<&str> = item["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{item}");
        assert!(item.get("job_id").is_none());
    }
    // Seventeen jobs, all completed, exactly the ones the results name.
    let all = jobs(&home);
    assert_eq!(all.len(), 17);
    assert_eq!(completed(&all), 17);
    let mut named: Vec<&str> = items.iter().filter_map(|i| i["job_id"].as_str()).collect();
    let mut listed: Vec<&str> = all.iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    named.sort();
    listed.sort();
    assert_eq!(named, listed);
    // The results file holds one line per row, beside the input.
    let results = dir.path().join("campaign.csv.results.jsonl");
    assert_eq!(v["results"], results.display().to_string());
    let lines = std::fs::read_to_string(&results).unwrap();
    assert_eq!(lines.lines().count(), 20);
    // The videos are what the rows asked for.
    let f = probe(Path::new(items[0]["final"].as_str().unwrap()));
    assert_eq!((f.width, f.height), (720, 720));
    assert!((f.duration - 5.0).abs() <= 1.0 / 24.0, "{}", f.duration);
    eprintln!(
        "20 rows, 17 jobs at concurrency 4: {:.1} s",
        elapsed.as_secs_f64()
    );
}

fn jsonl_row(n: usize, prompt: &str) -> String {
    format!(
        "{{\"prompt\": \"{prompt}\", \"duration_seconds\": 5, \"aspect_ratio\": \"1:1\", \"resolution\": \"720p\", \"fps\": 24, \"clip_count\": 1, \"transition\": \"cut\", \"captions\": false, \"seed\": {n}}}\n"
    )
}

fn results_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter(|l| l.ends_with('}')).count())
        .unwrap_or(0)
}

#[test]
fn a_killed_batch_resumes_without_redoing_finished_rows_and_an_edited_row_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let file = dir.path().join("rows.jsonl");
    let rows = 8;
    let text: String = (1..=rows)
        .map(|n| jsonl_row(n, &format!("Row {n}. Clouds over a harbour.")))
        .collect();
    std::fs::write(&file, &text).unwrap();
    let results = dir.path().join("rows.jsonl.results.jsonl");

    // One job at a time; killed outright (no chance to tidy up) once three rows are done.
    let mut child = Command::new(env!("CARGO_BIN_EXE_vidpipe"))
        .arg("--home")
        .arg(&home)
        .args(["batch", file.to_str().unwrap(), "--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vidpipe batch");
    let deadline = Instant::now() + Duration::from_secs(300);
    while results_lines(&results) < 3 {
        assert!(
            Instant::now() < deadline,
            "three rows did not finish in time"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the batch ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let finished = results_lines(&results);
    assert!(
        finished < rows,
        "killed mid-run: {finished} of {rows} rows finished"
    );
    let after_kill = jobs(&home);
    assert_eq!(completed(&after_kill), finished);

    // The re-run skips the finished rows and makes one job per row left.
    let out = vidpipe(
        &home,
        &[
            "batch",
            file.to_str().unwrap(),
            "--concurrency",
            "2",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["skipped"].as_u64(), Some(finished as u64), "{v}");
    assert_eq!(v["ran"].as_u64(), Some((rows - finished) as u64), "{v}");
    let after_resume = jobs(&home);
    assert_eq!(after_resume.len(), after_kill.len() + rows - finished);
    assert_eq!(completed(&after_resume), rows);
    let skipped = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["skipped"] == true)
        .count();
    assert_eq!(skipped, finished);

    // Run again untouched: nothing to do. Edit row 2: that row alone runs again.
    let again = json(&vidpipe(
        &home,
        &["batch", file.to_str().unwrap(), "--json"],
    ));
    assert_eq!(
        (again["ran"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(rows as u64))
    );
    let edited = text.replacen("Row 2. Clouds", "Row 2. Storm clouds", 1);
    assert_ne!(edited, text);
    std::fs::write(&file, edited).unwrap();
    let v = json(&vidpipe(
        &home,
        &["batch", file.to_str().unwrap(), "--json"],
    ));
    assert_eq!(
        (v["ran"].as_u64(), v["skipped"].as_u64()),
        (Some(1), Some(rows as u64 - 1)),
        "{v}"
    );
    assert_eq!(v["items"][1]["row"], 2);
    assert_eq!(v["items"][1]["status"], "completed");
    assert!(v["items"][1].get("skipped").is_none());
    assert_eq!(jobs(&home).len(), after_resume.len() + 1);
}

#[test]
fn rows_with_idempotency_keys_replay_their_jobs_when_the_results_are_lost() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let file = dir.path().join("keyed.jsonl");
    let text: String = (1..=3)
        .map(|n| {
            jsonl_row(n, &format!("Keyed row {n}.")).replacen(
                '{',
                &format!("{{\"idempotency_key\": \"campaign-{n}\", "),
                1,
            )
        })
        .collect();
    std::fs::write(&file, &text).unwrap();
    let first = json(&vidpipe(
        &home,
        &["batch", file.to_str().unwrap(), "--json"],
    ));
    assert_eq!(first["completed"].as_u64(), Some(3), "{first}");
    std::fs::remove_file(dir.path().join("keyed.jsonl.results.jsonl")).unwrap();
    // Without results every row runs, but each key answers with the job it made.
    let second = json(&vidpipe(
        &home,
        &["batch", file.to_str().unwrap(), "--json"],
    ));
    assert_eq!(second["completed"].as_u64(), Some(3), "{second}");
    for (a, b) in first["items"]
        .as_array()
        .unwrap()
        .iter()
        .zip(second["items"].as_array().unwrap())
    {
        assert_eq!(a["job_id"], b["job_id"]);
        assert_eq!(b["replayed"], true, "{b}");
    }
    assert_eq!(jobs(&home).len(), 3);
}

#[test]
fn a_csv_logo_column_names_a_file_ingested_once_and_drawn_where_the_request_puts_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // Magenta: nothing the procedural provider draws comes near it.
    vidpipe_tests::write_logo(&dir.path().join("logo.png"), 200, 200, [255, 0, 255]);
    let file = dir.path().join("branded.csv");
    let row = |n: usize, logo: &str| {
        let brand = if logo.is_empty() { ",," } else { ",0.2,1" };
        format!("Row {n}. A calm bay.,5,1:1,720p,24,1,cut,false,{n},{logo}{brand}\n")
    };
    let text = format!(
        "prompt,duration,aspect,resolution,fps,clips,transition,captions,seed,logo,brand.logo.scale,brand.logo.opacity\n{}{}{}{}",
        row(1, "logo.png"),
        row(2, "logo.png"),
        row(3, "missing.png"),
        row(4, ""),
    );
    std::fs::write(&file, text).unwrap();
    let out = vidpipe(
        &home,
        &[
            "batch",
            file.to_str().unwrap(),
            "--concurrency",
            "2",
            "--json",
        ],
    );
    let v = json(&out);
    let items = v["items"].as_array().unwrap();
    let status: Vec<&str> = items
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        status,
        ["completed", "completed", "invalid", "completed"],
        "{v}"
    );
    assert_eq!(items[2]["errors"][0]["field"], "logo", "{}", items[2]);

    // Both branded rows name one asset: the file was ingested once.
    let all = jobs(&home);
    let logo_of = |job_id: &Value| {
        all.iter()
            .find(|j| &j["job_id"] == job_id)
            .map(|j| j["request"]["brand"]["logo"]["asset_id"].clone())
            .unwrap()
    };
    let (a, b) = (logo_of(&items[0]["job_id"]), logo_of(&items[1]["job_id"]));
    assert!(a.as_str().is_some_and(|id| id.starts_with("ast_")), "{a}");
    assert_eq!(a, b);
    assert!(logo_of(&items[3]["job_id"]).is_null());

    // The logo is drawn top right at a fifth of the width (144 px of 720): its middle is magenta,
    // where the unbranded row's frame is not.
    let at = |item: &Value| {
        let frame = vidpipe_tests::frame_at(Path::new(item["final"].as_str().unwrap()), 2.5);
        vidpipe_tests::region_mean(&frame, 610, 60, 24, 24)
    };
    let (branded, plain) = (at(&items[0]), at(&items[3]));
    assert!(
        branded[0] > 200.0 && branded[1] < 60.0 && branded[2] > 200.0,
        "{branded:?}"
    );
    assert!(
        !(plain[0] > 200.0 && plain[1] < 60.0 && plain[2] > 200.0),
        "{plain:?}"
    );
}

#[test]
fn ctrl_c_cancels_the_running_jobs_and_the_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let file = dir.path().join("stop.jsonl");
    let rows = 6;
    let text: String = (1..=rows)
        .map(|n| jsonl_row(n, &format!("Row {n}. Snow on a station roof.")))
        .collect();
    std::fs::write(&file, &text).unwrap();
    let results = dir.path().join("stop.jsonl.results.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vidpipe"))
        .arg("--home")
        .arg(&home)
        .args(["batch", file.to_str().unwrap(), "--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vidpipe batch");
    let deadline = Instant::now() + Duration::from_secs(300);
    while results_lines(&results) < 2 {
        assert!(Instant::now() < deadline, "two rows did not finish in time");
        assert!(child.try_wait().unwrap().is_none(), "the batch ended first");
        std::thread::sleep(Duration::from_millis(20));
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let out = child.wait_with_output().unwrap();
    let recorded = std::fs::read_to_string(&results).unwrap();
    let finished = recorded
        .lines()
        .filter(|l| l.contains("\"completed\""))
        .count();
    if out.status.code() == Some(0) {
        // The last row ended just before the signal: nothing was left to stop.
        assert_eq!(finished, rows);
        return;
    }
    // A stopped row records at most that its job was cancelled, which is not final.
    for line in recorded.lines().filter(|l| !l.contains("\"completed\"")) {
        assert!(line.contains("cancelled"), "{line}");
    }
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("run the same command again"));
    eprintln!("interrupted after {finished} of {rows} rows");
    let after = jobs(&home);
    assert_eq!(completed(&after), finished);
    // Every job the batch started and did not finish was cancelled, none left running.
    assert!(
        after
            .iter()
            .all(|j| j["status"] == "completed" || j["status"] == "cancelled"),
        "{after:?}"
    );

    let v = json(&vidpipe(
        &home,
        &["batch", file.to_str().unwrap(), "--json"],
    ));
    assert_eq!(v["skipped"].as_u64(), Some(finished as u64), "{v}");
    assert_eq!(
        v["completed"].as_u64(),
        Some((rows - finished) as u64),
        "{v}"
    );
    assert_eq!(completed(&jobs(&home)), rows);
}
