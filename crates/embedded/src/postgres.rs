//! A PostgreSQL cluster started from the installed server binaries (`initdb`,
//! `postgres` on PATH or under /usr/lib/postgresql/*/bin).
//!
//! PostgreSQL refuses to run as root, so when we are root the cluster runs as the
//! `postgres` system user (or `nobody`). The server is a child process that gets
//! SIGINT (fast shutdown) when the thread that started it dies, so a test binary or
//! a killed stack never leaves a server behind. A cluster can be stopped and started
//! again on the same port and data directory (fault tests take the database away).

use std::ffi::CString;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) not found on PATH or under \
         /usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql)"
    )]
    NotInstalled,
    #[error("{step} failed: {detail}")]
    Failed { step: &'static str, detail: String },
    #[error("PostgreSQL did not become ready within {0:?}; see {1}")]
    NotReady(Duration, PathBuf),
}

fn failed(step: &'static str, detail: impl ToString) -> PostgresError {
    PostgresError::Failed {
        step,
        detail: detail.to_string(),
    }
}

/// A running cluster; stopped (fast shutdown) on drop.
///
/// The server process is owned by a dedicated thread, which lives exactly as long as
/// this value: the parent-death signal is tied to that thread, so the server can
/// neither outlive us nor die early because a short-lived thread started it.
pub struct PostgresCluster {
    options: ClusterOptions,
    stop: Option<mpsc::Sender<()>>,
    owner: Option<std::thread::JoinHandle<()>>,
}

/// Where the server binaries are: the directory holding `initdb` and `postgres`.
pub fn find_binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .collect();
    // Newest major version first.
    debian.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    on_path
        .chain(debian)
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The account to run PostgreSQL as: ourselves, or a non-root user when we are root.
fn server_account() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    for name in ["postgres", "nobody"] {
        let cname = CString::new(name).ok()?;
        // SAFETY: getpwnam returns a pointer to static storage or null; we copy the
        // two ids out immediately, on one thread of this process at a time (callers
        // start clusters from one place).
        let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
        if !pw.is_null() {
            let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
            return Some((uid, gid));
        }
    }
    None
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), PostgresError> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| failed("chown", e))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| failed("chown", e))? {
            let entry = entry.map_err(|e| failed("chown", e))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Options of a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Data directory; initialized when empty, reused otherwise.
    pub data_dir: PathBuf,
    pub port: u16,
    /// Throwaway clusters skip fsync (much faster; a crash loses the data anyway).
    pub durable: bool,
}

impl PostgresCluster {
    /// Initializes `data_dir` if needed and starts the server on 127.0.0.1:`port`,
    /// waiting until it accepts connections. Blocking: call from a plain thread or
    /// `spawn_blocking`.
    pub fn start(options: &ClusterOptions) -> Result<Self, PostgresError> {
        let mut cluster = Self {
            options: options.clone(),
            stop: None,
            owner: None,
        };
        cluster.start_again()?;
        Ok(cluster)
    }

