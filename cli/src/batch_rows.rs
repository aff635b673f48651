//! The rows of a batch file and the results file beside it. A row is one generation request, read
//! from JSON Lines (one request object per line, the API's own body) or CSV (a header naming the
//! request's fields, nested ones by their dotted path: `captions.style`, `brand.logo.opacity`).
//! A row's identity is its number and the SHA-256 of its content, so an edited row is new work
//! and an untouched finished one is not.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use vidpipe_domain::error::FieldError;

/// One request of the file.
#[derive(Debug, Clone)]
pub struct Row {
    /// 1 for the first request (a header and blank lines are not rows).
    pub number: usize,
    /// The request as JSON, or why the row could not be read as one.
    pub content: Result<Value, FieldError>,
    /// SHA-256 of the row's content, hex.
    pub hash: String,
}

/// What a finished (or given up) row came to, one line of the results file each.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RowResult {
    pub row: usize,
    pub hash: String,
    pub status: RowStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#final: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// The fields an invalid row broke.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Why a job failed or a request was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    /// The video was made.
    Completed,
    /// The row is not a valid request; the same row would be refused again.
    Invalid,
    /// The job ran and failed, or was cancelled.
    Failed,
    /// The request was refused for a passing reason (a quota, a store error).
    Refused,
}

impl RowStatus {
    /// Whether a re-run leaves the row alone: only a made video or a row that can only fail the
    /// same way again. Failures are tried again.
    pub fn is_finished(self) -> bool {
        matches!(self, RowStatus::Completed | RowStatus::Invalid)
    }
}

/// Where the results go when not told: beside the file, `FILE.results.jsonl`.
pub fn default_results_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".results.jsonl");
    file.with_file_name(name)
}

/// Reads every row of `file`: CSV when its name ends in `.csv`, JSON Lines otherwise.
pub fn read(file: &Path) -> Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let csv = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if csv {
        read_csv(&text)
    } else {
        Ok(read_jsonl(&text))
    }
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The value with every object's keys in sorted order, whatever order serde_json's maps keep
/// (a dependency may turn on its `preserve_order`).
fn canonical(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(canonical).collect())
        }
        other => other.clone(),
    }
}

/// One request object per non-blank line. A line that is not JSON is a row of its own that
/// cannot run, so the rows after it keep their numbers.
pub fn read_jsonl(text: &str) -> Vec<Row> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let content = vidpipe_http::json::parse(line.trim().as_bytes()).map_err(|e| {
                let why = match e {
                    vidpipe_http::json::ReadError::Syntax(why) => format!("is not JSON: {why}"),
                    vidpipe_http::json::ReadError::Duplicate(path) => {
                        format!("gives the key {path} more than once")
                    }
                };
                FieldError::new("body", why)
            });
            // The parsed value's canonical text, so spacing and key order are not edits.
            let hash = match &content {
                Ok(v) => digest(canonical(v).to_string().as_bytes()),
                Err(_) => digest(line.trim().as_bytes()),
            };
            Row {
                number: i + 1,
                content,
                hash,
            }
        })
        .collect()
}

/// How a CSV cell becomes JSON: by the field's type, so that `007` stays a prompt's text and
/// `10` a duration's number. A cell that does not parse as its type is passed on as text and
/// refused by the request's own rules, naming the field.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell {
    Text,
    Number,
    Whole,
    Switch,
}

