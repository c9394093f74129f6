//! Reading what a service's `/metrics` says: the Prometheus text exposition format
//! (0.0.4) parsed into samples, so tests ask for a value by metric name and labels
//! instead of matching lines of text.
//!
//! It reads what the Prometheus client libraries write (`# HELP`/`# TYPE` comments,
//! escaped label values, `+Inf`/`-Inf`/`NaN`, optional timestamps); it does not
//! check the comments or group samples into metric families. [`scrape`] fetches the
//! text, as Prometheus would.

use std::collections::BTreeMap;
use std::fmt;

/// What `GET {base_url}/metrics` answers; panics saying which service did not
/// answer 200 with a text (a test that reads metrics needs them).
pub async fn scrape(http: &reqwest::Client, base_url: &str) -> String {
    let url = format!("{base_url}/metrics");
    let res = http
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(res.status(), 200, "GET {url}");
    res.text()
        .await
        .unwrap_or_else(|e| panic!("reading the body of GET {url}: {e}"))
}

/// [`scrape`], `None` while the service does not answer (for polling one that may be
/// down, starting or busy).
pub async fn try_scrape(http: &reqwest::Client, base_url: &str) -> Option<String> {
    let res = http.get(format!("{base_url}/metrics")).send().await.ok()?;
    res.text().await.ok()
}

/// One line of an exposition: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// As written: a histogram's samples are `…_bucket`, `…_sum` and `…_count`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// Whether its labels are exactly `labels` (in any order).
    pub fn has_labels(&self, labels: &[(&str, &str)]) -> bool {
        self.labels.len() == labels.len() && labels.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

/// A line that is not a sample, a comment or blank.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// 1-based.
    pub line: usize,
    pub reason: &'static str,
    pub text: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "metrics line {}: {}: {:?}",
            self.line, self.reason, self.text
        )
    }
}

impl std::error::Error for ParseError {}

/// Every sample of `text`, in order.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = parse_sample(line).map_err(|reason| ParseError {
            line: i + 1,
            reason,
            text: line.to_owned(),
        })?;
        samples.push(sample);
    }
    Ok(samples)
}

/// Every sample of `text`; panics saying which line is not in the format (what a
/// service serves on `/metrics` must be).
pub fn samples(text: &str) -> Vec<Sample> {
    parse(text).unwrap_or_else(|e| panic!("{e}\nin:\n{text}"))
}

/// The value of the sample `name` whose labels are exactly `labels` (`&[]` for an
/// unlabelled gauge or counter); `None` if there is none.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|s| s.name == name && s.has_labels(labels))
        .map(|s| s.value)
}

/// The sum of every sample `name`, whatever its labels (0 if there is none).
pub fn sum(text: &str, name: &str) -> f64 {
    samples(text)
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("no metric name");
    }
    let mut rest = line[name_end..].trim_start();
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value = parse_value(value).ok_or("a value that is not a number")?;
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| "a timestamp that is not an integer")?;
    }
    if fields.next().is_some() {
        return Err("text after the timestamp");
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Reads `label="value", …}` into `labels`; returns what follows the `}`.
fn parse_labels<'a>(
    mut rest: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, &'static str> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or("unterminated labels")?;
        let name = &rest[..name_end];
        if name.is_empty() {
            return Err("a label without a name");
        }
        rest = rest[name_end..].trim_start();
        rest = rest.strip_prefix('=').ok_or("a label without `=`")?;
        rest = rest.trim_start();
        rest = rest
            .strip_prefix('"')
            .ok_or("a label value without quotes")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().ok_or("an unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("an unterminated label value")? {
                    (_, 'n') => value.push('\n'),
                    (_, '\\') => value.push('\\'),
                    (_, '"') => value.push('"'),
                    _ => return Err("an unknown escape in a label value"),
                },
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err("a label given twice");
        }
        rest = rest[end + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("labels not separated by `,`");
        }
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        // Rust also reads "inf", "infinity" and "nan", which the format does not have.
        _ if text
            .chars()
            .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            None
        }
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP pixpress_http_requests_total Total number of HTTP requests
# TYPE pixpress_http_requests_total counter
pixpress_http_requests_total{endpoint="/print/jobs",method="POST",service="print",status="201"} 3
pixpress_http_requests_total{endpoint="/print/jobs/{id}",method="GET",service="print",status="404"} 2

