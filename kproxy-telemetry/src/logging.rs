//! Log lines in the formats kube-proxy's tooling already parses.
//!
//! - `text` (the default, as upstream): klog's header and structured message,
//!   `I1204 15:05:12.852027    1234 sync_loop.rs:123] "Syncing proxy rules" backend="nftables"`.
//!   No colour codes ever: klog has none, and log files and `kubectl logs` must stay plain.
//! - `json`: component-base's JSON lines, `{"ts":1733324712.852027,"caller":"src/sync_loop.rs:123",
//!   "msg":"Syncing proxy rules","v":0,"backend":"nftables"}`; error lines carry no `v` (as
//!   klog's `ErrorS`), and the `error` field is named `err` in both formats, as klog names it.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Which line format [`init`] installs (`logging.format` / `--logging-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// klog's text lines.
    Text,
    /// component-base's JSON lines.
    Json,
}

impl LogFormat {
    /// `json` is JSON; anything else (validation allows only `text` and `json`) is text.
    pub fn from_config(format: &str) -> LogFormat {
        if format == "json" {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    }
}

/// Installs the global subscriber writing to stderr (so `validate`'s YAML on stdout stays pure).
/// klog verbosity maps to tracing levels: `-v` 0-1 info, 2-4 debug, 5+ trace; `RUST_LOG`
/// overrides the filter.
pub fn init(format: LogFormat, verbosity: u32) {
    let level = match verbosity {
        0..=1 => "info",
        2..=4 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false);
    // try_init only fails if a subscriber is already set, which nothing here does.
    let _ = builder.event_format(KlogFormat { format }).try_init();
}

/// The event formatter behind [`init`]; public so tests and embedders can install it on
/// their own writer.
#[derive(Debug, Clone, Copy)]
pub struct KlogFormat {
    /// Text or JSON.
    pub format: LogFormat,
}

impl<S, N> FormatEvent<S, N> for KlogFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let now = jiff::Zoned::now();
        match self.format {
            LogFormat::Text => {
                let caller = caller(meta.file(), meta.line(), 1);
                write_text(&mut writer, *meta.level(), &now, std::process::id(), &caller, &fields)
            }
            LogFormat::Json => {
                let caller = caller(meta.file(), meta.line(), 2);
                write_json(&mut writer, *meta.level(), now.timestamp(), &caller, &fields)
            }
        }
    }
}

/// `file:line` with the last `parts` path components of the source file (klog's text shows
/// the file name, component-base's JSON the directory too).
fn caller(file: Option<&str>, line: Option<u32>, parts: usize) -> String {
    let file = file.unwrap_or("?");
    let mut start = file.len();
    for _ in 0..parts {
        match file[..start].rfind('/') {
            Some(i) => start = i,
            None => {
                start = 0;
                break;
            }
        }
    }
    let short = file[start..].trim_start_matches('/');
    format!("{short}:{}", line.unwrap_or(0))
}

/// An event's message and key/value pairs, in the order they were written.
#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, Value)>,
}

/// A field value: numbers and booleans print bare, everything else as a quoted string.
enum Value {
    Bare(String),
    Text(String),
}