/// Every request field a column may name, by its JSON path.
const COLUMNS: &[(&str, Cell)] = &[
    ("prompt", Cell::Text),
    ("duration_seconds", Cell::Number),
    ("aspect_ratio", Cell::Text),
    ("resolution", Cell::Text),
    ("fps", Cell::Whole),
    ("clip_count", Cell::Whole),
    ("transition", Cell::Text),
    ("transition_duration_seconds", Cell::Number),
    ("captions", Cell::Switch),
    ("captions.style", Cell::Text),
    ("captions.position", Cell::Text),
    ("captions.size", Cell::Text),
    ("seed", Cell::Whole),
    ("narration.enabled", Cell::Switch),
    ("narration.provider", Cell::Text),
    ("narration.voice", Cell::Text),
    ("narration.engine", Cell::Text),
    ("brand.logo.asset_id", Cell::Text),
    ("brand.logo.position", Cell::Text),
    ("brand.logo.opacity", Cell::Number),
    ("brand.logo.scale", Cell::Number),
    ("brand.music.asset_id", Cell::Text),
    ("brand.music.volume", Cell::Number),
    ("brand.music.fade_in_seconds", Cell::Number),
    ("brand.music.fade_out_seconds", Cell::Number),
    ("webhook_url", Cell::Text),
    // Local files, ingested as the brand assets the request names (see `batch`).
    ("logo", Cell::Text),
    ("music", Cell::Text),
    ("idempotency_key", Cell::Text),
];

/// The short names the `generate` flags use, accepted as headers too.
const ALIASES: &[(&str, &str)] = &[
    ("duration", "duration_seconds"),
    ("aspect", "aspect_ratio"),
    ("clips", "clip_count"),
];

fn column(header: &str) -> Option<(&'static str, Cell)> {
    let name = header.trim();
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, full)| full);
    COLUMNS.iter().find(|(path, _)| *path == name).copied()
}

/// A header row naming the fields, then one request per record. An unknown column stops the
/// whole file before anything runs: it would be refused on every row.
pub fn read_csv(text: &str) -> Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::Headers)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .context("cannot read the CSV header")?
        .clone();
    let mut columns = Vec::new();
    for h in &headers {
        match column(h) {
            Some(c) => columns.push(c),
            None => bail!(
                "CSV column {h:?} is not a request field; columns are {} (or duration, aspect, clips)",
                COLUMNS
                    .iter()
                    .map(|(p, _)| *p)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let number = i + 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                rows.push(Row {
                    number,
                    content: Err(FieldError::new("body", format!("is not a CSV record: {e}"))),
                    hash: digest(format!("unreadable {number}").as_bytes()),
                });
                continue;
            }
        };
        let hash = digest(
            serde_json::to_string(&record.iter().collect::<Vec<_>>())
                .unwrap_or_default()
                .as_bytes(),
        );
        let content = if record.len() != columns.len() {
            Err(FieldError::new(
                "body",
                format!(
                    "has {} cells; the header names {}",
                    record.len(),
                    columns.len()
                ),
            ))
        } else {
            Ok(object(&columns, &record))
        };
        rows.push(Row {
            number,
            content,
            hash,
        });
    }
    Ok(rows)
}

/// The request object of one record: empty cells are absent fields.
fn object(columns: &[(&'static str, Cell)], record: &csv::StringRecord) -> Value {
    let mut root = Map::new();
    let styled = columns
        .iter()
        .zip(record.iter())
        .any(|((path, _), cell)| path.starts_with("captions.") && !cell.trim().is_empty());
    for ((path, kind), cell) in columns.iter().zip(record.iter()) {
        // A caption style turns captions on; the switch then has nothing to add.
        if *path == "captions" && styled {
            continue;
        }
        if let Some(value) = typed(*kind, cell) {
            insert(&mut root, path, value);
        }
    }
    Value::Object(root)
}

fn typed(kind: Cell, cell: &str) -> Option<Value> {
    if cell.trim().is_empty() {
        return None;
    }
    let t = cell.trim();
    let text = || Value::String(cell.to_owned());
    Some(match kind {
        Cell::Text => text(),
        Cell::Number => t
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(text, Value::Number),
        Cell::Whole => match (t.parse::<i64>(), t.parse::<f64>()) {
            (Ok(n), _) => Value::from(n),
            // `1.5` stays a number, so the rule says "must be a whole number (got 1.5)".
            (_, Ok(f)) => serde_json::Number::from_f64(f).map_or_else(text, Value::Number),
            _ => text(),
        },
        Cell::Switch => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Value::Bool(true),
            "false" | "no" | "off" | "0" => Value::Bool(false),
            _ => text(),
        },
    })
}

fn insert(root: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            root.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = root
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(map) = child {
                insert(map, rest, value);
            }
        }
    }
}

