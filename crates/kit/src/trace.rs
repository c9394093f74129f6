//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent`
//! and `tracestate` headers every hop accepts and forwards, so one print job's
//! trace id is found in the logs and spans of every service it passed through.
//!
//! Hand-written on purpose: the format is a hundred lines, while the opentelemetry
//! crates (SDK, OTLP exporter, their gRPC and protobuf stacks) would add minutes to
//! the first build that issue 15 wants under eight. Export is `crate::otlp`.
//!
//! A header that does not parse is never an error: the request starts a new trace,
//! as the specification says a receiver must.

use std::fmt;

/// The header carrying the trace id, the caller's span id and the sampled flag.
pub const TRACEPARENT: &str = "traceparent";
/// The header carrying vendors' trace data, passed on untouched.
pub const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` passed on (the specification's 32 members of at most
/// 256 characters are more than any pixpress hop needs; 512 is what it asks
/// propagators to keep at least).
const MAX_TRACESTATE: usize = 512;

/// Where a unit of work stands in a trace: the trace, the current span in it, and
/// whether the trace is recorded (sampled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
    /// The `tracestate` header as received, when it was sane.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// A new trace (random ids), sampled: a request that came without a usable
    /// `traceparent`.
    pub fn new_root() -> Self {
        Self {
            trace_id: nonzero_random(),
            span_id: nonzero_random(),
            sampled: true,
            tracestate: None,
        }
    }

    /// A new span in the same trace, with the same flags and state: the span of
    /// work done on behalf of `self` (whose span becomes its parent).
    pub fn child(&self) -> Self {
        Self {
            span_id: nonzero_random(),
            ..self.clone()
        }
    }

    /// Reads a `traceparent` header (and `tracestate`, kept only beside a valid
    /// `traceparent`); `None` when it is absent or invalid.
    ///
    /// Version `00` is exactly `00-<32 hex>-<16 hex>-<2 hex>`, lowercase; a later
    /// version is read the same way and may carry more after a `-`; version `ff`,
    /// uppercase hex and all-zero ids are invalid.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let s = traceparent.trim_matches([' ', '\t']);
        let b = s.as_bytes();
        // ASCII first: the slicing below is by bytes.
        if !s.is_ascii() || b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = u8::from_str_radix(lower_hex(&s[0..2])?, 16).ok()?;
        match version {
            0xff => return None,
            0 if b.len() != 55 => return None,
            _ if b.len() > 55 && b[55] != b'-' => return None,
            _ => {}
        }
        let trace_id: [u8; 16] = decode(&s[3..35])?;
        let span_id: [u8; 8] = decode(&s[36..52])?;
        let [flags]: [u8; 1] = decode(&s[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
            tracestate: tracestate.and_then(sane_tracestate),
        })
    }

    /// The `traceparent` header naming this span as the parent (version `00`).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id_hex(),
            self.span_id_hex(),
            u8::from(self.sampled)
        )
    }

    /// The trace id, 32 lowercase hex digits (as logged and exported).
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The span id, 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        hex::encode(self.span_id)
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

/// `s` if it is made of lowercase hex digits only.
fn lower_hex(s: &str) -> Option<&str> {
    s.bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        .then_some(s)
}

fn decode<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0; N];
    hex::decode_to_slice(lower_hex(s)?, &mut out).ok()?;
    Some(out)
}

/// A `tracestate` worth passing on: not empty, not too long, printable ASCII (so it
/// cannot forge a header or a log line). Its members are not checked one by one.
fn sane_tracestate(value: &str) -> Option<String> {
    let value = value.trim_matches([' ', '\t']);
    let ok = !value.is_empty()
        && value.len() <= MAX_TRACESTATE
        && value.bytes().all(|b| (0x20..0x7f).contains(&b));
    ok.then(|| value.to_owned())
}

fn nonzero_random<const N: usize>() -> [u8; N] {
    loop {
        let bytes: [u8; N] = rand::random();
        if bytes != [0; N] {
            return bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_read_and_written_back_unchanged() {
        let context = TraceContext::parse(VALID, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.span_id_hex(), "00f067aa0ba902b7");
        assert!(context.sampled);
        assert_eq!(context.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
        assert_eq!(context.traceparent(), VALID);
    }

    #[test]
    fn the_sampled_flag_is_the_lowest_bit_of_the_flags() {
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let context = TraceContext::parse(unsampled, None).unwrap();
        assert!(!context.sampled);
        assert_eq!(context.traceparent(), unsampled);
        let other_bits = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
        assert!(TraceContext::parse(other_bits, None).unwrap().sampled);
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        let cases = [
            ("empty", ""),
            (
                "version ff",
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "version not hex",
                "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "version 00 too long",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            ),
            (
                "all-zero trace id",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ),
            (
                "all-zero span id",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            ),
            (
                "uppercase trace id",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            ),
            (
                "uppercase span id",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            ),
            (
                "uppercase version",
                "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "short trace id",
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            ),
            (
                "bad separator",
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "not hex",
                "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
            ),
            (
                "flags not hex",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            ),
            (
                "sign in hex",
                "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "not ascii",
                "é0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ];
        for (what, header) in cases {
            assert_eq!(TraceContext::parse(header, None), None, "{what}: {header}");
        }
    }

    #[test]
    fn a_later_version_is_read_as_far_as_version_00_goes() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let context = TraceContext::parse(later, None).unwrap();
        assert_eq!(context.traceparent(), VALID, "forwarded as version 00");
        let glued = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x";
        assert_eq!(TraceContext::parse(glued, None), None);
    }

    #[test]
    fn tracestate_is_kept_only_when_sane() {
        let long = "a=".to_owned() + &"b".repeat(MAX_TRACESTATE);
        for (what, state) in [("empty", ""), ("control", "a=b\r\nx: y"), ("long", &long)] {
            let context = TraceContext::parse(VALID, Some(state)).unwrap();
            assert_eq!(context.tracestate, None, "{what}");
        }
    }

    #[test]
    fn a_child_keeps_the_trace_and_gets_a_span_of_its_own() {
        let parent = TraceContext::parse(VALID, Some("k=v")).unwrap();
        let child = parent.child();
        assert_eq!(child.trace_id, parent.trace_id);
        assert_ne!(child.span_id, parent.span_id);
        assert_eq!(
            (child.sampled, child.tracestate),
            (true, Some("k=v".into()))
        );
    }

    #[test]
    fn a_new_trace_is_sampled_and_parses_back() {
        let root = TraceContext::new_root();
        assert!(root.sampled);
        let header = root.traceparent();
        assert_eq!(TraceContext::parse(&header, None), Some(root));
        assert_ne!(
            TraceContext::new_root().trace_id,
            TraceContext::new_root().trace_id
        );
    }
}
