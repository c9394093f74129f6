//! Runs a service binary as a real child process, for tests of start-up,
//! configuration and signal handling.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::http::free_port;

pub struct RunningBinary {
    child: Child,
    pub url: String,
}

impl RunningBinary {
    /// Starts `path` with `HTTP_ADDR` on a free loopback port plus `env`, and waits
    /// (up to 30 s) until `/health` answers 200.
    pub async fn start(path: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut command = Command::new(path);
        command
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {path}: {e}"));
        let mut running = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = crate::http::client();
        let start = Instant::now();
        loop {
            if let Ok(res) = client.get(format!("{}/health", running.url)).send().await {
                if res.status() == 200 {
                    return running;
                }
            }
            if let Ok(Some(status)) = running.child.try_wait() {
                panic!("{path} exited with {status} before serving /health");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{path} did not serve /health within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit, at most `limit`.
    pub async fn terminate(mut self, limit: Duration) -> ExitStatus {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the child") {
                return status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("the process did not exit within {limit:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The life of a binary as operators see it: it starts from the environment, serves
/// the operational routes, and exits 0 on SIGTERM (idle, well within a second; the
/// 10 s bound only guards against a hang).
pub async fn assert_serves_and_stops_on_sigterm(path: &str, env: &[(&str, &str)]) {
    let binary = RunningBinary::start(path, env).await;
    crate::http::assert_operational_routes(&binary.url).await;
    let status = binary.terminate(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "{path} exited with {status} after SIGTERM"
    );
}

/// `--help` exits 0 and documents each of `variables`.
pub fn assert_help_lists(path: &str, variables: &[&str]) {
    let out = Command::new(path)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("running {path} --help: {e}"));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for var in variables {
        assert!(text.contains(var), "--help does not mention {var}:\n{text}");
    }
}
