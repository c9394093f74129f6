//! A PostgreSQL server of one test's own, for the faults a shared server must not
//! take: stopping and starting it again, freezing it (SIGSTOP on every one of its
//! processes, as a stalled disk or a paused VM would) and serving TLS only.
//! Everything else uses [`crate::TestDatabase`].
//!
//! The server is stopped and its directory removed when the [`OwnServer`] is dropped;
//! a [`Frozen`] server thaws when its guard is dropped, which the borrow checker
//! makes happen first, so a failing test never leaves a frozen server behind.

use std::marker::PhantomData;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use pixpress_embedded::postgres::PostgresCluster;

pub struct OwnServer {
    // Declared first: the server stops before its directory goes.
    cluster: PostgresCluster,
    _dir: tempfile::TempDir,
}

/// What a TLS-only server presents: its certificate (chain) and key, in PEM.
pub struct ServerCertificate<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

impl OwnServer {
    /// A fresh cluster on a free port. Panics with one line when none can be started.
    pub async fn start() -> Self {
        tokio::task::spawn_blocking(|| {
            let (cluster, dir) = crate::db::start_cluster("pixpress-pg-own-")
                .unwrap_or_else(|e| panic!("starting a PostgreSQL of the test's own: {e}"));
            Self { cluster, _dir: dir }
        })
        .await
        .unwrap_or_else(|e| panic!("starting a PostgreSQL of the test's own: {e}"))
    }

    /// A fresh cluster with `ssl = on` and `certificate`, accepting TCP connections
    /// over TLS only (`hostssl`; a plain one gets "no pg_hba.conf entry").
    pub async fn start_with_tls(certificate: ServerCertificate<'_>) -> Self {
        let mut server = Self::start().await;
        let (cert, key) = (
            certificate.cert_pem.to_owned(),
            certificate.key_pem.to_owned(),
        );
        tokio::task::spawn_blocking(move || {
            // The settings are read at start: stop, configure, start again.
            server.cluster.stop();
            let data = server.cluster.data_dir();
            write_server_file(data, "server.crt", &cert);
            write_server_file(data, "server.key", &key);
            append(data, "postgresql.conf", "\nssl = on\n");
            write_server_file(
                data,
                "pg_hba.conf",
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            );
            server
                .cluster
                .start_again()
                .unwrap_or_else(|e| panic!("starting PostgreSQL with TLS: {e}"));
            server
        })
        .await
        .unwrap_or_else(|e| panic!("starting PostgreSQL with TLS: {e}"))
    }

    /// Stops the server as an operator's restart begins (a fast shutdown: connections
    /// are closed, new ones refused), keeping its port and data; it is handed back
    /// stopped, for [`start_again`](Self::start_again).
    pub async fn stop(mut self) -> Self {
        tokio::task::spawn_blocking(move || {
            self.cluster.stop();
            self
        })
        .await
        .unwrap_or_else(|e| panic!("stopping the PostgreSQL of the test's own: {e}"))
    }

    /// Starts a stopped server again on its port, with its data.
    pub async fn start_again(mut self) -> Self {
        tokio::task::spawn_blocking(move || {
            self.cluster
                .start_again()
                .unwrap_or_else(|e| panic!("starting the PostgreSQL of the test's own again: {e}"));
            self
        })
        .await
        .unwrap_or_else(|e| panic!("starting the PostgreSQL of the test's own again: {e}"))
    }

    pub fn port(&self) -> u16 {
        self.cluster.port()
    }

    /// URL of `database` as the `postgres` superuser (trusted, no password).
    pub fn url(&self, database: &str) -> String {
        self.cluster.url(database)
    }

    /// Stops (SIGSTOP) the postmaster and every backend of this server until the
    /// guard is dropped: connections stay open and nothing answers.
    pub fn freeze(&self) -> Frozen<'_> {
        let postmaster = postmaster_pid(self.cluster.data_dir());
        // The postmaster first, so that it forks no backend after the list is taken.
        stop(postmaster);
        let mut pids = vec![postmaster];
        pids.extend(children_of(postmaster));
        pids[1..].iter().copied().for_each(stop);
        Frozen {
            pids,
            _server: PhantomData,
        }
    }
}

/// A frozen server; dropping this thaws it (SIGCONT).
pub struct Frozen<'a> {
    pids: Vec<i32>,
    _server: PhantomData<&'a OwnServer>,
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        for &pid in &self.pids {
            // SAFETY: sends a signal to a process of the server this test started.
            unsafe {
                libc::kill(pid, libc::SIGCONT);
            }
        }
    }
}

fn stop(pid: i32) {
    // SAFETY: sends a signal to a process of the server this test started.
    let sent = unsafe { libc::kill(pid, libc::SIGSTOP) };
    assert_eq!(sent, 0, "SIGSTOP to PostgreSQL process {pid} failed");
}

fn postmaster_pid(data_dir: &Path) -> i32 {
    let pid_file = data_dir.join("postmaster.pid");
    std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|text| text.lines().next().and_then(|l| l.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no postmaster pid in {}", pid_file.display()))
}

/// The processes whose parent is `parent` (from /proc/*/stat).
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            let ppid: i32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// Writes a file the server reads, owned by the server's account (whoever owns the
/// data directory) and private to it: PostgreSQL refuses a key others can read.
fn write_server_file(data_dir: &Path, name: &str, contents: &str) {
    let path = data_dir.join(name);
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&path, contents)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let owner = std::fs::metadata(data_dir)?;
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid()))
    };
    write().unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn append(data_dir: &Path, name: &str, line: &str) {
    use std::io::Write;
    let path = data_dir.join(name);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(line.as_bytes()))
        .unwrap_or_else(|e| panic!("appending to {}: {e}", path.display()));
}
