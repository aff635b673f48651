//! The emulated AWS stack for end-to-end tests: starts `scripts/emulator/up` (moto executing the
//! state machine, every Lambda invoke forwarded to `cargo lambda watch`, resources provisioned from
//! template.yaml), reads its one ready line, and talks to the API through the function URL and to
//! the emulated services through moto's JSON and query protocols.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Emulator {
    pub api: String,
    pub moto: String,
    pub bucket: String,
    pub state_machine_arn: String,
    /// The whole ready line: queues, topics, tables, state machines by logical id.
    pub ready: serde_json::Value,
    _child: Child,
    /// Held open: the emulator stops when this pipe closes, i.e. when the test process ends.
    _stdin: ChildStdin,
}

impl Emulator {
    /// Starts a stack; `env` adds `VIDPIPE_*` settings every function sees.
    pub fn start(env: &[(&str, &str)]) -> Emulator {
        Emulator::start_with(env, &[])
    }

    /// Starts a stack with template parameters overridden (`Name`, `value`) as well.
    pub fn start_with(env: &[(&str, &str)], params: &[(&str, &str)]) -> Emulator {
        Emulator::start_args(env, params, &[])
    }

    /// The same with more of `scripts/emulator/up`'s flags (e.g. `--stream-repeat 2`).
    pub fn start_args(env: &[(&str, &str)], params: &[(&str, &str)], args: &[&str]) -> Emulator {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut cmd = Command::new(root.join("scripts/emulator/up"));
        cmd.arg("--warm");
        cmd.args(args);
        for (k, v) in params {
            cmd.arg("--param").arg(format!("{k}={v}"));
        }
        cmd.current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // cargo gives test processes CARGO_* variables and target/ on LD_LIBRARY_PATH; passed on to
        // the emulator's own `cargo build`/`cargo lambda watch`, they change build-script
        // fingerprints and force the whole AWS SDK to rebuild on every run.
        for (k, _) in std::env::vars_os() {
            let name = k.to_string_lossy();
            let injected =
                name.starts_with("CARGO_") && name != "CARGO_HOME" && name != "CARGO_TARGET_DIR";
            if injected || name == "CARGO" || name == "LD_LIBRARY_PATH" || name == "RUSTC_WRAPPER" {
                cmd.env_remove(&k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start scripts/emulator/up");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("emulator ready line");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("emulator said {line:?}: {e}"));
        assert_eq!(v["ready"], true, "emulator failed: {v}");
        Emulator {
            api: v["api"].as_str().unwrap().to_owned(),
            moto: v["moto"].as_str().unwrap().to_owned(),
            bucket: v["bucket"].as_str().unwrap().to_owned(),
            state_machine_arn: v["state_machines"]["GenerationStateMachine"]
                .as_str()
                .unwrap()
                .to_owned(),
            ready: v,
            _child: child,
            _stdin: stdin,
        }
    }

    /// Calls the API as `tenant`. Returns the status and the JSON body (Null when empty).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        tenant: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        self.call_url(
            method,
            &format!("{}{path}", self.api),
            tenant,
            body,
            headers,
        )
    }

    /// The same at a whole URL: a link the API handed out, followed as given.
    pub fn call_url(
        &self,
        method: &str,
        url: &str,
        tenant: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(120))
            .build();
        let mut req = agent.request(method, url).set("x-vidpipe-tenant", tenant);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let result = match body {
            Some(b) => req
                .set("content-type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {url}: {e}"),
        };
        let status = resp.status();
        let content_type = resp.header("content-type").unwrap_or_default().to_owned();
        let location = resp.header("location").map(str::to_owned);
        let headers = resp
            .headers_names()
            .into_iter()
            .filter_map(|name| {
                let value = resp.header(&name)?.to_owned();
                Some((name.to_ascii_lowercase(), value))
            })
            .collect();
        let text = resp.into_string().unwrap_or_default();
        let json = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        Response {
            status,
            content_type,
            location,
            headers,
            json,
        }
    }

