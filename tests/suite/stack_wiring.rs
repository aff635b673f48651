//! The AWS stack's wiring: template.yaml, the ASL definitions and the Rust code agree.
//!
//! - The offline tools pass: `sam validate --lint`, `cfn-lint`, `asl-validator --json-path`, and
//!   the ASL run in moto's Step Functions executor with stub steps (scripts/check/asl_moto.py).
//! - Every `${X}` in an ASL has a DefinitionSubstitution (and every substitution is used).
//! - The ASL's Retry numbers are `RetryPolicy::{CLIP, STEP}`, its `VidPipe.*` names are the
//!   ones `vidpipe_domain::names` defines, and it retries exactly the retryable ones.
//! - Every Lambda task retries Lambda's transient errors and is caught; every Task has a timeout.
//! - The steps run Plan -> Map(GenerateClip) -> Compose (Lambda or Fargate) -> Finalize, and
//!   every Catch leads to RecordFailure (a cancel excepted) and then a Fail state.
//! - Every function in the template is a workspace package under functions/ whose Cargo.toml
//!   defines the bin the template builds.
//!
//! The tools come from scripts/setup.sh (.tools/); scripts/check/stack.sh runs the same tool
//! checks from a shell.

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use vidpipe_domain::job::ComposeRoute;
use vidpipe_domain::names;
use vidpipe_domain::steps::{GenerationStep, ProcessingStep};
use vidpipe_http::routes::ROUTES;
use vidpipe_lambda::api::{API_FUNCTIONS, Grant, function_for};
use vidpipe_pipeline::policy::RetryPolicy;

/// The pipelines' functions: logical id, package directory, bin name.
const PIPELINE_FUNCTIONS: &[(&str, &str, &str)] = &[
    ("GenerateFunction", "functions/generate", "vidpipe-generate"),
    ("DispatchFunction", "functions/dispatch", "vidpipe-dispatch"),
    ("ProcessFunction", "functions/process", "vidpipe-process"),
];

/// The live-progress functions: the WebSocket API's three routes and the stream pusher.
const LIVE_FUNCTIONS: &[(&str, &str, &str)] = &[
    (
        "LiveConnectFunction",
        "functions/live",
        "vidpipe-live-connect",
    ),
    (
        "LiveDisconnectFunction",
        "functions/live",
        "vidpipe-live-disconnect",
    ),
    (
        "LiveMessageFunction",
        "functions/live",
        "vidpipe-live-message",
    ),
    (
        "LivePusherFunction",
        "functions/live",
        "vidpipe-live-pusher",
    ),
];

/// The web app's function: the page and `/app-config.json`, behind the HTTP API.
const APP_FUNCTION: (&str, &str, &str) = ("AppFunction", "functions/app", "vidpipe-app");

/// Every function the stack deploys: the pipelines', one per API route (all built from
/// functions/api, one bin each), the live-progress ones and the web app's.
fn functions() -> Vec<(&'static str, &'static str, &'static str)> {
    API_FUNCTIONS
        .iter()
        .map(|f| (f.logical_id, "functions/api", f.bin))
        .chain(PIPELINE_FUNCTIONS.iter().copied())
        .chain(LIVE_FUNCTIONS.iter().copied())
        .chain([APP_FUNCTION])
        .collect()
}

const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";

/// Every error name the steps can report (`vidpipe_domain::names`).
const KNOWN_NAMES: &[&str] = &[
    names::JOB_NOT_FOUND,
    names::CANCELLED,
    names::WRONG_STATE,
    names::PLAN_FAILED,
    names::PROVIDER_THROTTLED,
    names::PROVIDER_UNAVAILABLE,
    names::PROVIDER_REJECTED,
    names::INVALID_MEDIA,
    names::MEDIA_FAILED,
    names::CONFLICT,
    names::TRANSIENT,
    names::INTERNAL,
    names::SOURCE_REJECTED,
    names::CONFIGURATION,
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ------------------------------------------------------------------------------------------
// Running the tools
// ------------------------------------------------------------------------------------------

/// A tool from the project's .tools/ (scripts/setup.sh), else from PATH.
fn tool(name: &str) -> PathBuf {
    let root = root();
    let local = [
        root.join(".tools/venv/bin").join(name),
        root.join(".tools/node/node_modules/.bin").join(name),
    ];
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
        .unwrap_or_default();
    local
        .into_iter()
        .chain(on_path)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found in .tools/ or on PATH: run scripts/setup.sh"))
}

/// Runs a tool from the repository root, offline, and fails the test with its output unless it
/// succeeds.
fn run_ok(program: PathBuf, args: &[&str]) -> String {
    let root = root();
    // asl-validator is a node script; node may live only next to the project's node tools.
    let mut path = vec![
        root.join(".tools/venv/bin"),
        root.join(".tools/node/node_modules/.bin"),
    ];
    if let Some(p) = std::env::var_os("PATH") {
        path.extend(std::env::split_paths(&p));
    }
    let out = Command::new(&program)
        .args(args)
        .current_dir(&root)
        .env("PATH", std::env::join_paths(path).expect("PATH"))
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("SAM_CLI_TELEMETRY", "0")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} {} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        program.display(),
        args.join(" "),
        out.status
    );
    stdout
}

#[test]
fn sam_validate_lint_passes() {
    run_ok(
        tool("sam"),
        &["validate", "--lint", "--template", "template.yaml"],
    );
}

#[test]
fn cfn_lint_passes() {
    run_ok(tool("cfn-lint"), &["template.yaml"]);
}

#[test]
fn every_asl_passes_asl_validator() {
    let files = asl_files();
    assert!(!files.is_empty(), "no statemachine/*.asl.json");
    for f in files {
        run_ok(tool("asl-validator"), &["--json-path", &f]);
    }
}

/// The generation ASL really runs: data flow, Retry/Catch routing, the Map's concurrency and
/// both compose branches, in moto's executor with stub steps (about 9 s).
#[test]
fn generation_asl_runs_in_moto() {
    run_ok(tool("python"), &["scripts/check/asl_moto.py", "--quick"]);
}

/// The processing ASL really runs: the `{step, input}` payloads, the three transcode paths (the
/// Map's concurrency; the worker's command and environment through ecs:runTask.sync, and its
/// non-zero exit), SNS and EventBridge receiving the event through moto's own integrations, and
/// the failure path (about 8 s).
#[test]
fn processing_asl_runs_in_moto() {
    run_ok(
        tool("python"),
        &["scripts/check/asl_moto_processing.py", "--quick"],
    );
}

// ------------------------------------------------------------------------------------------
// Parsing the template and the ASL
// ------------------------------------------------------------------------------------------

fn asl_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join("statemachine"))
        .expect("statemachine/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".asl.json"))
        .map(|n| format!("statemachine/{n}"))
        .collect();
    files.sort();
    files
}

fn template() -> &'static Yaml {
    static T: OnceLock<Yaml> = OnceLock::new();
    T.get_or_init(|| serde_yaml_ng::from_str(&read("template.yaml")).expect("template.yaml parses"))
}

fn resources() -> &'static serde_yaml_ng::Mapping {
    template()
        .get("Resources")
        .and_then(Yaml::as_mapping)
        .expect("Resources")
}

fn resources_of_type(ty: &str) -> Vec<(String, &'static Yaml)> {
    resources()
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Yaml::as_str) == Some(ty))
        .map(|(k, r)| (k.as_str().expect("logical id").to_owned(), r))
        .collect()
}

fn props(resource: &Yaml) -> &Yaml {
    resource.get("Properties").expect("Properties")
}

/// What a `!Ref X` / `!GetAtt X.Attr` (short or long form) points at: the logical id X.
fn referenced_id(v: &Yaml) -> Option<String> {
    match v {
        Yaml::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!');
            match (tag, &t.value) {
                ("Ref", Yaml::String(s)) => Some(s.clone()),
                ("GetAtt", Yaml::String(s)) => s.split('.').next().map(str::to_owned),
                ("GetAtt", Yaml::Sequence(parts)) => parts.first()?.as_str().map(str::to_owned),
                _ => None,
            }
        }
        Yaml::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next()?;
            match (k.as_str()?, v) {
                ("Ref", Yaml::String(s)) => Some(s.clone()),
                ("Fn::GetAtt", Yaml::String(s)) => s.split('.').next().map(str::to_owned),
                ("Fn::GetAtt", Yaml::Sequence(parts)) => parts.first()?.as_str().map(str::to_owned),
                _ => None,
            }
        }
        _ => None,
    }
}

struct StateMachine {
    logical_id: String,
    asl_path: String,
    asl: Json,
    text: String,
    substitutions: BTreeMap<String, &'static Yaml>,
}

fn state_machines() -> Vec<StateMachine> {
    resources_of_type("AWS::Serverless::StateMachine")
        .into_iter()
        .map(|(id, r)| {
            let p = props(r);
            let asl_path = p
                .get("DefinitionUri")
                .and_then(Yaml::as_str)
                .unwrap_or_else(|| panic!("{id}: DefinitionUri must be a path in statemachine/"))
                .to_owned();
            let text = read(&asl_path);
            let asl = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{asl_path} is not valid JSON: {e}"));
            let substitutions = p
                .get("DefinitionSubstitutions")
                .and_then(Yaml::as_mapping)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.as_str().expect("key").to_owned(), v))
                        .collect()
                })
                .unwrap_or_default();
            StateMachine {
                logical_id: id,
                asl_path,
                asl,
                text,
                substitutions,
            }
        })
        .collect()
}

fn processing() -> StateMachine {
    state_machines()
        .into_iter()
        .find(|s| s.asl_path == "statemachine/processing.asl.json")
        .expect("a state machine with DefinitionUri statemachine/processing.asl.json")
}

fn generation() -> StateMachine {
    state_machines()
        .into_iter()
        .find(|s| s.asl_path == "statemachine/generation.asl.json")
        .expect("a state machine with DefinitionUri statemachine/generation.asl.json")
}

fn placeholders(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').expect("unterminated ${ in ASL");
        out.insert(after[..end].to_owned());
        rest = &after[end..];
    }
    out
}

