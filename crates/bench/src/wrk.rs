//! wrk as the load generator (Debian's `wrk`, LuaJIT inside). Each run gets a Lua
//! script written for it: the request, and optionally a `response()` hook that counts
//! answers by status and times them by status. wrk has no per-status latency, so the
//! script stamps each request's `X-Request-Id` with the send time (a monotonic clock
//! read through LuaJIT's FFI), the service echoes the header, and `response()` takes
//! the difference. `done()` prints everything as `@@` lines this module parses.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};

/// The one line printed when wrk is missing.
pub const MISSING: &str = "pixpress-bench: wrk is not installed (it is the load generator); \
    install it with `apt-get install -y wrk`";

/// Whether `wrk` can be run.
pub fn available() -> bool {
    std::process::Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// One wrk run.
#[derive(Debug, Clone)]
pub struct Load {
    /// Full URL, path included.
    pub url: String,
    pub connections: u32,
    pub duration: Duration,
    pub method: &'static str,
    pub body: Option<String>,
    pub headers: Vec<(&'static str, String)>,
    /// Count answers by status (costs wrk a little: it must keep headers and bodies).
    pub count_statuses: bool,
    /// Also time answers by status (implies a per-request `request()` call).
    pub time_by_status: bool,
    /// Replace `{unique}` in the body with a UUID unique within the run.
    pub unique_ids: bool,
    /// Mean pause of each connection between an answer and its next request (wrk's
    /// `delay()` hook; uniform in 0..2×), so 512 connections can offer a load the
    /// machine can serve.
    pub think_ms: u32,
    /// Request `prefix` followed by a random number in 1..=n, 12 digits zero-padded,
    /// instead of the URL's path (ids the scenario made that way; one per request).
    pub random_id: Option<(String, u32)>,
}

impl Load {
    pub fn get(url: String, connections: u32, duration: Duration) -> Self {
        Self {
            url,
            connections,
            duration,
            method: "GET",
            body: None,
            headers: Vec::new(),
            count_statuses: false,
            time_by_status: false,
            unique_ids: false,
            think_ms: 0,
            random_id: None,
        }
    }

    pub fn post_json(url: String, body: String, connections: u32, duration: Duration) -> Self {
        Self {
            method: "POST",
            body: Some(body),
            headers: vec![("Content-Type", "application/json".to_owned())],
            ..Self::get(url, connections, duration)
        }
    }

    /// With `Authorization: {value}` (`Bearer …`) on every request.
    pub fn authorized(mut self, value: String) -> Self {
        self.headers.push(("Authorization", value));
        self
    }

    pub fn with_duration(&self, duration: Duration) -> Self {
        Self {
            duration,
            ..self.clone()
        }
    }
}

/// Latencies of the answers with one status, in 10 µs buckets below 10 ms and 1 ms
/// buckets above (the key scheme of the Lua hook).
#[derive(Debug, Clone, Default)]
pub struct StatusLatency {
    buckets: BTreeMap<u64, u64>,
}

impl StatusLatency {
    pub fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    /// The upper edge of the bucket holding the `p`th percentile, in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (&key, &n) in &self.buckets {
            seen += n;
            if seen >= rank {
                let upper_us = if key < 1000 {
                    (key + 1) * 10
                } else {
                    (key - 1000 + 1) * 1000
                };
                return Some(upper_us as f64 / 1000.0);
            }
        }
        None
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub seconds: f64,
    pub requests: u64,
    pub connect_errors: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    pub timeouts: u64,
    /// Answers that were not 2xx or 3xx.
    pub non_success: u64,
    /// wrk's own latency percentiles (all answers), milliseconds: "p50", "p90",
    /// "p99", "p99.9", "max".
    pub latency_ms: BTreeMap<String, f64>,
    /// With `count_statuses`.
    pub statuses: BTreeMap<u16, u64>,
    /// With `time_by_status`.
    pub by_status: BTreeMap<u16, StatusLatency>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }

    pub fn latency(&self, which: &str) -> f64 {
        self.latency_ms.get(which).copied().unwrap_or(f64::NAN)
    }

    pub fn status(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    pub fn socket_errors(&self) -> u64 {
        self.connect_errors + self.read_errors + self.write_errors + self.timeouts
    }

    /// Adds another run of the same load (rates and counts; latencies are taken
    /// as the worse of the two).
    pub fn merge(&mut self, other: &Outcome) {
        self.seconds += other.seconds;
        self.requests += other.requests;
        self.connect_errors += other.connect_errors;
        self.read_errors += other.read_errors;
        self.write_errors += other.write_errors;
        self.timeouts += other.timeouts;
        self.non_success += other.non_success;
        for (k, v) in &other.latency_ms {
            let e = self.latency_ms.entry(k.clone()).or_insert(*v);
            *e = e.max(*v);
        }
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
    }
}

/// A Lua long string holding `text` verbatim.
fn lua_string(text: &str) -> String {
    let mut level = 1;
    while text.contains(&format!("]{}]", "=".repeat(level))) {
        level += 1;
    }
    let eq = "=".repeat(level);
    format!("[{eq}[{text}]{eq}]")
}

const PRELUDE: &str = r#"
local threads = {}
local next_tid = 0
function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(threads, thread)
end
counts = {}
lat = {}
seq = 0
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("@@ summary %.0f %.0f %.0f %.0f %.0f %.0f %.0f\n", summary.duration,
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("@@ latency p%s %.0f\n", tostring(p), latency:percentile(p)))
  end
  io.write(string.format("@@ latency max %.0f\n", latency.max))
  -- Flat tables with string keys: what wrk's thread:get copies reliably.
  for _, t in ipairs(threads) do
    for k, n in pairs(t:get("counts")) do
      io.write(string.format("@@ status %s %.0f\n", k, n))
    end
    for k, n in pairs(t:get("lat")) do
      local status, bucket = string.match(k, "(%d+):(%d+)")
      io.write(string.format("@@ lat %s %s %.0f\n", status, bucket, n))
    end
  end
end
"#;

const CLOCK: &str = r#"
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } pixpress_timespec;
int clock_gettime(int clk_id, pixpress_timespec *tp);
]]
local ts = ffi.new("pixpress_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end
"#;

const DYNAMIC_REQUEST: &str = r#"
function request()
  seq = seq + 1
  local h = {}
  for k, v in pairs(headers) do h[k] = v end
  if timed then h["X-Request-Id"] = string.format("t%.0f", now_us()) end
  local b = body
  if unique and b ~= nil then
    local id = string.format("%s-%04x-4000-8000-%012d", run_id, tid, seq)
    b = (string.gsub(b, "{unique}", id))
  end
  local path = nil
  if id_count > 0 then
    path = id_prefix .. string.format("%012d", math.random(1, id_count))
  end
  return wrk.format(method, path, h, b)
end
"#;

const RESPONSE: &str = r#"
function response(status, headers, body)
  local sk = tostring(status)
  counts[sk] = (counts[sk] or 0) + 1
  if timed then
    local id = headers["x-request-id"] or headers["X-Request-Id"]
    if id ~= nil and string.sub(id, 1, 1) == "t" then
      local sent = tonumber(string.sub(id, 2))
      if sent ~= nil then
        local us = now_us() - sent
        local key
        if us < 10000 then key = math.floor(us / 10) else key = 1000 + math.floor(us / 1000) end
        local lk = sk .. ":" .. string.format("%.0f", key)
        lat[lk] = (lat[lk] or 0) + 1
      end
    end
  end
end
"#;

fn script(load: &Load) -> String {
    let run_id = format!("{:08x}", rand_u32());
    let mut s = String::from("-- written by pixpress-bench for one run\n");
    let _ = writeln!(s, "local method = {}", lua_string(load.method));
    let _ = writeln!(
        s,
        "local body = {}",
        load.body.as_deref().map_or("nil".to_owned(), lua_string)
    );
    s.push_str("local headers = {}\n");
    for (name, value) in &load.headers {
        let _ = writeln!(s, "headers[ {} ] = {}", lua_string(name), lua_string(value));
    }
    let _ = writeln!(s, "local timed = {}", load.time_by_status);
    let _ = writeln!(s, "local unique = {}", load.unique_ids);
    let _ = writeln!(s, "local run_id = {}", lua_string(&run_id));
    let (id_prefix, id_count) = load
        .random_id
        .as_ref()
        .map_or(("", 0), |(prefix, n)| (prefix.as_str(), *n));
    let _ = writeln!(s, "local id_prefix = {}", lua_string(id_prefix));
    let _ = writeln!(s, "local id_count = {id_count}");
    s.push_str(PRELUDE);
    if load.time_by_status || load.unique_ids || id_count > 0 {
        if load.time_by_status {
            s.push_str(CLOCK);
        }
        s.push_str(DYNAMIC_REQUEST);
    } else {
        // Static: wrk formats the request once per thread.
        s.push_str("wrk.method = method\nwrk.body = body\n");
        s.push_str("for k, v in pairs(headers) do wrk.headers[k] = v end\n");
    }
    if load.count_statuses || load.time_by_status {
        s.push_str(RESPONSE);
    }
    if load.think_ms > 0 || id_count > 0 {
        s.push_str("function init(args) math.randomseed(os.time() + 7919 * tid) end\n");
    }
    if load.think_ms > 0 {
        // Uniform in 0..2×think: a fixed pause would keep the connections in lockstep,
        // sending bursts of hundreds of requests at once.
        let _ = writeln!(
            s,
            "function delay() return math.random(0, {}) end",
            2 * load.think_ms
        );
    }
    s
}

fn rand_u32() -> u32 {
    let bytes = uuid::Uuid::new_v4();
    let b = bytes.as_bytes();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Runs wrk with `load` and parses what it measured.
pub async fn run(load: &Load) -> anyhow::Result<Outcome> {
    let mut file = tempfile::Builder::new()
        .prefix("pixpress-bench-")
        .suffix(".lua")
        .tempfile()?;
    file.write_all(script(load).as_bytes())?;
    file.flush()?;
    let threads = load.connections.clamp(1, 2);
    let seconds = load.duration.as_secs_f64().ceil().max(1.0) as u64;
    let mut command = tokio::process::Command::new("wrk");
    command
        .arg(format!("-t{threads}"))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{seconds}s"))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(file.path())
        .arg(&load.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().context("starting wrk")?;
    let limit = Duration::from_secs(seconds + 30);
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .with_context(|| format!("wrk did not finish within {limit:?}"))??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {} {}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse(&stdout).with_context(|| {
        format!(
            "wrk stderr: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })
}

fn parse(stdout: &str) -> anyhow::Result<Outcome> {
    let mut out = Outcome::default();
    let mut saw_summary = false;
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("@@ ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let number = |i: usize| -> anyhow::Result<u64> {
            let text = fields.get(i).context("short wrk line")?;
            Ok(text.parse::<f64>().with_context(|| format!("in {line}"))? as u64)
        };
        match fields.first().copied() {
            Some("summary") => {
                saw_summary = true;
                out.seconds = number(1)? as f64 / 1e6;
                out.requests = number(2)?;
                out.connect_errors = number(3)?;
                out.read_errors = number(4)?;
                out.write_errors = number(5)?;
                out.non_success = number(6)?;
                out.timeouts = number(7)?;
            }
            Some("latency") => {
                let name = fields.get(1).context("short wrk line")?.to_string();
                out.latency_ms.insert(name, number(2)? as f64 / 1000.0);
            }
            Some("status") => {
                let status = u16::try_from(number(1)?)?;
                *out.statuses.entry(status).or_default() += number(2)?;
            }
            Some("lat") => {
                let status = u16::try_from(number(1)?)?;
                *out.by_status
                    .entry(status)
                    .or_default()
                    .buckets
                    .entry(number(2)?)
                    .or_default() += number(3)?;
            }
            _ => {}
        }
    }
    if !saw_summary {
        bail!("wrk printed no summary: {}", stdout.trim());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_done_hook() {
        let out = parse(
            "Running 1s test\n@@ summary 2000000 100 0 1 0 3 0\n@@ latency p50 1500\n\
             @@ latency p99 9000\n@@ status 201 60\n@@ status 429 40\n@@ status 201 1\n\
             @@ lat 429 5 30\n@@ lat 429 150 10\n@@ lat 201 1050 61\n",
        )
        .unwrap();
        assert_eq!(out.requests, 100);
        assert_eq!(out.seconds, 2.0);
        assert_eq!(out.rate(), 50.0);
        assert_eq!(out.non_success, 3);
        assert_eq!(out.latency("p50"), 1.5);
        assert_eq!(out.status(201), 61);
        let rejected = &out.by_status[&429];
        assert_eq!(rejected.count(), 40);
        assert_eq!(rejected.percentile_ms(50.0), Some(0.06));
        assert_eq!(rejected.percentile_ms(99.0), Some(1.51));
        assert_eq!(out.by_status[&201].percentile_ms(99.0), Some(51.0));
    }

    #[test]
    fn long_strings_survive_brackets() {
        assert_eq!(lua_string("a]=]b"), "[==[a]=]b]==]");
    }
}
