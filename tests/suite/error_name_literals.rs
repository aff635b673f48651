//! Error names are spelled once, in `vidpipe_domain::names`: every other Rust file takes them
//! from there, so a rename cannot leave a stale copy that no longer matches the ASL.
//!
//! This walks every `*.rs` file of the repository (not `target/`, nor hidden directories such as
//! `.git/` and `.tools/`, nor `node_modules/`) and fails, by file and line, on any string literal
//! holding `VidPipe.`/`vidpipe.` and a capital, `States.` and one of Step Functions' error names,
//! or `Lambda.` and one of Lambda's transient ones. Comments may name them; literals may not.
//!
//! The patterns below are assembled from pieces (the prefix and the name are separate literals),
//! so this file passes its own scan without being excluded.

use std::path::{Path, PathBuf};

/// The only file allowed to spell the names.
const NAMES_MODULE: &str = "shared/domain/src/names.rs";

/// Step Functions' own error names, after `States.`.
const STATES_ERRORS: &[&str] = &[
    "ALL",
    "TaskFailed",
    "Timeout",
    "Runtime",
    "HeartbeatTimeout",
    "Permissions",
    "ResultPathMatchFailure",
    "ParameterPathFailure",
    "BranchFailed",
    "NoChoiceMatched",
    "IntrinsicFailure",
    "ExceedToleratedFailureThreshold",
    "ItemReaderFailed",
    "ResultWriterFailed",
];

/// Lambda's transient errors, after `Lambda.`.
const LAMBDA_ERRORS: &[&str] = &[
    "ServiceException",
    "AWSLambdaException",
    "SdkClientException",
    "TooManyRequestsException",
];

/// The error name a literal spells, if any.
fn spelled_name(literal: &str) -> Option<String> {
    let ours = ["VidPipe", "vidpipe"].map(|p| format!("{p}."));
    let named = |prefix: &str, names: &[&str]| -> Option<String> {
        let prefix = format!("{prefix}.");
        literal.match_indices(&prefix).find_map(|(i, _)| {
            let rest = &literal[i + prefix.len()..];
            names
                .iter()
                .find(|n| rest.starts_with(*n))
                .map(|n| format!("{prefix}{n}"))
        })
    };
    for prefix in &ours {
        for (i, _) in literal.match_indices(prefix.as_str()) {
            let rest = &literal[i + prefix.len()..];
            if rest.starts_with(|c: char| c.is_ascii_uppercase()) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                return Some(format!("{prefix}{name}"));
            }
        }
    }
    named("States", STATES_ERRORS).or_else(|| named("Lambda", LAMBDA_ERRORS))
}

/// The string literals of Rust source, with the line each starts on: normal, byte and C strings
/// (escapes left as written) and raw strings. Comments, char literals and lifetimes are skipped.
fn string_literals(src: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = src.chars().collect();
    let mut found = Vec::new();
    let (mut i, mut line) = (0, 1);
    let starts_token =
        |k: usize| k == 0 || !(chars[k - 1].is_alphanumeric() || chars[k - 1] == '_');
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                while i < chars.len() {
                    match (chars[i], chars.get(i + 1)) {
                        ('/', Some('*')) => {
                            depth += 1;
                            i += 2;
                        }
                        ('*', Some('/')) => {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        }
                        (ch, _) => {
                            line += usize::from(ch == '\n');
                            i += 1;
                        }
                    }
                }
            }
            '\'' => {
                // A char literal ('x', '"', '\n', '\'', '\u{..}'), else a lifetime or label.
                if next == Some('\\') {
                    // Past the quote, the backslash and the escaped char, then to the close.
                    i += 3;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if chars.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            '"' => {
                let start = line;
                let mut text = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        text.push(chars[i]);
                        i += 1;
                    }
                    if let Some(&ch) = chars.get(i) {
                        line += usize::from(ch == '\n');
                        text.push(ch);
                    }
                    i += 1;
                }
                i += 1;
                found.push((start, text));
            }
            // `r"`, `r#"`, `br"`, `cr"` where a token starts, not the end of an identifier.
            'r' if matches!(next, Some('"' | '#'))
                && (starts_token(i)
                    || (i >= 1 && matches!(chars[i - 1], 'b' | 'c') && starts_token(i - 1))) =>
            {
                let mut j = i + 1;
                while chars.get(j) == Some(&'#') {
                    j += 1;
                }
                if chars.get(j) != Some(&'"') {
                    // `r#ident`, a raw identifier.
                    i = j;
                    continue;
                }
                let hashes = j - i - 1;
                let closing: Vec<char> = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let start = line;
                let mut text = String::new();
                i = j + 1;
                while i < chars.len() && !chars[i..].starts_with(&closing) {
                    line += usize::from(chars[i] == '\n');
                    text.push(chars[i]);
                    i += 1;
                }
                i += closing.len();
                found.push((start, text));
            }
            _ => i += 1,
        }
    }
    found
}

/// Every `*.rs` file under `dir`, skipping build output, VCS data and tool installs. Symlinks are
/// not followed (`.tools` may point into another checkout).
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry"))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().expect("a file type");
        let path = entry.path();
        if kind.is_dir() {
            if !(name == "target" || name == "node_modules" || name.starts_with('.')) {
                rust_files(&path, out);
            }
        } else if kind.is_file() && name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_error_name_is_spelled_outside_the_names_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    rust_files(root, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with(NAMES_MODULE)),
        "the walk missed {NAMES_MODULE}: is {} the repository?",
        root.display()
    );
    let mut offences = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(root).unwrap();
        if relative == Path::new(NAMES_MODULE) {
            continue;
        }
        let src = std::fs::read_to_string(file).unwrap();
        for (line, literal) in string_literals(&src) {
            if let Some(name) = spelled_name(&literal) {
                offences.push(format!("{}:{line}: {name}", relative.display()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "error names spelled outside {NAMES_MODULE} (use vidpipe_domain::names):\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_scan_sees_literals_and_not_comments() {
    let (ours, states, lambda) = (
        format!("{}.{}", "VidPipe", "Internal"),
        format!("{}.{}", "States", "TaskFailed"),
        format!("{}.{}", "Lambda", "ServiceException"),
    );
    let src = format!(
        "// \"{ours}\" in a comment\n\
         /* \"{ours}\" /* nested */ \"{ours}\" */\n\
         fn f<'a>(x: &'a str) -> char {{ let q = '\"'; let e = '\\''; '\\n' }}\n\
         let a = \"{ours}\";\n\
         let b = r#\"{{\"Error\": \"{states}\"}}\"#;\n\
         let c = b\"x\\\"y\";\n\
         let d = \"multi\nline {lambda}\";\n\
         let r#type = \"vidpipe.lower is fine, {} too\";\n",
        "States.Nothing"
    );
    let literals = string_literals(&src);
    let named: Vec<(usize, String)> = literals
        .iter()
        .filter_map(|(line, l)| spelled_name(l).map(|n| (*line, n)))
        .collect();
    assert_eq!(named, [(4, ours), (5, states), (7, lambda)], "{literals:?}");
    assert_eq!(literals.len(), 5, "{literals:?}");
}