/// Every state of a definition, nested ones included: (name, state, enclosing Map and Parallel
/// states, outermost first).
fn all_states(asl: &Json) -> Vec<(String, &Json, Vec<&Json>)> {
    fn walk<'a>(
        states: &'a Json,
        enclosing: &[&'a Json],
        out: &mut Vec<(String, &'a Json, Vec<&'a Json>)>,
    ) {
        for (name, state) in states.as_object().expect("States is an object") {
            out.push((name.clone(), state, enclosing.to_vec()));
            for inner in ["ItemProcessor", "Iterator"] {
                if let Some(p) = state.get(inner) {
                    let mut e = enclosing.to_vec();
                    e.push(state);
                    walk(&p["States"], &e, out);
                }
            }
            if let Some(branches) = state.get("Branches").and_then(Json::as_array) {
                let mut e = enclosing.to_vec();
                e.push(state);
                for b in branches {
                    walk(&b["States"], &e, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&asl["States"], &[], &mut out);
    out
}

fn is_lambda_task(state: &Json) -> bool {
    state["Type"] == "Task" && state["Resource"] == LAMBDA_INVOKE
}

/// The `${X}` a Lambda task invokes: its FunctionName placeholder's name.
fn function_placeholder(state: &Json) -> String {
    let f = state["Parameters"]["FunctionName"]
        .as_str()
        .expect("a Lambda task names its function with a literal FunctionName");
    f.strip_prefix("${")
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or_else(|| panic!("FunctionName {f} is not a ${{...}} substitution"))
        .to_owned()
}

/// The logical id of the function a Lambda task invokes, through DefinitionSubstitutions.
fn invoked_function(sm: &StateMachine, state: &Json) -> String {
    let key = function_placeholder(state);
    let v = sm
        .substitutions
        .get(&key)
        .unwrap_or_else(|| panic!("no DefinitionSubstitution for {key}"));
    referenced_id(v).unwrap_or_else(|| panic!("{key} is not a !GetAtt/!Ref to a function"))
}

/// The step a Lambda task runs: its payload's `step` (both pipelines invoke one function each,
/// told the step by name).
fn task_step(state: &Json) -> &str {
    state["Parameters"]["Payload"]["step"]
        .as_str()
        .expect("a Lambda task names its step in Payload.step")
}

fn error_names(list: &Json) -> Vec<&str> {
    list["ErrorEquals"]
        .as_array()
        .expect("ErrorEquals")
        .iter()
        .map(|e| e.as_str().expect("error name"))
        .collect()
}

// ------------------------------------------------------------------------------------------
// Substitutions
// ------------------------------------------------------------------------------------------

#[test]
fn every_asl_is_deployed_and_every_placeholder_substituted() {
    let machines = state_machines();
    let deployed: BTreeSet<&str> = machines.iter().map(|s| s.asl_path.as_str()).collect();
    for f in asl_files() {
        assert!(
            deployed.contains(f.as_str()),
            "{f} is not the DefinitionUri of any AWS::Serverless::StateMachine"
        );
    }
    for sm in &machines {
        let used = placeholders(&sm.text);
        let given: BTreeSet<String> = sm.substitutions.keys().cloned().collect();
        let missing: Vec<_> = used.difference(&given).collect();
        assert!(
            missing.is_empty(),
            "{} ({}): no DefinitionSubstitution for {missing:?}",
            sm.logical_id,
            sm.asl_path
        );
        let unused: Vec<_> = given.difference(&used).collect();
        assert!(
            unused.is_empty(),
            "{}: DefinitionSubstitutions {unused:?} appear nowhere in {}",
            sm.logical_id,
            sm.asl_path
        );
    }
}

#[test]
fn asl_is_jsonpath() {
    for sm in state_machines() {
        assert_ne!(
            sm.asl.get("QueryLanguage").and_then(Json::as_str),
            Some("JSONata"),
            "{}: JSONata does not run in moto; use JSONPath",
            sm.asl_path
        );
        for (name, state, _) in all_states(&sm.asl) {
            assert_ne!(
                state.get("QueryLanguage").and_then(Json::as_str),
                Some("JSONata"),
                "{}: state {name} uses JSONata",
                sm.asl_path
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// Retries, catches, timeouts, error names
// ------------------------------------------------------------------------------------------

#[test]
fn every_task_has_a_timeout_and_every_state_a_comment() {
    for sm in state_machines() {
        for (name, state, _) in all_states(&sm.asl) {
            if state["Type"] == "Task" {
                assert!(
                    state.get("TimeoutSeconds").is_some()
                        || state.get("TimeoutSecondsPath").is_some(),
                    "{}: Task {name} has no TimeoutSeconds (a hung call would hold the job forever)",
                    sm.asl_path
                );
            }
            assert!(
                state
                    .get("Comment")
                    .and_then(Json::as_str)
                    .is_some_and(|c| !c.is_empty()),
                "{}: state {name} has no Comment",
                sm.asl_path
            );
        }
    }
}

#[test]
fn lambda_tasks_retry_transient_errors_and_are_caught() {
    for sm in state_machines() {
        for (name, state, enclosing) in all_states(&sm.asl) {
            if !is_lambda_task(state) {
                continue;
            }
            let retried: BTreeSet<&str> = state["Retry"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: Lambda task {name} has no Retry", sm.asl_path))
                .iter()
                .flat_map(error_names)
                .collect();
            for e in names::LAMBDA_TRANSIENT {
                assert!(
                    retried.contains(e),
                    "{}: Lambda task {name} does not retry {e}",
                    sm.asl_path
                );
            }
            // Caught here, or (inside a Map's ItemProcessor or a Parallel's branch, where the
            // failure states are out of scope) by the state around it.
            let catches_all = |s: &Json| {
                s["Catch"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| error_names(c).contains(&names::STATES_ALL))
                })
            };
            assert!(
                catches_all(state) || enclosing.iter().any(|m| catches_all(m)),
                "{}: Lambda task {name} has no {} Catch (itself or around it)",
                sm.asl_path,
                names::STATES_ALL
            );
        }
    }
}

fn assert_policy(asl: &str, state: &str, retrier: &Json, policy: RetryPolicy, which: &str) {
    let num = |k: &str| {
        retrier[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{asl}: {state}: retrier has no {k}"))
    };
    let ctx = format!("{asl}: {state} must retry with RetryPolicy::{which}");
    assert_eq!(
        num("IntervalSeconds"),
        policy.interval.as_secs_f64(),
        "{ctx}: IntervalSeconds"
    );
    assert_eq!(
        num("BackoffRate"),
        policy.backoff_rate,
        "{ctx}: BackoffRate"
    );
    assert_eq!(
        num("MaxAttempts"),
        f64::from(policy.max_attempts - 1),
        "{ctx}: MaxAttempts counts retries, so it is max_attempts - 1"
    );
    assert_eq!(
        num("MaxDelaySeconds"),
        policy.max_delay.as_secs_f64(),
        "{ctx}: MaxDelaySeconds"
    );
    assert_eq!(retrier["JitterStrategy"], "FULL", "{ctx}: JitterStrategy");
}

/// The numbers come from shared/pipeline/src/policy.rs, which the embedded runner uses: a job
/// retries the same way on both runners. GenerateClip and PollClip use CLIP, every other
/// retrier STEP.
#[test]
fn retry_numbers_match_the_pipeline_policies() {
    let sm = generation();
    let mut clip_retriers = 0;
    for (name, state, _) in all_states(&sm.asl) {
        let Some(retriers) = state.get("Retry").and_then(Json::as_array) else {
            continue;
        };
        let is_clip = is_lambda_task(state)
            && [
                GenerationStep::GenerateClip,
                GenerationStep::PollClip,
                GenerationStep::GenerateTimelineClip,
            ]
            .map(GenerationStep::as_str)
            .contains(&task_step(state));
        for r in retriers {
            if is_clip {
                clip_retriers += 1;
                assert_policy(&sm.asl_path, &name, r, RetryPolicy::CLIP, "CLIP");
            } else {
                assert_policy(&sm.asl_path, &name, r, RetryPolicy::STEP, "STEP");
            }
        }
    }
    assert!(clip_retriers > 0, "no retrier on the GenerateClip task");
}

/// Retried `VidPipe.*` names are the retryable ones, every Lambda step retries all of them (as
/// the embedded runner does), and no name is unknown to the code (a typo would never match).
#[test]
fn error_names_are_the_codes_and_only_retryable_ones_are_retried() {
    for sm in state_machines() {
        for (name, state, _) in all_states(&sm.asl) {
            let mut retried = BTreeSet::new();
            for r in state["Retry"].as_array().into_iter().flatten() {
                for e in error_names(r) {
                    assert_ne!(e, names::STATES_ALL, "{}: {name} retries {e}", sm.asl_path);
                    if e.starts_with("VidPipe.") {
                        assert!(
                            names::RETRYABLE.contains(&e),
                            "{}: {name} retries {e}, which the code classes as permanent",
                            sm.asl_path
                        );
                        retried.insert(e);
                    }
                }
            }
            if is_lambda_task(state) {
                for e in names::RETRYABLE {
                    assert!(
                        retried.contains(e),
                        "{}: Lambda task {name} does not retry {e}",
                        sm.asl_path
                    );
                }
            }
        }
        // Anywhere in the file: ErrorEquals, Fail states' Error, comments aside.
        for (name, state, _) in all_states(&sm.asl) {
            let mut found = Vec::new();
            collect_vidpipe_names(state, &mut found);
            for n in found {
                assert!(
                    KNOWN_NAMES.contains(&n.as_str()),
                    "{}: state {name} uses {n}, which vidpipe_domain::names does not define",
                    sm.asl_path
                );
            }
        }
    }
}

fn collect_vidpipe_names(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::String(s) if s.starts_with("VidPipe.") => out.push(s.clone()),
        Json::Array(a) => a.iter().for_each(|x| collect_vidpipe_names(x, out)),
        Json::Object(o) => o
            .iter()
            .filter(|(k, _)| k.as_str() != "Comment")
            .for_each(|(_, x)| collect_vidpipe_names(x, out)),
        _ => {}
    }
}

// ------------------------------------------------------------------------------------------
// Step order
// ------------------------------------------------------------------------------------------

/// What a state contributes to a path: a step label, or nothing (Pass, Choice).
fn step_label(sm: &StateMachine, state: &Json) -> Option<String> {
    match state["Type"].as_str()? {
        "Task" if is_lambda_task(state) => Some(task_step(state).to_owned()),
        "Task"
            if state["Resource"]
                .as_str()
                .is_some_and(|r| r.starts_with("arn:aws:states:::ecs:runTask")) =>
        {
            Some("Fargate".into())
        }
        "Task" => Some(format!("Task({})", state["Resource"])),
        "Map" => {
            let inner = state
                .get("ItemProcessor")
                .or_else(|| state.get("Iterator"))
                .expect("Map has an ItemProcessor");
            let paths = paths_from(sm, &inner["States"], inner["StartAt"].as_str()?);
            let labels: Vec<String> = paths.into_iter().map(|(p, _)| p.join(" -> ")).collect();
            Some(format!("Map({})", labels.join(" | ")))
        }
        _ => None,
    }
}

/// Every path of normal transitions (Next, Choices, Default; not Catch) from `start` to an end:
/// the step labels along it and the terminal state's type.
fn paths_from(sm: &StateMachine, states: &Json, start: &str) -> Vec<(Vec<String>, String)> {
    fn go(
        sm: &StateMachine,
        states: &Json,
        name: &str,
        mut path: Vec<String>,
        seen: &mut Vec<String>,
        out: &mut Vec<(Vec<String>, String)>,
    ) {
        // The only loops allowed are provider polls: back to a state through a Wait, so no task
        // ever sits waiting itself. Such a path ends at the state it returns to.
        if let Some(at) = seen.iter().position(|s| s == name) {
            assert!(
                seen[at..]
                    .iter()
                    .any(|s| states[s.as_str()]["Type"] == "Wait"),
                "loop through {name} without a Wait state"
            );
            path.push(format!("again {name}"));
            out.push((path, "Loop".into()));
            return;
        }
        let state = &states[name];
        assert!(state.is_object(), "transition to missing state {name}");
        if let Some(l) = step_label(sm, state) {
            path.push(l);
        }
        let mut next: Vec<&str> = Vec::new();
        if let Some(n) = state["Next"].as_str() {
            next.push(n);
        }
        for c in state["Choices"].as_array().into_iter().flatten() {
            next.push(c["Next"].as_str().expect("Choice rule Next"));
        }
        if let Some(d) = state["Default"].as_str() {
            next.push(d);
        }
        if next.is_empty() {
            out.push((path, state["Type"].as_str().unwrap_or("?").to_owned()));
            return;
        }
        seen.push(name.to_owned());
        for n in next {
            go(sm, states, n, path.clone(), seen, out);
        }
        seen.pop();
    }
    let mut out = Vec::new();
    go(sm, states, start, Vec::new(), &mut Vec::new(), &mut out);
    out
}

const RECORD_FAILURE: &str = "record_failure";
const RECORD_TIMELINE_FAILURE: &str = "record_timeline_failure";

/// Each state machine invokes exactly one function, its pipeline's, and its Lambda tasks are
/// exactly that pipeline's steps as the code names them (`vidpipe_domain::steps`): a step added
/// on one side only, or spelled differently, fails here.
#[test]
fn each_pipeline_invokes_its_one_function_with_its_typed_steps() {
    let cases = [
        (
            generation(),
            "GenerateFunction",
            GenerationStep::ALL.map(GenerationStep::as_str).to_vec(),
        ),
        (
            processing(),
            "ProcessFunction",
            ProcessingStep::ALL
                .into_iter()
                .filter(|s| !s.on_worker())
                .map(ProcessingStep::as_str)
                .collect(),
        ),
    ];
    assert_eq!(RECORD_FAILURE, GenerationStep::RecordFailure.as_str());
    assert_eq!(
        RECORD_TIMELINE_FAILURE,
        GenerationStep::RecordTimelineFailure.as_str()
    );
    assert_eq!(RECORD_FAILURE, ProcessingStep::RecordFailure.as_str());
    for (sm, function, steps) in cases {
        let mut seen = BTreeSet::new();
        for (name, state, _) in all_states(&sm.asl) {
            if !is_lambda_task(state) {
                continue;
            }
            assert_eq!(
                invoked_function(&sm, state),
                function,
                "{}: {name} invokes another function",
                sm.asl_path
            );
            seen.insert(task_step(state));
        }
        let want: BTreeSet<&str> = steps.into_iter().collect();
        assert_eq!(seen, want, "{}: the Lambda tasks' steps", sm.asl_path);
    }
}

/// The plan step decides where compose runs (as probe decides processing's route): the Choice
/// reads its route, and only the template's FargateEnabled stacks give the function a threshold.
#[test]
fn the_compose_route_is_the_plan_steps_and_follows_fargate_enabled() {
    let sm = generation();
    let choice = sm.asl["States"]
        .as_object()
        .unwrap()
        .values()
        .find(|s| s["Type"] == "Choice" && s.to_string().contains("$.plan.route"))
        .expect("a Choice on the plan's route");
    let worker = serde_json::to_value(ComposeRoute::Worker).unwrap();
    assert!(
        choice["Choices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["StringEquals"] == worker),
        "{choice}"
    );
    let (_, f) = resources_of_type("AWS::Serverless::Function")
        .into_iter()
        .find(|(id, _)| id == "GenerateFunction")
        .expect("GenerateFunction");
    let env = &props(f)["Environment"]["Variables"];
    let threshold = serde_json::to_value(&env["VIDPIPE_COMPOSE_WORKER_THRESHOLD_FRAMES"]).unwrap();
    assert_eq!(
        threshold,
        serde_json::json!({"!If": ["FargateEnabled", {"!Ref": "FargateComposeThresholdFrames"}, {"!Ref": "AWS::NoValue"}]}),
        "the threshold is set only where the worker exists"
    );
}

#[test]
fn steps_run_plan_map_compose_finalize() {
    let sm = generation();
    let start = sm.asl["StartAt"].as_str().expect("StartAt");
    let paths = paths_from(&sm, &sm.asl["States"], start);
    let map = format!(
        "Map({} -> {} -> again ClipReady | {})",
        GenerationStep::GenerateClip,
        GenerationStep::PollClip,
        GenerationStep::GenerateClip
    );
    let (plan, recompose, compose, finalize) = (
        GenerationStep::Plan.as_str(),
        GenerationStep::PlanRecompose.as_str(),
        GenerationStep::Compose.as_str(),
        GenerationStep::Finalize.as_str(),
    );
    // A recompose (composition_id in the input) takes the same Map and composers after its own
    // plan step, which does no planning. A timeline render (timeline_id) has its own branch: no
    // job, one Map item per generate asset the cache lacks, its one pass where its route says.
    let timeline_map = format!("Map({})", GenerationStep::GenerateTimelineClip);
    let (plan_timeline, render_timeline, finalize_timeline) = (
        GenerationStep::PlanTimeline.as_str(),
        GenerationStep::RenderTimeline.as_str(),
        GenerationStep::FinalizeTimeline.as_str(),
    );
    let expected: [Vec<&str>; 6] = [
        vec![plan, &map, compose, finalize],
        vec![plan, &map, "Fargate", finalize],
        vec![recompose, &map, compose, finalize],
        vec![recompose, &map, "Fargate", finalize],
        vec![
            plan_timeline,
            &timeline_map,
            render_timeline,
            finalize_timeline,
        ],
        vec![plan_timeline, &timeline_map, "Fargate", finalize_timeline],
    ];
    let mut seen = BTreeSet::new();
    for (path, end) in &paths {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        assert!(
            expected.contains(&p),
            "unexpected path through {}: {p:?} (want Plan or PlanRecompose -> Map(GenerateClip) -> Compose in Lambda or on Fargate -> Finalize)",
            sm.asl_path
        );
        assert_eq!(end, "Succeed", "path {p:?} must end in a Succeed state");
        seen.insert(p);
    }
    for e in &expected {
        assert!(seen.contains(e), "no path {e:?} in {}", sm.asl_path);
    }
}

/// Every Catch leads, through Choice/Pass states only, to RecordFailure and then a Fail state;
/// only VidPipe.Cancelled may go straight to a Fail (the canceller recorded the job's end).
#[test]
fn every_catch_records_the_failure_then_fails() {
    let sm = generation();
    let states = &sm.asl["States"];
    let mut catchers = 0;
    for (name, state, enclosing) in all_states(&sm.asl) {
        if !enclosing.is_empty() {
            assert!(
                state.get("Catch").is_none(),
                "{name}: a Catch inside a Map cannot reach RecordFailure; catch on the Map"
            );
            continue;
        }
        let is_record_failure = is_lambda_task(state)
            && [RECORD_FAILURE, RECORD_TIMELINE_FAILURE].contains(&task_step(state));
        for c in state["Catch"].as_array().into_iter().flatten() {
            catchers += 1;
            if is_record_failure {
                // Its own failure must not replace the error it was recording.
                let rp = c["ResultPath"].as_str().unwrap_or("$");
                assert!(
                    rp.starts_with("$.") && rp != "$.error",
                    "{name}: RecordFailure's Catch must keep $.job_id and $.error (ResultPath {rp})"
                );
            } else {
                assert_eq!(
                    c["ResultPath"], "$.error",
                    "{name}: Catch must keep $.job_id (ResultPath $.error)"
                );
            }
            let target = c["Next"].as_str().expect("Catch Next");
            let paths = paths_from(&sm, states, target);
            let errors = error_names(c);
            for (path, end) in paths {
                assert_eq!(
                    end, "Fail",
                    "{name}: Catch {errors:?} must end in a Fail state"
                );
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                if errors == [names::CANCELLED] {
                    assert!(
                        p.is_empty() || p == [RECORD_FAILURE],
                        "{name}: the Cancelled Catch runs {p:?}"
                    );
                } else if !is_record_failure {
                    // Which one runs is WhoseFailure's choice: a timeline's, or a job's (or its
                    // recompose's) RecordFailure.
                    assert!(
                        p == [RECORD_FAILURE] || p == [RECORD_TIMELINE_FAILURE],
                        "{name}: Catch {errors:?} must run RecordFailure and then fail, not {p:?}"
                    );
                }
            }
        }
    }
    assert!(catchers > 0, "no Catch in {}", sm.asl_path);
    let record = all_states(&sm.asl)
        .into_iter()
        .find(|(_, s, _)| is_lambda_task(s) && task_step(s) == RECORD_FAILURE)
        .expect("a RecordFailure task");
    let params = &record.1["Parameters"]["Payload"]["input"];
    assert_eq!(
        params["job_id.$"], "$.job_id",
        "RecordFailure gets the job id"
    );
    assert_eq!(
        params["error_type.$"], "$.error.Error",
        "RecordFailure gets the error name"
    );
    assert_eq!(
        params["cause.$"], "$.error.Cause",
        "RecordFailure gets the cause"
    );
}

// ------------------------------------------------------------------------------------------
// Functions and packages
// ------------------------------------------------------------------------------------------

fn workspace_members() -> Vec<String> {
    let doc: toml_edit::DocumentMut = read("Cargo.toml").parse().expect("Cargo.toml parses");
    doc["workspace"]["members"]
        .as_array()
        .expect("workspace.members")
        .iter()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect()
}

/// The bins a package builds: its [[bin]] names, or the package name for a src/main.rs.
fn package_bins(dir: &str) -> Result<Vec<String>, String> {
    let manifest = root().join(dir).join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| format!("{}: {e} (the package must exist)", manifest.display()))?;
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("{} does not parse: {e}", manifest.display()))?;
    let mut bins: Vec<String> = doc
        .get("bin")
        .and_then(|b| b.as_array_of_tables())
        .map(|t| {
            t.iter()
                .filter_map(|b| b.get("name").and_then(|n| n.as_str()).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    // Without [[bin]] tables, src/main.rs builds a bin named after the package.
    if bins.is_empty()
        && root().join(dir).join("src/main.rs").is_file()
        && let Some(name) = doc["package"]["name"].as_str()
    {
        bins.push(name.to_owned());
    }
    Ok(bins)
}

/// Reports every mismatch at once, so one run lists all the functions still to write.
#[test]
fn every_function_is_a_workspace_package_with_its_bin() {
    let functions_listed = functions();
    let functions = resources_of_type("AWS::Serverless::Function");
    let ids: BTreeSet<&str> = functions.iter().map(|(id, _)| id.as_str()).collect();
    let expected: BTreeSet<&str> = functions_listed.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(ids, expected, "the template's functions");
    let members = workspace_members();
    let mut problems = Vec::new();
    for (id, dir, bin) in &functions_listed {
        let (_, f) = functions
            .iter()
            .find(|(i, _)| i == id)
            .expect("listed above");
        let code_uri = props(f).get("CodeUri").and_then(Yaml::as_str);
        if code_uri != Some(dir) {
            problems.push(format!("{id}: CodeUri is {code_uri:?}, want {dir}"));
        }
        let meta = f.get("Metadata");
        let build_method = meta
            .and_then(|m| m.get("BuildMethod"))
            .and_then(Yaml::as_str);
        if build_method != Some("rust-cargolambda") {
            problems.push(format!(
                "{id}: Metadata.BuildMethod is {build_method:?}, want rust-cargolambda"
            ));
        }
        let binary = meta
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(Yaml::as_str);
        if binary != Some(bin) {
            problems.push(format!(
                "{id}: Metadata.BuildProperties.Binary is {binary:?}, want {bin}"
            ));
        }
        if !members.iter().any(|m| m == dir) {
            problems.push(format!(
                "{id}: {dir} is not in the workspace members of Cargo.toml (cargo lambda cannot build it)"
            ));
        }
        match package_bins(dir) {
            Ok(bins) if bins.iter().any(|b| b == bin) => {}
            Ok(bins) => problems.push(format!("{id}: {dir}/Cargo.toml builds {bins:?}, not {bin}")),
            Err(e) => problems.push(format!("{id}: {e}")),
        }
    }
    assert!(
        problems.is_empty(),
        "functions vs packages:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_function_has_a_log_group_with_retention() {
    let groups: Vec<&Yaml> = resources_of_type("AWS::Logs::LogGroup")
        .into_iter()
        .map(|(_, r)| props(r))
        .collect();
    for (id, _, _) in functions() {
        let want = format!("/aws/lambda/${{{id}}}");
        let group = groups
            .iter()
            .find(|g| match g.get("LogGroupName") {
                Some(Yaml::Tagged(t)) => t.value.as_str() == Some(want.as_str()),
                _ => false,
            })
            .unwrap_or_else(|| panic!("no AWS::Logs::LogGroup named !Sub {want}"));
        assert!(
            group.get("RetentionInDays").is_some(),
            "{want}: no RetentionInDays"
        );
    }
}

/// Every function with the ffmpeg layer composes or renders captions, so it also has the fonts
/// layer (built by layers/fonts/build.sh) and is told where it unpacks.
#[test]
fn functions_with_ffmpeg_have_the_caption_fonts() {
    let fonts = &template()["Resources"]["FontsLayer"];
    assert_eq!(
        fonts["Type"].as_str(),
        Some("AWS::Serverless::LayerVersion")
    );
    assert_eq!(
        props(fonts)["ContentUri"].as_str(),
        Some("layers/fonts/build")
    );
    let mut composing = 0;
    for (id, f) in resources_of_type("AWS::Serverless::Function") {
        let layers: Vec<String> = props(f)
            .get("Layers")
            .and_then(Yaml::as_sequence)
            .map(|l| l.iter().filter_map(referenced_id).collect())
            .unwrap_or_default();
        if !layers.iter().any(|l| l == "FfmpegLayer") {
            continue;
        }
        composing += 1;
        assert!(
            layers.iter().any(|l| l == "FontsLayer"),
            "{id} has ffmpeg but not the fonts layer"
        );
        assert_eq!(
            props(f)["Environment"]["Variables"]["VIDPIPE_FONTS_DIR"].as_str(),
            Some("/opt/fonts"),
            "{id}"
        );
    }
    assert!(composing >= 2, "the generate and process functions");
}

/// The narration step runs in the generate function (the plan step speaks every line), so that
/// function has the espeak layer, for the architecture the functions run on, and is told where
/// the layer's binary unpacks; the layer's tree puts the binary and its voices there.
#[test]
fn the_generate_function_speaks_with_the_espeak_layer() {
    let layer = &template()["Resources"]["EspeakLayer"];
    assert_eq!(
        layer["Type"].as_str(),
        Some("AWS::Serverless::LayerVersion")
    );
    let content = props(layer)["ContentUri"].as_str().expect("ContentUri");
    let arch = template()["Globals"]["Function"]["Architectures"]
        .as_sequence()
        .and_then(|a| a.first())
        .and_then(Yaml::as_str)
        .expect("Globals.Function.Architectures");
    assert_eq!(content, format!("layers/espeak/build/{arch}"));
    let compatible: Vec<&str> = props(layer)["CompatibleArchitectures"]
        .as_sequence()
        .expect("CompatibleArchitectures")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(compatible, [arch]);

    let generate = props(&template()["Resources"]["GenerateFunction"]);
    let layers: Vec<String> = generate["Layers"]
        .as_sequence()
        .expect("GenerateFunction.Layers")
        .iter()
        .filter_map(referenced_id)
        .collect();
    assert!(layers.iter().any(|l| l == "EspeakLayer"), "{layers:?}");
    let binary = generate["Environment"]["Variables"]["VIDPIPE_ESPEAK"]
        .as_str()
        .expect("VIDPIPE_ESPEAK");
    // A layer unpacks under /opt: the binary named is the one in the tree build.sh lays out
    // (espeak_layer checks that tree, and that the binary looks for its voices in /opt/share).
    let in_tree = binary.strip_prefix("/opt/").expect("a path in the layer");
    assert_eq!(in_tree, "bin/espeak-ng");
    let narrator = &template()["Parameters"]["Narrator"];
    assert_eq!(narrator["Default"].as_str(), Some("espeak"));
}

#[test]
fn every_route_has_its_own_function_behind_the_jwt_authorizer() {
    let mut served = BTreeSet::new();
    for (id, f) in resources_of_type("AWS::Serverless::Function") {
        // The page is not an API route (see the test below).
        if id == APP_FUNCTION.0 {
            continue;
        }
        let Some(events) = props(f).get("Events").and_then(Yaml::as_mapping) else {
            continue;
        };
        for (name, e) in events {
            if e.get("Type").and_then(Yaml::as_str) != Some("HttpApi") {
                continue;
            }
            let p = e.get("Properties").expect("event Properties");
            assert_eq!(
                p.get("ApiId").and_then(referenced_id).as_deref(),
                Some("HttpApi"),
                "{id} {name:?}: ApiId"
            );
            let method = p.get("Method").and_then(Yaml::as_str).expect("Method");
            let path = p.get("Path").and_then(Yaml::as_str).expect("Path");
            served.insert((method.to_owned(), path.to_owned(), id.clone()));
        }
    }
    // Exactly one function per route, and it is the route's own.
    let want: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.path.to_owned(),
                function_for(r.operation).logical_id.to_owned(),
            )
        })
        .collect();
    assert_eq!(
        served, want,
        "HttpApi routes and the functions serving them"
    );
    let auth = props(&resources()["HttpApi"])
        .get("Auth")
        .expect("HttpApi Auth");
    let default = auth
        .get("DefaultAuthorizer")
        .and_then(Yaml::as_str)
        .expect("a DefaultAuthorizer");
    let authorizer = auth
        .get("Authorizers")
        .and_then(|a| a.get(default))
        .expect("the default authorizer is defined");
    assert!(
        authorizer.get("JwtConfiguration").is_some(),
        "the default authorizer is a JWT authorizer"
    );
}

/// The web app's function answers `GET /` and `GET /{proxy+}` without a JWT (the page loads
/// before it signs in), only those, holds no grants, and is told the OIDC issuer, the client id
/// (the WebAppClientId parameter, else the first audience) and the socket's URL.
#[test]
fn the_app_function_serves_the_page_unauthenticated_and_is_granted_nothing() {
    let f = &resources()[APP_FUNCTION.0];
    let events = props(f)
        .get("Events")
        .and_then(Yaml::as_mapping)
        .expect("the app function's events");
    let mut routes = BTreeSet::new();
    for (name, e) in events {
        assert_eq!(
            e.get("Type").and_then(Yaml::as_str),
            Some("HttpApi"),
            "{name:?}"
        );
        let p = &e["Properties"];
        assert_eq!(
            p.get("ApiId").and_then(referenced_id).as_deref(),
            Some("HttpApi")
        );
        assert_eq!(
            p["Auth"]["Authorizer"].as_str(),
            Some("NONE"),
            "{name:?}: the page is public"
        );
        routes.insert((
            p["Method"].as_str().unwrap().to_owned(),
            p["Path"].as_str().unwrap().to_owned(),
        ));
    }
    let want: BTreeSet<(String, String)> = [("GET", "/"), ("GET", "/{proxy+}")]
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(routes, want);
    assert!(
        props(f).get("Policies").is_none(),
        "the app function needs no AWS access: no policies"
    );
    let env = &props(f)["Environment"]["Variables"];
    for name in [
        "VIDPIPE_OIDC_ISSUER",
        "VIDPIPE_OIDC_CLIENT_ID",
        "VIDPIPE_OIDC_AUDIENCE",
        "VIDPIPE_WEBSOCKET_URL",
    ] {
        assert!(env.get(name).is_some(), "AppFunction sets {name}");
    }
    let client_id = format!("{:?}", env["VIDPIPE_OIDC_CLIENT_ID"]);
    assert!(client_id.contains("WebAppClientId"), "{client_id}");
    // The socket the app is told of: the parameter when given, else this stack's own stage,
    // the very URL of the WebSocketUrl output.
    let socket = format!("{:?}", env["VIDPIPE_WEBSOCKET_URL"]);
    assert!(socket.contains("WebAppWebSocketUrlGiven"), "{socket}");
    let output = format!("{:?}", template()["Outputs"]["WebSocketUrl"]["Value"]);
    let own = output
        .split('"')
        .find(|s| s.starts_with("wss://"))
        .unwrap_or_else(|| panic!("WebSocketUrl output: {output}"));
    assert!(socket.contains(own), "{socket} names {own}");
    let params = template()["Parameters"].as_mapping().expect("Parameters");
    for p in ["WebAppClientId", "WebAppWebSocketUrl"] {
        assert!(params.contains_key(Yaml::String(p.into())), "parameter {p}");
    }
}

/// A policy resource in a comparable form: a string as is, `!Ref X`, `!GetAtt X.Arn`, `!Sub ...`.
fn resource_text(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Tagged(t) => {
            let tag = t.tag.to_string();
            let value = match &t.value {
                Yaml::String(s) => s.clone(),
                other => panic!("unexpected {tag} form in a policy: {other:?}"),
            };
            format!("{} {value}", tag.trim_start_matches('!'))
        }
        other => panic!("unexpected policy resource {other:?}"),
    }
}

fn one_or_many(v: &Yaml) -> Vec<&Yaml> {
    match v {
        Yaml::Sequence(items) => items.iter().collect(),
        one => vec![one],
    }
}

/// Every (action, resource) a function's `Policies` allow, managed policies (`!Ref`, also under
/// `!If`) resolved to their statements.
fn granted(function: &str) -> BTreeSet<(String, String)> {
    fn statements(policy: &'static Yaml, out: &mut Vec<&'static Yaml>) {
        match policy {
            Yaml::Tagged(t) if t.tag.to_string().trim_start_matches('!') == "If" => {
                let branches = t.value.as_sequence().expect("!If [cond, then, else]");
                for branch in &branches[1..] {
                    if referenced_id(branch).as_deref() != Some("AWS::NoValue") {
                        statements(branch, out);
                    }
                }
            }
            Yaml::Tagged(_) => {
                let id = referenced_id(policy).expect("a !Ref to a managed policy");
                let managed = &resources()[id.as_str()];
                assert_eq!(
                    managed.get("Type").and_then(Yaml::as_str),
                    Some("AWS::IAM::ManagedPolicy"),
                    "{id}"
                );
                out.extend(one_or_many(&props(managed)["PolicyDocument"]["Statement"]));
            }
            Yaml::Mapping(_) => out.extend(one_or_many(&policy["Statement"])),
            other => {
                panic!("unexpected policy {other:?} (no SAM policy templates or AWS managed names)")
            }
        }
    }
    let mut list = Vec::new();
    for policy in one_or_many(&props(&resources()[function])["Policies"]) {
        statements(policy, &mut list);
    }
    let mut out = BTreeSet::new();
    for statement in list {
        assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{function}");
        assert!(
            statement.get("Condition").is_none(),
            "{function}: no conditions expected"
        );
        for action in one_or_many(&statement["Action"]) {
            for resource in one_or_many(&statement["Resource"]) {
                out.insert((
                    action.as_str().expect("an action").to_owned(),
                    resource_text(resource),
                ));
            }
        }
    }
    out
}

/// What each grant means in IAM: the only place the API's permissions are spelled out.
fn iam_of(grant: Grant) -> Vec<(&'static str, &'static str)> {
    const TABLE: [&str; 2] = ["GetAtt JobsTable.Arn", "Sub ${JobsTable.Arn}/index/*"];
    let on = |actions: &[&'static str], resources: &[&'static str]| {
        actions
            .iter()
            .flat_map(|a| resources.iter().map(move |r| (*a, *r)))
            .collect::<Vec<_>>()
    };
    match grant {
        Grant::TableRead => on(&["dynamodb:GetItem", "dynamodb:Query"], &TABLE),
        Grant::TableWrite => on(
            &[
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:Query",
                "dynamodb:ConditionCheckItem",
            ],
            &TABLE,
        ),
        Grant::MediaRead => vec![
            ("s3:GetObject", "Sub ${MediaBucket.Arn}/*"),
            ("s3:ListBucket", "GetAtt MediaBucket.Arn"),
        ],
        Grant::AssetUpload => vec![("s3:PutObject", "Sub ${MediaBucket.Arn}/uploads/*")],
        Grant::TimelineWrite => vec![(
            "s3:PutObject",
            "Sub ${MediaBucket.Arn}/compositions/*/timeline.json",
        )],
        Grant::RawUpload => on(
            &[
                "s3:PutObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            &["Sub ${MediaBucket.Arn}/raw/*"],
        ),
        Grant::StartGeneration => vec![("states:StartExecution", "Ref GenerationStateMachine")],
        Grant::StopGeneration => on(
            &["states:StopExecution", "states:DescribeExecution"],
            &[
                "Sub arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${GenerationStateMachine.Name}:*",
            ],
        ),
        Grant::StartProcessing => vec![("states:StartExecution", "Ref ProcessingStateMachine")],
        Grant::ProviderSecrets => vec![
            (
                "ssm:GetParameter",
                "Sub arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${ReplicateTokenParameter}",
            ),
            (
                "ssm:GetParameter",
                "Sub arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${OpenAIKeyParameter}",
            ),
            (
                "secretsmanager:GetSecretValue",
                "Sub arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:vidpipe/*",
            ),
        ],
    }
}

/// Least privilege: each route's role allows exactly what its route's grants need, nothing more
/// and nothing missing. Reports every function's difference at once.
#[test]
fn each_api_function_is_granted_exactly_what_its_route_needs() {
    let mut problems = Vec::new();
    for f in API_FUNCTIONS {
        let want: BTreeSet<(String, String)> = f
            .grants
            .iter()
            .flat_map(|g| iam_of(*g))
            .map(|(a, r)| (a.to_owned(), r.to_owned()))
            .collect();
        let got = granted(f.logical_id);
        for extra in got.difference(&want) {
            problems.push(format!(
                "{}: allows {extra:?} it does not need",
                f.logical_id
            ));
        }
        for missing in want.difference(&got) {
            problems.push(format!("{}: lacks {missing:?}", f.logical_id));
        }
    }
    assert!(
        problems.is_empty(),
        "API roles:\n  {}",
        problems.join("\n  ")
    );
}

/// A batch submits its items exactly as single submissions are submitted, so its function has the
/// single submit's role and settings, no more; reading a batch back is read-only, like reading a
/// generation. The batch paths are literal segments, so API Gateway (and the emulated gateway)
/// never hands `/v1/generations/batch` to the `{id}` routes.
#[test]
fn the_batch_routes_have_a_submits_role_and_a_reads_role() {
    use vidpipe_http::routes::Operation;
    let id = |op| function_for(op).logical_id;
    let env = |op| {
        props(&resources()[id(op)])
            .get("Environment")
            .cloned()
            .unwrap_or(Yaml::Null)
    };
    let (single, batch) = (
        Operation::SubmitGeneration,
        Operation::SubmitGenerationBatch,
    );
    assert_eq!(granted(id(batch)), granted(id(single)));
    assert_eq!(env(batch), env(single));
    assert!(!granted(id(batch)).is_empty());
    let (read, batch_read) = (Operation::GetGeneration, Operation::GetGenerationBatch);
    // The single read also presigns its clips' pictures (media reads); the tables they read
    // alike.
    let mut tables = granted(id(read));
    tables.retain(|(action, _)| action.starts_with("dynamodb:"));
    assert_eq!(granted(id(batch_read)), tables);
    assert!(
        granted(id(read))
            .iter()
            .all(|(action, _)| action.starts_with("dynamodb:")
                || action == "s3:GetObject"
                || action == "s3:ListBucket"),
        "{:?}",
        granted(id(read))
    );
    assert!(
        granted(id(batch_read))
            .iter()
            .all(|(action, _)| action == "dynamodb:GetItem" || action == "dynamodb:Query"),
        "{:?}",
        granted(id(batch_read))
    );
    let path = |op| {
        vidpipe_http::routes::ROUTES
            .iter()
            .find(|r| r.operation == op)
            .map(|r| r.path)
            .unwrap()
    };
    assert!(!path(batch).contains('{'));
    assert!(path(batch_read).starts_with("/v1/generations/batches/"));
}

/// Each route's function is told only what its route uses: the cursor key only where lists are
/// paged, quotas only where jobs are admitted, state machines only where executions start or stop.
#[test]
fn each_api_function_gets_only_the_settings_its_route_reads() {
    for f in API_FUNCTIONS {
        let vars: BTreeSet<String> = props(&resources()[f.logical_id])
            .get("Environment")
            .and_then(|e| e.get("Variables"))
            .and_then(Yaml::as_mapping)
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut want = BTreeSet::new();
        // The lists that page under sealed cursors (a job's deliveries come whole).
        if matches!(
            f.operation,
            vidpipe_http::routes::Operation::ListGenerations
                | vidpipe_http::routes::Operation::ListProcessingJobs
        ) {
            want.insert("VIDPIPE_CURSOR_KEY");
        }
        if f.grants.contains(&Grant::StartGeneration) {
            want.insert("VIDPIPE_STATE_MACHINE_ARN");
        }
        // Quotas only where work is admitted: jobs, recomposes and timeline renders (each
        // renders as much).
        if matches!(
            f.operation,
            vidpipe_http::routes::Operation::SubmitGeneration
                | vidpipe_http::routes::Operation::SubmitGenerationBatch
                | vidpipe_http::routes::Operation::RecomposeGeneration
                | vidpipe_http::routes::Operation::CreateComposition
        ) {
            want.extend([
                "VIDPIPE_MAX_CONCURRENT_JOBS",
                "VIDPIPE_DAILY_OUTPUT_MINUTES",
            ]);
        }
        if f.grants.contains(&Grant::StopGeneration) {
            want.insert("VIDPIPE_STATE_MACHINE_ARN");
        }
        if f.grants.contains(&Grant::StartProcessing) {
            want.insert("VIDPIPE_PROCESSING_STATE_MACHINE_ARN");
        }
        let want: BTreeSet<String> = want.into_iter().map(str::to_owned).collect();
        assert_eq!(vars, want, "{}'s own environment", f.logical_id);
    }
}

// ------------------------------------------------------------------------------------------
// Live progress: the WebSocket API, its functions and the pusher on the jobs stream
// ------------------------------------------------------------------------------------------

fn live_table(actions: &[&str]) -> Vec<(String, String)> {
    actions
        .iter()
        .map(|a| (format!("dynamodb:{a}"), "GetAtt LiveTable.Arn".to_owned()))
        .collect()
}

/// Least privilege for the live functions: exactly the calls `DynamoLiveStore` makes on each
/// route's path, job reads only where a job's tenant or state is read, PostToConnection only
/// where frames are sent, and no access to the job records' writes anywhere.
#[test]
fn each_live_function_is_granted_exactly_what_it_calls() {
    let posts = (
        "execute-api:ManageConnections".to_owned(),
        "Sub arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${LiveApi}/${Stage}/POST/@connections/*"
            .to_owned(),
    );
    let reads_jobs: Vec<(String, String)> = iam_of(Grant::TableRead)
        .into_iter()
        .chain(iam_of(Grant::MediaRead))
        .map(|(a, r)| (a.to_owned(), r.to_owned()))
        .collect();
    let want: [(&str, Vec<(String, String)>); 4] = [
        ("LiveConnectFunction", live_table(&["PutItem"])),
        (
            "LiveDisconnectFunction",
            live_table(&["Query", "DeleteItem"]),
        ),
        (
            "LiveMessageFunction",
            live_table(&["GetItem", "PutItem", "UpdateItem", "DeleteItem"])
                .into_iter()
                .chain(reads_jobs.clone())
                .chain([posts.clone()])
                .collect(),
        ),
        (
            "LivePusherFunction",
            live_table(&["Query", "UpdateItem", "DeleteItem"])
                .into_iter()
                .chain(reads_jobs)
                .chain([posts])
                .collect(),
        ),
    ];
    let mut problems = Vec::new();
    for (id, want) in want {
        let want: BTreeSet<(String, String)> = want.into_iter().collect();
        let got = granted(id);
        for extra in got.difference(&want) {
            problems.push(format!("{id}: allows {extra:?} it does not need"));
        }
        for missing in want.difference(&got) {
            problems.push(format!("{id}: lacks {missing:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "live roles:\n  {}",
        problems.join("\n  ")
    );
}

/// The WebSocket API routes `$connect`, `$disconnect` and `$default` each to its own function
/// (proxy integration, invoke permission for that route only); the connect function is the one
/// told the JWT issuer and audiences; every live function knows the live table and the stage's
/// management endpoint; the stack outputs the socket's URL.
#[test]
fn the_websocket_routes_reach_their_own_functions() {
    let api = props(&resources()["LiveApi"]);
    assert_eq!(api["ProtocolType"].as_str(), Some("WEBSOCKET"));
    let integrations: BTreeMap<String, String> =
        resources_of_type("AWS::ApiGatewayV2::Integration")
            .into_iter()
            .map(|(id, r)| {
                assert_eq!(
                    props(r)["IntegrationType"].as_str(),
                    Some("AWS_PROXY"),
                    "{id}"
                );
                let uri = resource_text(&props(r)["IntegrationUri"]);
                let function = LIVE_FUNCTIONS
                    .iter()
                    .map(|(f, _, _)| *f)
                    .find(|f| uri.contains(&format!("${{{f}.Arn}}")))
                    .unwrap_or_else(|| panic!("{id} integrates no live function: {uri}"));
                (id, function.to_owned())
            })
            .collect();
    let mut routes = BTreeMap::new();
    for (id, r) in resources_of_type("AWS::ApiGatewayV2::Route") {
        let p = props(r);
        assert_eq!(
            p.get("ApiId").and_then(referenced_id).as_deref(),
            Some("LiveApi"),
            "{id}"
        );
        let target = resource_text(&p["Target"]);
        let integration = target
            .trim_start_matches("Sub integrations/${")
            .trim_end_matches('}');
        let key = p["RouteKey"].as_str().expect("RouteKey").to_owned();
        routes.insert(key, integrations[integration].clone());
    }
    let want: BTreeMap<String, String> = [
        ("$connect", "LiveConnectFunction"),
        ("$disconnect", "LiveDisconnectFunction"),
        ("$default", "LiveMessageFunction"),
    ]
    .into_iter()
    .map(|(k, f)| (k.to_owned(), f.to_owned()))
    .collect();
    assert_eq!(routes, want, "WebSocket routes and their functions");
    let permitted: BTreeSet<(String, String)> = resources_of_type("AWS::Lambda::Permission")
        .into_iter()
        .filter_map(|(_, r)| {
            let p = props(r);
            let function = p.get("FunctionName").and_then(referenced_id)?;
            let source = resource_text(&p["SourceArn"]);
            let route = source.rsplit('/').next()?.to_owned();
            source.contains("${LiveApi}").then_some((route, function))
        })
        .collect();
    let want_permitted: BTreeSet<(String, String)> = want.into_iter().collect();
    assert_eq!(
        permitted, want_permitted,
        "invoke permissions, one route each"
    );

    for (id, _, _) in LIVE_FUNCTIONS {
        let vars: BTreeSet<String> = props(&resources()[*id])
            .get("Environment")
            .and_then(|e| e.get("Variables"))
            .and_then(Yaml::as_mapping)
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut want: BTreeSet<String> = ["VIDPIPE_LIVE_TABLE", "VIDPIPE_LIVE_ENDPOINT"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        if *id == "LiveConnectFunction" {
            want.extend([
                "VIDPIPE_JWT_ISSUER".to_owned(),
                "VIDPIPE_JWT_AUDIENCE".to_owned(),
            ]);
        }
        assert_eq!(vars, want, "{id}'s own environment");
    }
    let outputs = template().get("Outputs").expect("Outputs");
    let url = resource_text(&outputs["WebSocketUrl"]["Value"]);
    assert!(url.starts_with("Sub wss://${LiveApi}."), "{url}");
}

/// The pusher reads the jobs table's stream (keys only), reports partial batch failures and
/// gives up on a record after bounded retries, bisecting, so a bad batch never stalls the
/// stream; only job, clip and processing items reach it.
#[test]
fn the_pusher_is_fed_by_the_jobs_stream_without_blocking_it() {
    let table = props(&resources()["JobsTable"]);
    assert_eq!(
        table["StreamSpecification"]["StreamViewType"].as_str(),
        Some("KEYS_ONLY")
    );
    let events = props(&resources()["LivePusherFunction"])["Events"]
        .as_mapping()
        .expect("the pusher's Events");
    assert_eq!(events.len(), 1, "one event source");
    let (_, e) = events.iter().next().unwrap();
    assert_eq!(e["Type"].as_str(), Some("DynamoDB"));
    let p = &e["Properties"];
    assert_eq!(resource_text(&p["Stream"]), "GetAtt JobsTable.StreamArn");
    assert_eq!(p["BisectBatchOnFunctionError"].as_bool(), Some(true));
    let retries = p["MaximumRetryAttempts"].as_i64().expect("bounded retries");
    assert!((0..=5).contains(&retries), "{retries} retries");
    let age = p["MaximumRecordAgeInSeconds"]
        .as_i64()
        .expect("bounded age");
    assert!((60..=900).contains(&age), "records kept {age}s");
    assert_eq!(
        p["FunctionResponseTypes"][0].as_str(),
        Some("ReportBatchItemFailures")
    );
    let pattern: Json = serde_json::from_str(
        p["FilterCriteria"]["Filters"][0]["Pattern"]
            .as_str()
            .expect("a filter pattern"),
    )
    .expect("the pattern is JSON");
    let prefixes: Vec<&str> = pattern["dynamodb"]["Keys"]["PK"]["S"]
        .as_array()
        .expect("PK prefixes")
        .iter()
        .filter_map(|v| v["prefix"].as_str())
        .collect();
    assert_eq!(prefixes, ["JOB#", "PROC#"]);
    // The prefixes are the store's: a job and its clips, a processing record.
    let job = vidpipe_domain::job::JobId::generate();
    assert!(vidpipe_aws::dynamo::job_pk(&job).starts_with(prefixes[0]));
    assert!(vidpipe_aws::dynamo::process_pk("ab").starts_with(prefixes[1]));
    for pk in [
        vidpipe_aws::dynamo::job_pk(&job),
        vidpipe_aws::dynamo::process_pk("ab"),
    ] {
        let keys = serde_json::json!({"PK": {"S": pk}});
        assert!(vidpipe_lambda::live::job_of_keys(&keys).is_some(), "{pk}");
    }
}

// ------------------------------------------------------------------------------------------
// Upload processing: processing.asl.json and its trigger
// ------------------------------------------------------------------------------------------

/// What a processing state contributes to a path: the step a Lambda task names, `Map(...)`
/// around its iteration's steps, `Parallel(...)` around its branches' first steps.
fn process_label(state: &Json) -> Option<String> {
    match state["Type"].as_str()? {
        "Task" if is_lambda_task(state) => Some(
            state["Parameters"]["Payload"]["step"]
                .as_str()
                .expect("a processing task names its step")
                .to_owned(),
        ),
        "Task" => Some(state["Resource"].as_str()?.to_owned()),
        "Map" => {
            let inner = &state["ItemProcessor"];
            let start = inner["StartAt"].as_str()?;
            Some(format!("Map({})", process_label(&inner["States"][start])?))
        }
        "Parallel" => {
            let mut parts: Vec<String> = state["Branches"]
                .as_array()?
                .iter()
                .filter_map(|b| process_label(&b["States"][b["StartAt"].as_str()?]))
                .collect();
            parts.sort();
            Some(format!("Parallel({})", parts.join(" + ")))
        }
        _ => None,
    }
}

/// Normal transitions (Next, Choices, Default) from `start`: step labels and the end's type.
fn process_paths(states: &Json, start: &str) -> Vec<(Vec<String>, String)> {
    fn go(
        states: &Json,
        name: &str,
        mut path: Vec<String>,
        seen: &mut Vec<String>,
        out: &mut Vec<(Vec<String>, String)>,
    ) {
        // The only loops allowed are provider polls: back to a state through a Wait, so no task
        // ever sits waiting itself. Such a path ends at the state it returns to.
        if let Some(at) = seen.iter().position(|s| s == name) {
            assert!(
                seen[at..]
                    .iter()
                    .any(|s| states[s.as_str()]["Type"] == "Wait"),
                "loop through {name} without a Wait state"
            );
            path.push(format!("again {name}"));
            out.push((path, "Loop".into()));
            return;
        }
        let state = &states[name];
        assert!(state.is_object(), "transition to missing state {name}");
        path.extend(process_label(state));
        let mut next: Vec<&str> = state["Next"].as_str().into_iter().collect();
        for c in state["Choices"].as_array().into_iter().flatten() {
            next.push(c["Next"].as_str().expect("Choice rule Next"));
        }
        next.extend(state["Default"].as_str());
        if next.is_empty() {
            out.push((path, state["Type"].as_str().unwrap_or("?").to_owned()));
            return;
        }
        seen.push(name.to_owned());
        for n in next {
            go(states, n, path.clone(), seen, out);
        }
        seen.pop();
    }
    let mut out = Vec::new();
    go(states, start, Vec::new(), &mut Vec::new(), &mut out);
    out
}

const NOTIFY: &str = "Parallel(arn:aws:states:::events:putEvents + arn:aws:states:::sns:publish)";

#[test]
fn processing_runs_probe_then_one_pass_or_segments_then_publish_and_notify() {
    let sm = processing();
    let start = sm.asl["StartAt"].as_str().expect("StartAt");
    let mut paths: Vec<Vec<String>> = process_paths(&sm.asl["States"], start)
        .into_iter()
        .map(|(mut p, end)| {
            p.push(end);
            p
        })
        .collect();
    paths.sort();
    paths.dedup();
    let want = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut expected = vec![
        want(&["probe", "transcode", "publish", NOTIFY, "Succeed"]),
        // The audio is encoded beside the segment Map, not before it.
        want(&[
            "probe",
            "split",
            "Parallel(Map(render_segment) + encode_audio)",
            "assemble",
            "publish",
            NOTIFY,
            "Succeed",
        ]),
        // Long uploads on the Fargate worker; publish reads what the task left.
        want(&[
            "probe",
            "arn:aws:states:::ecs:runTask.sync",
            "publish",
            NOTIFY,
            "Succeed",
        ]),
        // A route the ASL does not know (function and definition out of step) is recorded.
        want(&["probe", "record_failure", NOTIFY, "Fail"]),
        // RecordFailure found the run succeeded (a lost Publish response): notified as one.
        want(&["probe", "record_failure", NOTIFY, "Succeed"]),
    ];
    expected.sort();
    assert_eq!(paths, expected, "paths through {}", sm.asl_path);

    // Every route probe can choose has a branch.
    let route = sm.asl["States"]
        .as_object()
        .unwrap()
        .values()
        .find(|s| s["Type"] == "Choice" && s.to_string().contains("$.probe.output.route"))
        .expect("a Choice on the probed route");
    let text = route.to_string();
    for r in ["single_pass", "segments", "worker"] {
        assert!(
            text.contains(&format!("\"{r}\"")),
            "no branch for route {r}"
        );
    }
}

#[test]
fn processing_tasks_retry_with_the_step_policy_and_payloads_carry_keys() {
    let sm = processing();
    let mut lambda_tasks = 0;
    for (name, state, _) in all_states(&sm.asl) {
        if !is_lambda_task(state) {
            continue;
        }
        lambda_tasks += 1;
        assert_eq!(
            invoked_function(&sm, state),
            "ProcessFunction",
            "{name}: every processing task is the one processing function"
        );
        for r in state["Retry"].as_array().expect("Retry") {
            assert_policy(&sm.asl_path, &name, r, RetryPolicy::STEP, "STEP");
        }
        let payload = &state["Parameters"]["Payload"];
        assert!(
            payload.get("input").is_some() || payload.get("input.$").is_some(),
            "{name}: the step's input goes under `input`"
        );
    }
    assert_eq!(
        lambda_tasks, 8,
        "probe, transcode, split, render_segment, encode_audio, assemble, publish, record_failure"
    );

    // The Map runs in a Parallel beside the audio encode; the Parallel hands both branches the
    // split's plan and the concurrency, and gathers {rendered, audio} for assemble.
    let (_, map, around) = all_states(&sm.asl)
        .into_iter()
        .find(|(_, s, _)| s["Type"] == "Map")
        .expect("the segment Map");
    let [parallel] = around.as_slice() else {
        panic!("the Map sits in one Parallel, got {around:?}")
    };
    assert_eq!(parallel["Type"], "Parallel");
    assert_eq!(parallel["Parameters"]["split.$"], "$.split.output");
    assert_eq!(map["ItemsPath"], "$.split.segments");
    assert_eq!(map["ItemSelector"]["probed.$"], "$.split.probed");
    assert_eq!(map["ItemSelector"]["segment.$"], "$$.Map.Item.Value");
    let branch_steps: Vec<String> = parallel["Branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| process_label(&b["States"][b["StartAt"].as_str().unwrap()]).unwrap())
        .collect();
    assert_eq!(branch_steps, ["Map(render_segment)", "encode_audio"]);
    assert_eq!(
        parallel["ResultSelector"],
        serde_json::json!({"rendered.$": "$[0]", "audio.$": "$[1]"})
    );
    let result = parallel["ResultPath"].as_str().expect("ResultPath");
    let assemble = all_states(&sm.asl)
        .into_iter()
        .find(|(_, s, _)| is_lambda_task(s) && s["Parameters"]["Payload"]["step"] == "assemble")
        .expect("assemble")
        .1;
    let input = &assemble["Parameters"]["Payload"]["input"];
    assert_eq!(input["split.$"], "$.split.output");
    assert_eq!(input["rendered.$"], format!("{result}.rendered"));
    assert_eq!(input["audio.$"], format!("{result}.audio"));
    assert_eq!(map["MaxConcurrencyPath"], "$.concurrency");
    let conc = parallel["Parameters"]["concurrency.$"]
        .as_str()
        .expect("the concurrency passed into the Parallel");
    assert!(
        sm.text
            .contains("States.StringToJson('${SegmentConcurrency}')")
            && conc.starts_with("$.config."),
        "the Map's concurrency comes from the SegmentConcurrency parameter"
    );
    let sub = sm
        .substitutions
        .get("SegmentConcurrency")
        .expect("SegmentConcurrency substitution");
    assert_eq!(referenced_id(sub).as_deref(), Some("SegmentConcurrency"));
}

#[test]
fn processing_failures_are_recorded_then_notified_then_fail() {
    let sm = processing();
    let states = &sm.asl["States"];
    let mut catchers = 0;
    // Top-level states only: a Map's iterations and a Parallel's branches are caught around them.
    for (name, state) in states.as_object().expect("States") {
        let is_record =
            is_lambda_task(state) && state["Parameters"]["Payload"]["step"] == "record_failure";
        for c in state["Catch"].as_array().into_iter().flatten() {
            catchers += 1;
            let target = c["Next"].as_str().expect("Catch Next");
            for (path, end) in process_paths(states, target) {
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                if state["Type"] == "Parallel" && state.to_string().contains("sns:publish") {
                    // A notification that fails after publish does not undo the upload; one that
                    // fails after record_failure still fails the execution.
                    assert!(p.is_empty(), "{name}: Catch runs {p:?}");
                    continue;
                }
                // After record_failure, a run that had already succeeded ends as a success.
                let kept_success = end == "Succeed" && p.first() == Some(&"record_failure");
                assert!(
                    end == "Fail" || kept_success,
                    "{name}: Catch must end in a Fail state, not {end}"
                );
                if is_record {
                    assert!(p.is_empty(), "{name}: RecordFailure's Catch runs {p:?}");
                } else {
                    assert_eq!(
                        c["ResultPath"], "$.error",
                        "{name}: Catch keeps the state (ResultPath $.error)"
                    );
                    assert_eq!(
                        p,
                        ["record_failure", NOTIFY],
                        "{name}: Catch must record, notify, fail"
                    );
                }
            }
        }
        if matches!(state["Type"].as_str(), Some("Task" | "Map" | "Parallel")) {
            assert!(
                state["Catch"].as_array().is_some_and(|cs| cs
                    .iter()
                    .any(|c| error_names(c).contains(&names::STATES_ALL))),
                "{}: {name} has no {} Catch",
                sm.asl_path,
                names::STATES_ALL
            );
        }
    }
    assert!(catchers >= 8, "only {catchers} Catch blocks");
    // Only a succeeded record turns the failure path back into a success.
    let kept = states
        .as_object()
        .unwrap()
        .values()
        .find(|s| s["Type"] == "Choice" && s.to_string().contains("$.event.output.status"))
        .expect("a Choice on the recorded status after record_failure");
    let rule = &kept["Choices"][0];
    assert_eq!(rule["Variable"], "$.event.output.status");
    assert_eq!(
        rule["StringEquals"],
        serde_json::to_value(vidpipe_domain::processing::ProcessStatus::Succeeded).unwrap()
    );
    assert_eq!(kept["Choices"].as_array().unwrap().len(), 1);
    let record = all_states(&sm.asl)
        .into_iter()
        .find(|(_, s, _)| {
            is_lambda_task(s) && s["Parameters"]["Payload"]["step"] == "record_failure"
        })
        .expect("a record_failure task")
        .1;
    let input = &record["Parameters"]["Payload"]["input"];
    assert_eq!(
        input["source.$"], "$$.Execution.Input.source",
        "from the execution input, whichever step failed"
    );
    assert_eq!(input["error_type.$"], "$.error.Error");
    assert_eq!(input["cause.$"], "$.error.Cause");
}

#[test]
fn processing_notifies_sns_and_eventbridge_for_both_outcomes() {
    let sm = processing();
    let mut detail_types = BTreeSet::new();
    for (name, state, _) in all_states(&sm.asl) {
        match state["Resource"].as_str() {
            Some("arn:aws:states:::sns:publish") => {
                assert_eq!(
                    state["Parameters"]["TopicArn"], "${NotificationTopicArn}",
                    "{name}"
                );
                assert_eq!(state["Parameters"]["Message.$"], "$.event", "{name}");
            }
            Some("arn:aws:states:::events:putEvents") => {
                let entry = &state["Parameters"]["Entries"][0];
                assert_eq!(entry["Source"], "vidpipe", "{name}");
                assert_eq!(entry["Detail.$"], "$.event", "{name}");
                detail_types.insert(entry["DetailType"].as_str().expect("DetailType").to_owned());
            }
            _ => {}
        }
    }
    assert_eq!(
        detail_types,
        BTreeSet::from([
            "Processing Failed".to_owned(),
            "Processing Succeeded".to_owned()
        ])
    );
    let topic = sm
        .substitutions
        .get("NotificationTopicArn")
        .expect("NotificationTopicArn");
    let topic = referenced_id(topic).expect("a !Ref to the topic");
    assert_eq!(
        resources()[topic.as_str()]["Type"].as_str(),
        Some("AWS::SNS::Topic")
    );
    // The state machine's role may publish and put events.
    let role = serde_json::to_string(
        &serde_json::to_value(&props(&resources()[sm.logical_id.as_str()])["Policies"])
            .expect("policies as JSON"),
    )
    .unwrap();
    for action in ["sns:Publish", "events:PutEvents", "lambda:InvokeFunction"] {
        assert!(
            role.contains(action),
            "{}: no {action} in its Policies",
            sm.logical_id
        );
    }
}

fn int(v: &Yaml) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("{v:?} is not a number"))
}

#[test]
fn uploads_reach_the_dispatcher_through_a_queue_with_a_dead_letter_queue() {
    let res = resources();
    // The bucket sends every raw/ creation to the queue, after the queue policy exists.
    let bucket = &res["MediaBucket"];
    let queue_configs = props(bucket)["NotificationConfiguration"]["QueueConfigurations"]
        .as_sequence()
        .expect("MediaBucket notifies a queue");
    let [qc] = queue_configs.as_slice() else {
        panic!("one queue notification, got {queue_configs:?}")
    };
    assert_eq!(qc["Event"].as_str(), Some("s3:ObjectCreated:*"));
    let rules = qc["Filter"]["S3Key"]["Rules"]
        .as_sequence()
        .expect("key filter");
    assert_eq!(
        rules.len(),
        1,
        "prefix only: suffix filters are case-sensitive"
    );
    assert_eq!(rules[0]["Name"].as_str(), Some("prefix"));
    assert_eq!(rules[0]["Value"].as_str(), Some("raw/"));
    let queue_id = referenced_id(&qc["Queue"]).expect("!GetAtt queue");
    let depends: Vec<&str> = match &bucket["DependsOn"] {
        Yaml::String(s) => vec![s.as_str()],
        Yaml::Sequence(v) => v.iter().filter_map(Yaml::as_str).collect(),
        _ => vec![],
    };
    let policy = resources_of_type("AWS::SQS::QueuePolicy")
        .into_iter()
        .find(|(_, p)| {
            props(p)["Queues"].as_sequence().is_some_and(|qs| {
                qs.iter()
                    .any(|q| referenced_id(q).as_deref() == Some(queue_id.as_str()))
            })
        })
        .expect("a queue policy on the raw-upload queue");
    assert!(
        depends.contains(&policy.0.as_str()),
        "MediaBucket must DependsOn {}",
        policy.0
    );
    let statement = serde_json::to_string(&serde_json::to_value(props(policy.1)).unwrap()).unwrap();
    assert!(statement.contains("s3.amazonaws.com") && statement.contains("sqs:SendMessage"));

    // The queue: visibility above the dispatcher's timeout, five receives then the DLQ.
    let queue = props(&res[queue_id.as_str()]);
    let redrive = &queue["RedrivePolicy"];
    assert_eq!(int(&redrive["maxReceiveCount"]), 5);
    let dlq = referenced_id(&redrive["deadLetterTargetArn"]).expect("DLQ reference");
    assert_eq!(res[dlq.as_str()]["Type"].as_str(), Some("AWS::SQS::Queue"));

    let dispatcher = props(&res["DispatchFunction"]);
    let timeout = int(&dispatcher["Timeout"]);
    assert!(
        int(&queue["VisibilityTimeout"]) >= 6 * timeout,
        "visibility timeout must be at least 6x the dispatcher's {timeout} s"
    );
    let events = dispatcher["Events"]
        .as_mapping()
        .expect("dispatcher Events");
    let sqs: Vec<&Yaml> = events
        .values()
        .filter(|e| e["Type"].as_str() == Some("SQS"))
        .collect();
    let [event] = sqs.as_slice() else {
        panic!("one SQS event on the dispatcher")
    };
    assert_eq!(
        referenced_id(&event["Properties"]["Queue"]).as_deref(),
        Some(queue_id.as_str())
    );
    let types: Vec<&str> = event["Properties"]["FunctionResponseTypes"]
        .as_sequence()
        .expect("FunctionResponseTypes")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(types, ["ReportBatchItemFailures"]);
    let env = &dispatcher["Environment"]["Variables"];
    assert_eq!(
        referenced_id(&env["VIDPIPE_PROCESSING_STATE_MACHINE_ARN"]).as_deref(),
        Some(processing().logical_id.as_str())
    );

    // The processing function: the layer, the whole ephemeral disk, Lambda's longest timeout.
    let process = props(&res["ProcessFunction"]);
    assert_eq!(int(&process["Timeout"]), 900);
    assert_eq!(int(&process["EphemeralStorage"]["Size"]), 10240);
    assert!(
        process["Layers"]
            .as_sequence()
            .is_some_and(|l| !l.is_empty()),
        "the FFmpeg layer"
    );
    let memory = referenced_id(&process["MemorySize"]).expect("MemorySize from a parameter");
    assert_eq!(
        int(&template()["Parameters"][memory.as_str()]["Default"]),
        3008
    );
    let params = template()["Parameters"].as_mapping().unwrap();
    for p in [
        "IntroSeconds",
        "OutroSeconds",
        "SegmentThresholdSeconds",
        "SegmentConcurrency",
        "WatermarkKey",
        "WebhookUrl",
        "ProcessMemorySize",
    ] {
        assert!(params.contains_key(p), "no parameter {p}");
    }
    assert_eq!(
        template()["Parameters"]["WebhookUrl"]["NoEcho"].as_bool(),
        Some(true)
    );
}

/// Long uploads go to the Fargate worker exactly when the stack has one: the process function's
/// route flag follows FargateEnabled, the worker is told the same processing settings, and the
/// processing state machine may run (and pass the roles of) the worker task.
#[test]
fn long_uploads_use_the_fargate_worker_only_when_the_stack_has_one() {
    let res = resources();
    let env = &props(&res["ProcessFunction"])["Environment"]["Variables"];
    let flag = serde_json::to_value(&env["VIDPIPE_PROCESS_WORKER"]).unwrap();
    assert_eq!(
        flag,
        serde_json::json!({"!If": ["FargateEnabled", "1", "0"]}),
        "VIDPIPE_PROCESS_WORKER"
    );
    for (var, param) in [
        ("VIDPIPE_WORKER_CPU", "WorkerCpu"),
        ("VIDPIPE_WORKER_MEMORY_MB", "WorkerMemory"),
    ] {
        assert_eq!(referenced_id(&env[var]).as_deref(), Some(param), "{var}");
    }

    // The worker container gets the settings that shape a render.
    let task = props(&res["WorkerTaskDefinition"]);
    let container = &task["ContainerDefinitions"][0];
    let worker_env: BTreeSet<&str> = container["Environment"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|e| e["Name"].as_str())
        .collect();
    for var in [
        "VIDPIPE_TABLE",
        "VIDPIPE_BUCKET",
        "VIDPIPE_FFMPEG_DIR",
        "VIDPIPE_INTRO_SECONDS",
        "VIDPIPE_OUTRO_SECONDS",
        "VIDPIPE_WATERMARK_KEY",
    ] {
        assert!(worker_env.contains(var), "the worker container lacks {var}");
    }
    let name = container["Name"].as_str().unwrap();

    // The ASL's ECS task names that container and runs `process`.
    let sm = processing();
    let ecs: Vec<&Json> = all_states(&sm.asl)
        .into_iter()
        .map(|(_, s, _)| s)
        .filter(|s| s["Resource"] == "arn:aws:states:::ecs:runTask.sync")
        .collect();
    let [state] = ecs.as_slice() else {
        panic!("one ECS task in {}", sm.asl_path)
    };
    let over = &state["Parameters"]["Overrides"]["ContainerOverrides"][0];
    assert_eq!(over["Command"], serde_json::json!(["process"]));
    assert_eq!(over["Environment"][0]["Name"], "VIDPIPE_PROBED");
    let subs = props(&res[sm.logical_id.as_str()])["DefinitionSubstitutions"].clone();
    assert_eq!(subs["WorkerContainerName"].as_str(), Some(name));

    // The ECS policy (only with Fargate) covers both state machines' roles.
    let (_, policy) = resources_of_type("AWS::IAM::Policy")
        .into_iter()
        .find(|(_, p)| {
            serde_json::to_string(&serde_json::to_value(props(p)).unwrap())
                .unwrap()
                .contains("ecs:RunTask")
        })
        .expect("an ECS policy");
    assert_eq!(policy["Condition"].as_str(), Some("FargateEnabled"));
    let roles: BTreeSet<String> = props(policy)["Roles"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(referenced_id)
        .collect();
    for sm in state_machines() {
        assert!(
            roles.contains(&format!("{}Role", sm.logical_id)),
            "{} may not run the worker: {roles:?}",
            sm.logical_id
        );
    }
}

/// The steps that deliver webhooks (generation's finalize and record-failure, processing's
/// publish and record-failure) wait for a delivery's retries: the deliverer's whole budget, and
/// one attempt past it, fit inside each such task's timeout, so a slow receiver can never time
/// a finished job's step out.
#[test]
fn webhook_deliveries_fit_inside_the_tasks_that_send_them() {
    use vidpipe_domain::steps::{GenerationStep, ProcessingStep};
    let settings = vidpipe_pipeline::webhooks::WebhookSettings::default();
    let worst = (settings.total_budget + settings.attempt_timeout).as_secs();
    let delivering = [
        GenerationStep::Finalize.as_str(),
        GenerationStep::RecordFailure.as_str(),
        ProcessingStep::Publish.as_str(),
        ProcessingStep::RecordFailure.as_str(),
    ];
    let mut seen = 0;
    for sm in state_machines() {
        for (name, state, _) in all_states(&sm.asl) {
            if !is_lambda_task(state) || !delivering.contains(&task_step(state)) {
                continue;
            }
            seen += 1;
            let timeout = state["TimeoutSeconds"].as_u64().expect("a task timeout");
            assert!(
                timeout > worst,
                "{} {name}: TimeoutSeconds {timeout} does not cover a webhook delivery's {worst} s",
                sm.asl_path
            );
        }
    }
    assert!(seen >= 4, "found {seen} delivering tasks");
}

/// Each route's `main.rs` names the wiring its role grants: a mismatch would only show as
/// a cold-start failure in a deployed stack.
#[test]
fn every_route_binary_is_wired_as_its_role_grants() {
    use vidpipe_lambda::api::*;
    let wirings: [(&str, &[Grant]); 10] = [
        ("Records", Records::GRANTS),
        ("RecordsAndMedia", RecordsAndMedia::GRANTS),
        ("Assets", Assets::GRANTS),
        ("Submit", Submit::GRANTS),
        ("Recompose", Recompose::GRANTS),
        ("Cancel", Cancel::GRANTS),
        ("Uploads", Uploads::GRANTS),
        ("Retry", Retry::GRANTS),
        ("WebhookSecrets", WebhookSecrets::GRANTS),
        ("Timelines", Timelines::GRANTS),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/api/src/bin");
    for f in API_FUNCTIONS {
        let file = dir.join(format!("{}.rs", f.bin.trim_start_matches("vidpipe-api-")));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let named = text
            .split("serve::<")
            .nth(1)
            .and_then(|rest| rest.split('>').next())
            .unwrap_or_else(|| panic!("{} calls no serve::<Wiring>", file.display()));
        let grants = wirings
            .iter()
            .find(|(name, _)| *name == named)
            .unwrap_or_else(|| panic!("{}: unknown wiring {named}", file.display()))
            .1;
        assert_eq!(grants, f.grants, "{} is wired as {named}", f.bin);
    }
}
