//! Runs a service binary as a real child process, for tests of start-up,
//! configuration, signal handling, faults (a process killed and started again on
//! the same port) and what it logs (its stderr, kept line by line).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::http::{eventually_every, free_port};

/// How long a binary may take to serve `/health` after it is started.
const START_LIMIT: Duration = Duration::from_secs(30);

pub struct RunningBinary {
    path: String,
    env: Vec<(String, String)>,
    port: u16,
    /// `None` once killed, until started again.
    child: Option<Child>,
    /// Its stderr lines, every run's, when they are kept.
    logs: Option<Arc<Mutex<Vec<String>>>>,
    pub url: String,
}

impl RunningBinary {
    /// Starts `path` with `HTTP_ADDR` on a free loopback port plus `env`, and waits
    /// (up to 30 s) until `/health` answers 200.
    pub async fn start(path: &str, env: &[(&str, &str)]) -> Self {
        Self::start_on(path, free_port(), env).await
    }

    /// Like [`RunningBinary::start`], on `port` (for a binary whose own URL must be
    /// known before it starts, e.g. print-service's `PUBLIC_URL`).
    pub async fn start_on(path: &str, port: u16, env: &[(&str, &str)]) -> Self {
        Self::launch(path, port, env, false).await
    }

    /// Like [`RunningBinary::start_on`], keeping what it writes on stderr (its log)
    /// for [`RunningBinary::logs`] instead of letting it through.
    pub async fn start_logged(path: &str, port: u16, env: &[(&str, &str)]) -> Self {
        Self::launch(path, port, env, true).await
    }

    async fn launch(path: &str, port: u16, env: &[(&str, &str)], keep_logs: bool) -> Self {
        let mut running = Self {
            path: path.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            port,
            child: None,
            logs: keep_logs.then(Arc::default),
            url: format!("http://127.0.0.1:{port}"),
        };
        running.start_again().await;
        running
    }

    /// The lines it has written on stderr so far (every run's), when started with
    /// [`RunningBinary::start_logged`]; empty otherwise.
    pub fn logs(&self) -> Vec<String> {
        match &self.logs {
            Some(logs) => logs.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            None => Vec::new(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, and waits for the process to be gone: a crash, with no chance to
    /// finish anything. Its port is free again afterwards.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sets `name` to `value` for the next [`RunningBinary::start_again`].
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// Starts the binary again, with the same environment on the same port, after
    /// [`RunningBinary::kill`]; waits until `/health` answers 200.
    pub async fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "{} is still running; kill it first",
            self.path
        );
        let mut command = Command::new(&self.path);
        command
            .env("HTTP_ADDR", format!("127.0.0.1:{}", self.port))
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if self.logs.is_some() {
            command.stderr(Stdio::piped());
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.path));
        if let (Some(logs), Some(stderr)) = (&self.logs, child.stderr.take()) {
            let logs = Arc::clone(logs);
            // Ends when the process closes its stderr (it exits).
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    logs.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        self.child = Some(child);
        let client = crate::http::client();
        let health = format!("{}/health", self.url);
        let (path, child) = (&self.path, &mut self.child);
        eventually_every(
            &format!("{path} to serve /health"),
            START_LIMIT,
            Duration::from_millis(25),
            || {
                if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    *child = None;
                    panic!("{path} exited with {status} before serving /health");
                }
                let request = client.get(&health).send();
                async move { (request.await.ok()?.status() == 200).then_some(()) }
            },
        )
        .await;
    }

    /// Sends SIGTERM and waits for the exit, at most `limit`.
    pub async fn terminate(mut self, limit: Duration) -> ExitStatus {
        self.sigterm(limit).await
    }

    /// Sends SIGTERM and waits for the exit, at most `limit` (then panics, and the
    /// unwinding drop kills it); [`RunningBinary::start_again`] can start it again
    /// afterwards.
    pub async fn sigterm(&mut self, limit: Duration) -> ExitStatus {
        let Some(child) = self.child.as_mut() else {
            panic!("{} is not running", self.path);
        };
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let status = eventually_every(
            &format!("{} to exit after SIGTERM", self.path),
            limit,
            Duration::from_millis(10),
            || {
                let exited = child.try_wait().expect("waiting for the child");
                async move { exited }
            },
        )
        .await;
        self.child = None;
        status
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A binary of another package of the workspace, for tests that cannot use
/// `env!("CARGO_BIN_EXE_…")` (it names only the tested package's own binaries).
///
/// Cargo puts every binary in `target/<profile>/`, the parent of the `deps/` folder
/// holding the test executable; `cargo test --workspace` builds them all before any
/// test runs. When one is missing (e.g. after `cargo test -p <one package>`), this
/// panics saying which `cargo build` makes it.
pub fn workspace_binary(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .filter(|dir| dir.file_name().is_some_and(|n| n == "deps"))
        .and_then(Path::parent)
        .or_else(|| exe.parent())
        .expect("the test executable is in a folder")
        .to_path_buf();
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{name} is not built: no {}. Run `cargo build -p {package} --bin {name}` \
         (`cargo test --workspace` builds it too) and run the test again.",
        path.display()
    );
    path
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