    /// Polls a generation until `done` says so, or panics after `limit`.
    pub fn wait_for(
        &self,
        id: &str,
        tenant: &str,
        limit: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let r = self.call("GET", &format!("/v1/generations/{id}"), tenant, None, &[]);
            assert_eq!(r.status, 200, "{:?}", r.json);
            if done(&r.json) {
                return r.json;
            }
            assert!(
                start.elapsed() < limit,
                "generation {id} did not get there in {limit:?}: {}",
                r.json
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Emulator {
    /// The names of the states an execution entered, in order.
    pub fn entered_states(&self, execution_arn: &str) -> Vec<String> {
        let h = self.aws_json(
            "states",
            "AWSStepFunctions.GetExecutionHistory",
            &serde_json::json!({ "executionArn": execution_arn, "maxResults": 1000 }),
        );
        h["events"]
            .as_array()
            .expect("history events")
            .iter()
            .filter_map(|e| e["stateEnteredEventDetails"]["name"].as_str())
            .map(str::to_owned)
            .collect()
    }

    /// A logical id's physical name or ARN from the ready line (`section` is `queues`,
    /// `topics`, `state_machines`, ...).
    pub fn resource(&self, section: &str, logical_id: &str) -> String {
        self.ready[section][logical_id]
            .as_str()
            .unwrap_or_else(|| panic!("the emulator has no {section}.{logical_id}: {}", self.ready))
            .to_owned()
    }

    /// One call in AWS's JSON protocol (SQS, Step Functions, DynamoDB): `target` is the
    /// `X-Amz-Target`, e.g. `AmazonSQS.SendMessage`. moto checks no signature but routes by the
    /// credential scope's service, which is all the Authorization header here is for.
    pub fn aws_json(
        &self,
        service: &str,
        target: &str,
        body: &serde_json::Value,
    ) -> serde_json::Value {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, \
             SignedHeaders=host, Signature=0"
        );
        let result = ureq::post(&format!("{}/", self.moto))
            .set("x-amz-target", target)
            .set("content-type", "application/x-amz-json-1.0")
            .set("authorization", &auth)
            .send_string(&body.to_string());
        match result {
            Ok(r) => {
                let text = r.into_string().unwrap_or_default();
                if text.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{target}: {e}: {text}"))
                }
            }
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "{target}: HTTP {code}: {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("{target}: {e}"),
        }
    }

    /// One call in AWS's query protocol (SNS): the form parameters, the XML answer as text.
    pub fn aws_query(&self, service: &str, params: &[(&str, &str)]) -> String {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, \
             SignedHeaders=host, Signature=0"
        );
        match ureq::post(&format!("{}/", self.moto))
            .set("authorization", &auth)
            .send_form(params)
        {
            Ok(r) => r.into_string().unwrap_or_default(),
            Err(ureq::Error::Status(code, r)) => panic!(
                "{service} {params:?}: HTTP {code}: {}",
                r.into_string().unwrap_or_default()
            ),
            Err(e) => panic!("{service} {params:?}: {e}"),
        }
    }
}

pub struct Response {
    pub status: u16,
    pub content_type: String,
    /// The `Location` header, when the answer has one.
    pub location: Option<String>,
    /// Every header, its name lowercased.
    pub headers: Vec<(String, String)>,
    pub json: serde_json::Value,
}

impl Response {
    /// A header's value, by its name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one presigned request as the API handed it out (`method`, `url`, `headers`) with `bytes`
/// as the body; the status the store answered.
pub fn send_signed(req: &serde_json::Value, bytes: &[u8]) -> u16 {
    let mut r = ureq::request(
        req["method"].as_str().unwrap(),
        req["url"].as_str().unwrap(),
    );
    for (k, v) in req["headers"].as_object().unwrap() {
        // ureq sets the length of the body itself; it must agree with the signed one.
        if k != "content-length" {
            r = r.set(k, v.as_str().unwrap());
        } else {
            assert_eq!(
                v.as_str().unwrap(),
                bytes.len().to_string(),
                "signed length"
            );
        }
    }
    match r.send_bytes(bytes) {
        Ok(resp) => resp.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("PUT: {e}"),
    }
}

/// Fetches a URL (a presigned S3 URL on the emulator) to bytes.
pub fn fetch(url: &str) -> Vec<u8> {
    let resp = ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let mut bytes = Vec::new();
    resp.into_reader().read_to_end(&mut bytes).unwrap();
    bytes
}