/// The last result recorded for each row, from an earlier run's results file. A line cut short
/// (the run was killed while writing it) is ignored: its row is simply run again.
pub fn previous(results: &Path) -> Result<HashMap<usize, RowResult>> {
    let file = match std::fs::File::open(results) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", results.display())),
    };
    let mut last = HashMap::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("cannot read {}", results.display()))?;
        if let Ok(r) = serde_json::from_str::<RowResult>(&line) {
            last.insert(r.row, r);
        }
    }
    Ok(last)
}

/// Appends results one line at a time, flushed at once, so a killed run loses at most the rows
/// it was running.
pub struct ResultsWriter {
    file: std::fs::File,
}

impl ResultsWriter {
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // A line a killed run left cut short must not swallow the next result.
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len > 0 {
            let text = std::fs::read(path).unwrap_or_default();
            if text.last() != Some(&b'\n') {
                file.write_all(b"\n")?;
            }
        }
        Ok(Self { file })
    }

    pub fn write(&mut self, result: &RowResult) -> Result<()> {
        let mut line = serde_json::to_string(result)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_cells_become_typed_fields_with_nested_paths() {
        let rows = read_csv(
            "prompt,duration,aspect,clips,captions,captions.style,brand.logo.opacity,seed\n\
             \"Rain, then sun\",10,16:9,2,false,,0.5,7\n\
             007,ten,9:16,1.5,,karaoke,,\n",
        )
        .expect("csv");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].content.as_ref().unwrap(),
            &json!({"prompt": "Rain, then sun", "duration_seconds": 10.0, "aspect_ratio": "16:9",
                    "clip_count": 2, "captions": false, "brand": {"logo": {"opacity": 0.5}}, "seed": 7})
        );
        // Text stays text, and what does not parse as its type is left for the rules to name.
        assert_eq!(
            rows[1].content.as_ref().unwrap(),
            &json!({"prompt": "007", "duration_seconds": "ten", "aspect_ratio": "9:16",
                    "clip_count": 1.5, "captions": {"style": "karaoke"}})
        );
        assert_ne!(rows[0].hash, rows[1].hash);
    }

    #[test]
    fn an_unknown_column_stops_the_file() {
        let e = read_csv("prompt,colour\nx,red\n").unwrap_err();
        assert!(e.to_string().contains("\"colour\""), "{e}");
    }

    #[test]
    fn jsonl_rows_are_numbered_past_blank_lines_and_hashed_by_content() {
        let rows = read_jsonl(
            "{\"prompt\": \"a\", \"duration_seconds\": 5}\n\n{not json}\n{\"duration_seconds\":5,\"prompt\":\"a\"}\n",
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].number, 3);
        assert!(rows[1].content.is_err());
        // Spacing and key order are not edits.
        assert_eq!(rows[0].hash, rows[2].hash);
    }

    #[test]
    fn the_last_whole_result_of_a_row_wins_and_a_cut_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let result = |row, status| RowResult {
            row,
            hash: "h".into(),
            status,
            job_id: None,
            replayed: None,
            r#final: None,
            thumbnail: None,
            duration_seconds: None,
            errors: vec![],
            error: None,
        };
        let mut w = ResultsWriter::open(&path).unwrap();
        w.write(&result(1, RowStatus::Failed)).unwrap();
        w.write(&result(1, RowStatus::Completed)).unwrap();
        drop(w);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"row\": 2, \"hash\"")
            .unwrap();
        let mut w = ResultsWriter::open(&path).unwrap();
        w.write(&result(3, RowStatus::Invalid)).unwrap();
        let last = previous(&path).unwrap();
        assert_eq!(last.len(), 2);
        assert_eq!(last[&1].status, RowStatus::Completed);
        assert_eq!(last[&3].status, RowStatus::Invalid);
    }
}