# TYPE pixpress_print_backend_permits_available gauge
pixpress_print_backend_permits_available 4
pixpress_request_seconds_bucket{le="0.5"} 1
pixpress_request_seconds_bucket{le="+Inf"} 2
pixpress_request_seconds_sum 1.25e0
odd{path="C:\\dir",quote="say \"hi\"",nl="a\nb",comma="a,b}"} -7 1700000000000
not_a_number NaN
"#;

    #[test]
    fn reads_names_labels_and_values() {
        let all = samples(TEXT);
        assert_eq!(all.len(), 8);
        assert_eq!(all[0].name, "pixpress_http_requests_total");
        assert_eq!(all[0].label("endpoint"), Some("/print/jobs"));
        assert_eq!(all[0].label("status"), Some("201"));
        assert_eq!(all[0].value, 3.0);
        assert_eq!(all[1].label("endpoint"), Some("/print/jobs/{id}"));
        assert_eq!(
            value(TEXT, "pixpress_print_backend_permits_available", &[]),
            Some(4.0)
        );
        assert_eq!(value(TEXT, "pixpress_request_seconds_sum", &[]), Some(1.25));
    }

    #[test]
    fn reads_escaped_label_values_and_timestamps() {
        let odd = samples(TEXT).into_iter().find(|s| s.name == "odd").unwrap();
        assert_eq!(odd.label("path"), Some(r"C:\dir"));
        assert_eq!(odd.label("quote"), Some(r#"say "hi""#));
        assert_eq!(odd.label("nl"), Some("a\nb"));
        assert_eq!(odd.label("comma"), Some("a,b}"));
        assert_eq!(odd.value, -7.0);
    }

    #[test]
    fn reads_infinity_and_nan() {
        assert_eq!(
            value(TEXT, "pixpress_request_seconds_bucket", &[("le", "+Inf")]),
            Some(2.0)
        );
        assert!(value(TEXT, "not_a_number", &[]).unwrap().is_nan());
        assert_eq!(parse_value("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_value("inf"), None);
    }

    #[test]
    fn value_wants_exactly_the_labels_given() {
        let labels = [
            ("endpoint", "/print/jobs"),
            ("method", "POST"),
            ("service", "print"),
            ("status", "201"),
        ];
        assert_eq!(
            value(TEXT, "pixpress_http_requests_total", &labels),
            Some(3.0)
        );
        assert_eq!(
            value(TEXT, "pixpress_http_requests_total", &labels[..3]),
            None
        );
        // A name that is a prefix of another is not that other.
        assert_eq!(value(TEXT, "pixpress_http_requests", &labels), None);
        assert_eq!(value(TEXT, "pixpress_print_backend_permits", &[]), None);
    }

    #[test]
    fn sums_every_series_of_a_name() {
        assert_eq!(sum(TEXT, "pixpress_http_requests_total"), 5.0);
        assert_eq!(sum(TEXT, "nothing"), 0.0);
    }

    #[tokio::test]
    async fn scrapes_the_text_of_a_services_metrics() {
        let service = crate::fixture::Fixture::start(|req| match req.path.as_str() {
            "/metrics" => crate::fixture::Reply::bytes(200, "text/plain", TEXT.as_bytes().to_vec()),
            _ => crate::fixture::Reply::bytes(404, "text/plain", Vec::new()),
        });
        let http = reqwest::Client::new();
        assert_eq!(scrape(&http, &service.url).await, TEXT);
        assert_eq!(try_scrape(&http, &service.url).await.as_deref(), Some(TEXT));
        let nobody = "http://127.0.0.1:1";
        assert_eq!(try_scrape(&http, nobody).await, None);
    }

    #[tokio::test]
    #[should_panic(expected = "/metrics")]
    async fn scraping_a_service_that_does_not_serve_metrics_panics_naming_it() {
        let service = crate::fixture::Fixture::start(|_| {
            crate::fixture::Reply::bytes(404, "text/plain", b"no".to_vec())
        });
        scrape(&reqwest::Client::new(), &service.url).await;
    }

    #[test]
    fn names_the_line_that_is_not_a_sample() {
        for bad in [
            "x{a=\"1\" 2",
            "x{a=1} 2",
            "x{a=\"1\"} two",
            "x 1 2 3",
            "{a=\"1\"} 2",
            "x{a=\"\\q\"} 1",
            "x",
        ] {
            let err = parse(&format!("ok 1\n{bad}\n")).unwrap_err();
            assert_eq!(err.line, 2, "{bad}: {err}");
        }
    }
}