impl Fields {
    fn push(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => {
                self.message = match value {
                    Value::Bare(s) | Value::Text(s) => s,
                }
            }
            // klog's ErrorS writes the error as `err`.
            "error" => self.pairs.push(("err", value)),
            name => self.pairs.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Value::Text(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::Text(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::Bare(value.to_string()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::Bare(value.to_string()));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::Bare(value.to_string()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bare(value.to_string()));
    }
}

/// klog's severity letter: warnings are `W`, errors `E`, everything else `I`.
fn severity(level: Level) -> char {
    match level {
        Level::ERROR => 'E',
        Level::WARN => 'W',
        _ => 'I',
    }
}

/// The klog verbosity a level stands for (the inverse of [`init`]'s mapping).
fn verbosity(level: Level) -> u8 {
    match level {
        Level::TRACE => 5,
        Level::DEBUG => 2,
        _ => 0,
    }
}

/// `Lmmdd hh:mm:ss.uuuuuu threadid file:line] "msg" k="v" ...`, klog's header: the
/// thread id field is the process id, right-aligned in 7 columns.
fn write_text(w: &mut impl fmt::Write, level: Level, now: &jiff::Zoned, pid: u32, caller: &str, f: &Fields) -> fmt::Result {
    write!(
        w,
        "{}{:02}{:02} {:02}:{:02}:{:02}.{:06} {pid:>7} {caller}] ",
        severity(level),
        now.month(),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.subsec_nanosecond() / 1000,
    )?;
    quote(w, &f.message)?;
    for (key, value) in &f.pairs {
        write!(w, " {key}=")?;
        match value {
            Value::Bare(s) => w.write_str(s)?,
            Value::Text(s) => quote(w, s)?,
        }
    }
    w.write_char('\n')
}

/// component-base's JSON line: `ts` (seconds since the epoch), `caller`, `msg`, `v` (not on
/// errors), then the key/values.
fn write_json(w: &mut impl fmt::Write, level: Level, ts: jiff::Timestamp, caller: &str, f: &Fields) -> fmt::Result {
    let seconds = ts.as_second() as f64 + f64::from(ts.subsec_microsecond()) / 1e6;
    write!(w, "{{\"ts\":{seconds:.6},\"caller\":")?;
    quote(w, caller)?;
    w.write_str(",\"msg\":")?;
    quote(w, &f.message)?;
    if level != Level::ERROR {
        write!(w, ",\"v\":{}", verbosity(level))?;
    }
    for (key, value) in &f.pairs {
        w.write_char(',')?;
        quote(w, key)?;
        w.write_char(':')?;
        match value {
            // A bare float such as NaN is not JSON: quote what JSON cannot hold.
            Value::Bare(s) if s.parse::<f64>().is_ok_and(f64::is_finite) || s == "true" || s == "false" => {
                w.write_str(s)?
            }
            Value::Bare(s) | Value::Text(s) => quote(w, s)?,
        }
    }
    w.write_str("}\n")
}

/// A double-quoted string with JSON/Go escapes (`"`, `\`, control characters), valid both as
/// a JSON string and as klog's `%q` for the text kproxy logs.
fn quote(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => w.write_str("\\\"")?,
            '\\' => w.write_str("\\\\")?,
            '\n' => w.write_str("\\n")?,
            '\r' => w.write_str("\\r")?,
            '\t' => w.write_str("\\t")?,
            c if (c as u32) < 0x20 || c == '\u{7f}' => write!(w, "\\u{:04x}", c as u32)?,
            c => w.write_char(c)?,
        }
    }
    w.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &str, pairs: Vec<(&'static str, Value)>) -> Fields {
        Fields { message: message.to_string(), pairs }
    }

    #[test]
    fn text_line_is_klog() {
        let now: jiff::Zoned = "2026-12-04T15:05:12.852027+00:00[UTC]".parse().unwrap();
        let f = fields(
            "Syncing proxy rules",
            vec![("backend", Value::Text("nftables".into())), ("changes", Value::Bare("3".into()))],
        );
        let mut out = String::new();
        write_text(&mut out, Level::INFO, &now, 1234, "sync_loop.rs:123", &f).unwrap();
        assert_eq!(out, "I1204 15:05:12.852027    1234 sync_loop.rs:123] \"Syncing proxy rules\" backend=\"nftables\" changes=3\n");
        let mut out = String::new();
        write_text(&mut out, Level::WARN, &now, 7, "a.rs:1", &fields("x \"y\"\n", vec![])).unwrap();
        assert_eq!(out, "W1204 15:05:12.852027       7 a.rs:1] \"x \\\"y\\\"\\n\"\n");
    }

    #[test]
    fn json_line_has_component_base_keys() {
        let ts: jiff::Timestamp = "2026-12-04T15:05:12.852027Z".parse().unwrap();
        let f = fields("Error syncing proxy rules", vec![("err", Value::Text("boom".into())), ("n", Value::Bare("2".into()))]);
        let mut out = String::new();
        write_json(&mut out, Level::ERROR, ts, "src/sync_loop.rs:9", &f).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["msg"], "Error syncing proxy rules");
        assert_eq!(v["caller"], "src/sync_loop.rs:9");
        assert_eq!(v["err"], "boom");
        assert_eq!(v["n"], 2);
        assert!(v.get("v").is_none(), "errors carry no v: {out}");
        assert!((v["ts"].as_f64().unwrap() - ts.as_second() as f64 - 0.852027).abs() < 1e-6, "{out}");
        let mut out = String::new();
        write_json(&mut out, Level::DEBUG, ts, "x.rs:1", &fields("m", vec![("nan", Value::Bare("NaN".into()))])).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["v"], 2);
        assert_eq!(v["nan"], "NaN");
    }

    #[test]
    fn caller_keeps_file_or_dir_and_file() {
        assert_eq!(caller(Some("kproxy-bin/src/sync_loop.rs"), Some(12), 1), "sync_loop.rs:12");
        assert_eq!(caller(Some("kproxy-bin/src/sync_loop.rs"), Some(12), 2), "src/sync_loop.rs:12");
        assert_eq!(caller(Some("main.rs"), Some(3), 2), "main.rs:3");
        assert_eq!(caller(None, None, 1), "?:0");
    }
}
