//! How a failure reaches a record, a notification and a log line: one readable sentence, its
//! error name apart, and nothing in it that grants access or describes the server.
//!
//! Tools echo their inputs, and an input may be a presigned URL (whose signature lets anyone
//! holding it fetch the upload) or a scratch path. Sources are named by key where errors are
//! made ([`vidpipe_domain::media::MediaSource::redact`]); [`public_reason`] is the backstop
//! applied wherever a reason leaves the process.

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};

/// What the Fargate worker leaves under `temp/` when it gives up: ECS only tells Step Functions
/// that the task exited non-zero (`States.TaskFailed`), and RecordFailure should record the
/// real error. Both pipelines' workers write it, and only RecordFailure records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerFailure {
    /// The stable error name (`VidPipe.ConfigurationError`, ...).
    pub error: String,
    pub reason: String,
}

/// `text` with every URL reduced to the object path it names (no host, query or signature) and
/// every absolute path reduced to its file name.
pub fn public_reason(text: &str) -> String {
    text.split(' ')
        .map(public_word)
        .collect::<Vec<_>>()
        .join(" ")
}

fn public_word(word: &str) -> String {
    let is_edge = |c: char| {
        matches!(
            c,
            '(' | ')' | '[' | ']' | '"' | '\'' | ',' | ';' | ':' | '.'
        )
    };
    let core = word.trim_start_matches(is_edge);
    let lead = &word[..word.len() - core.len()];
    if let Some(scheme_end) = core.find("://") {
        // The query (and with it any signature) goes first, then whatever trailed it.
        let rest = &core[scheme_end + 3..];
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        let (path, cut) = match path.find(['?', '#']) {
            Some(i) => (&path[..i], true),
            None => (path, false),
        };
        let trimmed = path.trim_end_matches(is_edge);
        let trail = if cut {
            word.chars()
                .last()
                .filter(|c| *c == ':' || *c == ',')
                .map(String::from)
        } else {
            Some(path[trimmed.len()..].to_owned())
        };
        let named = percent_decode_str(trimmed.trim_start_matches('/')).decode_utf8_lossy();
        return format!("{lead}{named}{}", trail.unwrap_or_default());
    }
    if core.starts_with('/') && core[1..].contains('/') {
        let trimmed = core.trim_end_matches(is_edge);
        let trail = &core[trimmed.len()..];
        let name = trimmed.rsplit('/').next().unwrap_or_default();
        return format!("{lead}{name}{trail}");
    }
    word.to_owned()
}

/// The readable part of Step Functions' `Cause`: a Lambda error's `errorMessage`; for an ECS task
/// that stopped without saying why (killed, out of memory, no capacity), its stop reason and the
/// container's exit code and reason; otherwise the text as it is.
pub fn reason_from_cause(cause: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(cause) else {
        return cause.to_owned();
    };
    if let Some(m) = v.get("errorMessage").and_then(|m| m.as_str()) {
        return m.to_owned();
    }
    if let Some(stopped) = v.get("StoppedReason").and_then(|m| m.as_str()) {
        let mut reason = format!("the worker task stopped: {stopped}");
        for c in v
            .get("Containers")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(code) = c.get("ExitCode").and_then(|x| x.as_i64()) {
                reason.push_str(&format!("; exit code {code}"));
            }
            if let Some(why) = c.get("Reason").and_then(|x| x.as_str()) {
                reason.push_str(&format!(" ({why})"));
            }
        }
        return reason;
    }
    cause.to_owned()
}

/// A Catch's `Cause` as the one sentence a record carries.
pub fn recorded_reason(cause: &str) -> String {
    public_reason(&reason_from_cause(cause))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidpipe_domain::names;

    #[test]
    fn causes_become_readable_reasons() {
        let lambda = serde_json::json!({
            "errorType": names::SOURCE_REJECTED,
            "errorMessage": "no video",
        });
        assert_eq!(reason_from_cause(&lambda.to_string()), "no video");
        let ecs = r#"{"StoppedReason":"Essential container in task exited","Containers":[{"Name":"worker","ExitCode":137,"Reason":"OutOfMemoryError: Container killed due to memory usage"}]}"#;
        assert_eq!(
            reason_from_cause(ecs),
            "the worker task stopped: Essential container in task exited; exit code 137 \
             (OutOfMemoryError: Container killed due to memory usage)"
        );
        assert_eq!(reason_from_cause("plain words"), "plain words");
    }

    #[test]
    fn reasons_carry_no_signature_host_or_server_path() {
        let leaked = "source rejected: the file is not readable media: \
            http://127.0.0.1:4566/media/raw/acme/hostile/My%20text.mp4?X-Amz-Algorithm=AWS4&X-Amz-Signature=ab12&x-id=GetObject: \
            Invalid data found when processing input";
        assert_eq!(
            public_reason(leaked),
            "source rejected: the file is not readable media: media/raw/acme/hostile/My text.mp4: \
             Invalid data found when processing input"
        );
        assert_eq!(
            public_reason(
                "cannot write (/tmp/vidpipe/process/ab12/single/encoding_0.mp4): disk full"
            ),
            "cannot write (encoding_0.mp4): disk full"
        );
        assert_eq!(
            public_reason("the watermark \"config/watermark.png\" does not exist"),
            "the watermark \"config/watermark.png\" does not exist",
            "keys are not paths"
        );
        assert_eq!(
            public_reason("see https://example.com/docs."),
            "see docs.",
            "a URL without a query keeps its path and what trailed it"
        );
    }
}