    /// Starts the server again after [`PostgresCluster::stop`], on the same port and
    /// data directory (so with the same data): what an operator's restart does. Does
    /// nothing if it is running. Blocking, like [`PostgresCluster::start`]. The port
    /// is free while the server is stopped; another process could take it meanwhile.
    pub fn start_again(&mut self) -> Result<(), PostgresError> {
        if self.is_running() {
            return Ok(());
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread_options = self.options.clone();
        let owner = std::thread::Builder::new()
            .name("postgres-owner".into())
            .spawn(move || match spawn_server(&thread_options) {
                Ok(mut child) => {
                    let _ = ready_tx.send(Ok(()));
                    // Until told to stop (or the sender is dropped).
                    let _ = stop_rx.recv();
                    // SAFETY: sending a signal to our own child process.
                    unsafe {
                        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
                    }
                    let _ = child.wait();
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| failed("starting the owner thread", e))?;
        let outcome = ready_rx
            .recv()
            .unwrap_or_else(|_| Err(failed("starting postgres", "owner thread died")));
        if let Err(e) = outcome {
            let _ = owner.join();
            return Err(e);
        }
        log::info!(
            "PostgreSQL ready on 127.0.0.1:{} ({})",
            self.options.port,
            self.options.data_dir.display()
        );
        self.stop = Some(stop_tx);
        self.owner = Some(owner);
        Ok(())
    }

    /// Whether the server is running (started and not stopped since).
    pub fn is_running(&self) -> bool {
        self.owner.is_some()
    }

    pub fn data_dir(&self) -> &Path {
        &self.options.data_dir
    }
}

/// Initializes the data directory if needed, starts the server and waits until it
/// accepts connections.
fn spawn_server(options: &ClusterOptions) -> Result<Child, PostgresError> {
    let bin = find_binaries().ok_or(PostgresError::NotInstalled)?;
    let account = server_account();
    // The server runs inside its data directory: relative paths would break.
    let data_dir = &std::path::absolute(&options.data_dir)
        .map_err(|e| failed("resolving the data directory", e))?;
    std::fs::create_dir_all(data_dir).map_err(|e| failed("creating the data directory", e))?;
    let initialized = data_dir.join("PG_VERSION").exists();
    if let Some((uid, gid)) = account {
        chown_tree(data_dir, uid, gid)?;
    }
    if !initialized {
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(data_dir)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !options.durable {
            initdb.arg("--no-sync");
        }
        if let Some((uid, gid)) = account {
            initdb.uid(uid).gid(gid);
        }
        let out = initdb.output().map_err(|e| failed("initdb", e))?;
        if !out.status.success() {
            return Err(failed("initdb", String::from_utf8_lossy(&out.stderr)));
        }
    }
    // A stale pid file from a killed server would stop the new one.
    let _ = std::fs::remove_file(data_dir.join("postmaster.pid"));
    let log_path = data_dir.join("server.log");
    let log = std::fs::File::create(&log_path).map_err(|e| failed("creating the log", e))?;
    if let Some((uid, gid)) = account {
        chown_tree(&log_path, uid, gid)?;
    }
    let mut postgres = Command::new(bin.join("postgres"));
    postgres
        .arg("-D")
        .arg(data_dir)
        .args(["-p", &options.port.to_string(), "-h", "127.0.0.1", "-k"])
        .arg(data_dir)
        .args(["-c", "max_connections=300", "-c", "shared_buffers=128MB"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    if !options.durable {
        postgres.args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]);
    }
    if let Some((uid, gid)) = account {
        postgres.uid(uid).gid(gid);
    }
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to send SIGINT
    // to the server when the thread that spawned it exits.
    unsafe {
        postgres.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
            Ok(())
        });
    }
    let mut child = postgres
        .spawn()
        .map_err(|e| failed("starting postgres", e))?;
    match wait_ready(data_dir, &mut child, Duration::from_secs(30)) {
        Ok(()) => Ok(child),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Waits for `postmaster.pid` to report "ready" (PostgreSQL ≥ 10).
fn wait_ready(data_dir: &Path, child: &mut Child, limit: Duration) -> Result<(), PostgresError> {
    let start = Instant::now();
    let pid_file = data_dir.join("postmaster.pid");
    let log = data_dir.join("server.log");
    while start.elapsed() < limit {
        if let Ok(text) = std::fs::read_to_string(&pid_file) {
            if text.lines().nth(7).is_some_and(|l| l.trim() == "ready") {
                return Ok(());
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(failed(
                "postgres",
                format!("exited with {status}: {}", tail.trim()),
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(PostgresError::NotReady(limit, log))
}

impl PostgresCluster {
    pub fn port(&self) -> u16 {
        self.options.port
    }

    /// URL of `database` as the `postgres` superuser.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}",
            self.options.port
        )
    }

    /// Fast shutdown (open transactions are rolled back, committed ones kept), waiting
    /// for the server to exit. [`PostgresCluster::start_again`] brings it back.
    pub fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(owner) = self.owner.take() {
            let _ = owner.join();
        }
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(port: u16) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }

    #[test]
    fn a_stopped_cluster_starts_again_on_its_port_and_data_directory() {
        if find_binaries().is_none() {
            eprintln!("skipped: no PostgreSQL server binaries installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let options = ClusterOptions {
            data_dir: dir.path().join("data"),
            port: free_port().unwrap(),
            durable: false,
        };
        let mut cluster = PostgresCluster::start(&options).unwrap();
        assert!(cluster.is_running() && accepts(options.port));
        cluster.stop();
        assert!(!cluster.is_running());
        assert!(!accepts(options.port), "stopped means nobody listens");
        cluster.start_again().unwrap();
        assert!(cluster.is_running() && accepts(options.port));
        assert!(options.data_dir.join("PG_VERSION").is_file());
    }
}
