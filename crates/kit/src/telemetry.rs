//! Logging: env_logger, with the request context of the current task (request id,
//! trace id) on every line, as text for people or as one JSON object per line for
//! log collectors (`LOG_FORMAT`).

use std::io::Write;

use serde::Serialize;

use crate::request_id::RequestContext;

/// Dependencies that narrate every request at `info`; quiet unless asked for.
const CHATTY: [&str; 4] = ["tracing::span", "s3s", "s3s_fs", "tokio_postgres"];

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `<time> <level> <target> [request_id=… trace_id=…] <message>`.
    #[default]
    Text,
    /// One JSON object per line: `ts`, `level`, `target`, `msg`, and `request_id`,
    /// `trace_id`, `span_id` when the line is about a request or a job.
    Json,
}

/// A log line as `LOG_FORMAT=json` writes it.
#[derive(Serialize)]
struct JsonLine<'a> {
    ts: String,
    level: &'a str,
    target: &'a str,
    msg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    span_id: Option<String>,
}

/// Initializes the global logger once; later calls (tests, the stack) are no-ops.
pub fn init_logging(filter: &str, format: LogFormat) {
    let mut directives = filter.to_owned();
    for target in CHATTY {
        if !filter.contains(target) {
            directives.push_str(&format!(",{target}=warn"));
        }
    }
    let _ = env_logger::Builder::new()
        .parse_filters(&directives)
        .format(move |buf, record| {
            let ts = buf.timestamp_millis();
            let line = Line {
                ts: &ts,
                level: record.level(),
                target: record.target(),
                msg: record.args(),
            };
            line.write(buf, format, RequestContext::current())
        })
        .try_init();
}

/// One log record, before it is written.
struct Line<'a> {
    ts: &'a dyn std::fmt::Display,
    level: log::Level,
    target: &'a str,
    msg: &'a std::fmt::Arguments<'a>,
}

impl Line<'_> {
    /// Writes the line in `format`, about `context` (its ids, when it has them).
    fn write(
        &self,
        out: &mut impl Write,
        format: LogFormat,
        context: RequestContext,
    ) -> std::io::Result<()> {
        let RequestContext { request_id, trace } = context;
        match format {
            LogFormat::Text => {
                write!(out, "{} {:<5} {} ", self.ts, self.level, self.target)?;
                match (&request_id, &trace) {
                    (Some(id), Some(trace)) => {
                        write!(out, "[request_id={id} trace_id={}] ", trace.trace_id_hex())?
                    }
                    (Some(id), None) => write!(out, "[request_id={id}] ")?,
                    (None, Some(trace)) => write!(out, "[trace_id={}] ", trace.trace_id_hex())?,
                    (None, None) => {}
                }
                writeln!(out, "{}", self.msg)
            }
            LogFormat::Json => {
                let line = JsonLine {
                    ts: self.ts.to_string(),
                    level: self.level.as_str(),
                    target: self.target,
                    msg: self.msg.to_string(),
                    request_id,
                    trace_id: trace.as_ref().map(|t| t.trace_id_hex()),
                    span_id: trace.as_ref().map(|t| t.span_id_hex()),
                };
                // Serializing strings cannot fail; a broken pipe is env_logger's.
                serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::other)?;
                writeln!(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceContext;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn written(format: LogFormat, context: RequestContext) -> String {
        let mut out = Vec::new();
        let line = Line {
            ts: &"2026-01-02T03:04:05.678Z",
            level: log::Level::Info,
            target: "pixpress_print::dispatcher",
            msg: &format_args!("job {} \"queued\"", 7),
        };
        line.write(&mut out, format, context).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn in_trace() -> RequestContext {
        RequestContext {
            request_id: Some("req-1".into()),
            trace: TraceContext::parse(TRACEPARENT, None),
        }
    }

    #[test]
    fn a_text_line_names_the_request_and_its_trace() {
        assert_eq!(
            written(LogFormat::Text, in_trace()),
            "2026-01-02T03:04:05.678Z INFO  pixpress_print::dispatcher \
             [request_id=req-1 trace_id=4bf92f3577b34da6a3ce929d0e0e4736] job 7 \"queued\"\n"
        );
        assert_eq!(
            written(LogFormat::Text, RequestContext::default()),
            "2026-01-02T03:04:05.678Z INFO  pixpress_print::dispatcher job 7 \"queued\"\n"
        );
    }

    #[test]
    fn a_json_line_is_one_object_with_the_ids_it_has() {
        let line = written(LogFormat::Json, in_trace());
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "ts": "2026-01-02T03:04:05.678Z",
                "level": "INFO",
                "target": "pixpress_print::dispatcher",
                "msg": "job 7 \"queued\"",
                "request_id": "req-1",
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "span_id": "00f067aa0ba902b7",
            })
        );
        let bare: serde_json::Value =
            serde_json::from_str(&written(LogFormat::Json, RequestContext::default())).unwrap();
        let keys: Vec<&String> = bare.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "absent ids are omitted: {bare}");
    }
}
