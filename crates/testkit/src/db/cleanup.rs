//! Dropping test databases: each one when its test is done, and the leftovers of
//! test binaries that died before they could (killed, or their machine stopped).
//!
//! Every test database is named `pixpress_test_<uuid>` and labelled, in its
//! comment, with its owner and birth:
//! `pixpress-testkit owner=<host> pid=<pid> start=<ticks> created=<unix seconds>`,
//! where `host` is the host name and pid namespace (one process table) and `start`
//! the owner's start time in `/proc/<pid>/stat` (so a pid used again by another
//! process is not taken for the owner).
//!
//! A sweep drops a `pixpress_test_*` database only when
//! - its owner is on this host and that process is gone, or
//! - its owner is on another host or unknown (made by an older testkit, or caught
//!   between its `CREATE DATABASE` and its label), nobody is connected to it, and it
//!   is more than an hour old (by its label, or else by its files' age, which only a
//!   privileged role can read: without it, an unlabelled database is kept).
//!
//! So a live test binary's databases are never swept: on this host its process is
//! there, and elsewhere no test runs for an hour. Sweeps of several binaries at once
//! only race to drop the same leftovers (`IF EXISTS`, errors ignored).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::{Client, NoTls};

const PREFIX: &str = "pixpress_test_";
/// What a label's comment starts with.
const MARK: &str = "pixpress-testkit";
/// After this, a database whose owner cannot be checked counts as left over.
const STALE_AFTER: Duration = Duration::from_secs(3600);
/// How long dropping one database may take (FORCE waits up to 5 s for the
/// connections it cut to close).
const DROP_LIMIT: Duration = Duration::from_secs(15);

/// A new test database's name.
pub(super) fn new_name() -> String {
    format!("{PREFIX}{}", uuid::Uuid::new_v4().simple())
}

/// The statement that labels database `name` as this process's.
pub(super) fn label_statement(name: &str) -> String {
    let label = Label {
        owner: Owner::this_process(),
        created: unix_now(),
    };
    let comment = label.to_string().replace('\'', "''");
    format!("COMMENT ON DATABASE {} IS '{comment}'", quoted(name))
}

/// Drops database `name` of `server` now, from a thread of its own (so it works
/// from `Drop`, inside or outside a runtime, without blocking the runtime's other
/// tasks on a connection of theirs). A failure is only reported: the next sweep
/// finds the database.
pub(super) fn drop_now(server: &'static str, name: &str) {
    let name = name.to_owned();
    let dropping = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("a runtime to drop it on: {e}"))?;
        runtime.block_on(async {
            let client = connect(server).await?;
            drop_database(&client, &name).await
        })
    });
    match dropping.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("warning: test database left behind: {e}"),
        Err(_) => eprintln!("warning: test database left behind: the dropping thread panicked"),
    }
}

/// Sweeps `server`'s leftovers on a thread of its own, so the first test does not
/// wait for it (a binary that exits first leaves the rest to the next sweep).
pub(super) fn sweep_in_background(server: String) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            if let Err(e) = sweep(&server).await {
                eprintln!("warning: no sweep of leftover test databases: {e}");
            }
        });
    });
}

async fn sweep(server: &str) -> Result<(), String> {
    let client = connect(server).await?;
    let listed = "SELECT d.datname, shobj_description(d.oid, 'pg_database') AS label, \
                  (SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.oid) AS connections";
    let aged = ", extract(epoch FROM now() - (pg_stat_file('base/' || d.oid || '/PG_VERSION', \
                true)).modification)::float8 AS age_secs";
    let from = format!(" FROM pg_database d WHERE starts_with(d.datname, '{PREFIX}')");
    // Reading files' ages needs a privileged role; without one, ages are unknown.
    let rows = match client.query(&format!("{listed}{aged}{from}"), &[]).await {
        Ok(rows) => rows,
        Err(_) => client
            .query(&format!("{listed}, NULL::float8 AS age_secs{from}"), &[])
            .await
            .map_err(|e| format!("listing test databases: {e}"))?,
    };
    let here = Owner::this_process();
    let now = unix_now();
    for row in rows {
        let (name, label, connections, age): (String, Option<String>, i64, Option<f64>) = (
            row.get("datname"),
            row.get("label"),
            row.get("connections"),
            row.get("age_secs"),
        );
        let found = Found {
            label: label.as_deref().and_then(Label::parse),
            connections,
            file_age: age.map(|secs| Duration::from_secs_f64(secs.max(0.0))),
        };
        if found.is_leftover(&here.host, now, is_running) {
            // Another sweep may have dropped it first; its own warning would be noise.
            let _ = drop_database(&client, &name).await;
        }
    }
    Ok(())
}

async fn connect(server: &str) -> Result<Client, String> {
    let (client, conn) = tokio::time::timeout(DROP_LIMIT, tokio_postgres::connect(server, NoTls))
        .await
        .map_err(|_| format!("connecting to {server}: timed out"))?
        .map_err(|e| format!("connecting to {server}: {e}"))?;
    tokio::spawn(conn);
    Ok(client)
}

/// `DROP DATABASE … WITH (FORCE)` (PostgreSQL 13 or later): cuts the connections the
/// test's services still hold, and keeps new ones out while it drops.
async fn drop_database(client: &Client, name: &str) -> Result<(), String> {
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(name));
    tokio::time::timeout(DROP_LIMIT, client.batch_execute(&sql))
        .await
        .map_err(|_| format!("dropping {name}: timed out"))?
        .map_err(|e| format!("dropping {name}: {e}"))
}

fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The process that created a database.
#[derive(Debug, Clone, PartialEq)]
struct Owner {
    /// Host name and pid namespace: where `pid` means this process.
    host: String,
    pid: u32,
    /// Start time in clock ticks after boot, where `/proc` tells it.
    start: Option<u64>,
}

impl Owner {
    fn this_process() -> Self {
        let pid = std::process::id();
        let namespace = std::fs::read_link("/proc/self/ns/pid")
            .map(|link| {
                link.to_string_lossy()
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect::<String>()
            })
            .unwrap_or_default();
        Self {
            host: format!("{}/{namespace}", host_name()),
            pid,
            start: start_time(pid),
        }
    }
}

/// Whether `owner` (on this host) is still running.
fn is_running(owner: &Owner) -> bool {
    if std::path::Path::new("/proc/self/stat").exists() {
        return start_time(owner.pid).is_some_and(|now| owner.start.is_none_or(|s| s == now));
    }
    // SAFETY: signal 0 only checks that the process exists.
    let pid = owner.pid as libc::pid_t;
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    exists || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Field 22 of `/proc/<pid>/stat` (counted after the command name, which may hold
/// spaces and parentheses).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_command) = stat.rsplit_once(')')?;
    after_command.split_whitespace().nth(19)?.parse().ok()
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
    // or truncates, and we read only up to the first NUL.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if ok {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    }
}

/// A database's label.
#[derive(Debug, Clone, PartialEq)]
struct Label {
    owner: Owner,
    /// Unix seconds.
    created: u64,
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let start = self
            .owner
            .start
            .map_or_else(|| "-".to_owned(), |s| s.to_string());
        write!(
            f,
            "{MARK} owner={} pid={} start={start} created={}",
            self.owner.host, self.owner.pid, self.created
        )
    }
}

impl Label {
    fn parse(comment: &str) -> Option<Self> {
        let mut words = comment.split_whitespace();
        if words.next()? != MARK {
            return None;
        }
        let (mut host, mut pid, mut start, mut created) = (None, None, None, None);
        for word in words {
            match word.split_once('=')? {
                ("owner", v) => host = Some(v.to_owned()),
                ("pid", v) => pid = Some(v.parse().ok()?),
                ("start", "-") => start = Some(None),
                ("start", v) => start = Some(Some(v.parse().ok()?)),
                ("created", v) => created = Some(v.parse().ok()?),
                _ => {}
            }
        }
        Some(Self {
            owner: Owner {
                host: host?,
                pid: pid?,
                start: start?,
            },
            created: created?,
        })
    }
}

/// What a sweep knows of one test database.
#[derive(Debug)]
struct Found {
    label: Option<Label>,
    connections: i64,
    file_age: Option<Duration>,
}

impl Found {
    /// The rule of the module doc.
    fn is_leftover(&self, host: &str, now: u64, running: impl Fn(&Owner) -> bool) -> bool {
        let age = match &self.label {
            Some(label) if label.owner.host == host => return !running(&label.owner),
            Some(label) => Some(Duration::from_secs(now.saturating_sub(label.created))),
            None => self.file_age,
        };
        self.connections == 0 && age.is_some_and(|age| age > STALE_AFTER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(host: &str, pid: u32, created: u64) -> Label {
        Label {
            owner: Owner {
                host: host.into(),
                pid,
                start: Some(42),
            },
            created,
        }
    }

    #[test]
    fn a_label_reads_back_as_written() {
        let written = label("ci-box/4026531836", 1234, 1_700_000_000);
        assert_eq!(Label::parse(&written.to_string()), Some(written));
        let no_start = Label {
            owner: Owner {
                start: None,
                ..label("h/1", 7, 1).owner
            },
            created: 1,
        };
        assert_eq!(Label::parse(&no_start.to_string()), Some(no_start));
        assert_eq!(Label::parse("a database someone made by hand"), None);
        assert_eq!(Label::parse("pixpress-testkit owner=h pid=x"), None);
    }

    #[test]
    fn this_process_is_running_and_its_own_label_says_so() {
        let me = Owner::this_process();
        assert!(is_running(&me));
        let someone_else = Owner {
            start: me.start.map(|s| s + 1),
            ..me.clone()
        };
        if me.start.is_some() {
            assert!(!is_running(&someone_else), "a reused pid is not the owner");
        }
    }

    #[test]
    fn on_this_host_only_a_gone_owner_makes_a_leftover() {
        let now = 1_700_000_000;
        let found = |created| Found {
            label: Some(label("here/1", 99, created)),
            connections: 3,
            file_age: None,
        };
        assert!(found(now).is_leftover("here/1", now, |_| false));
        // Old, but its owner runs: a long test binary keeps its database.
        assert!(!found(now - 86_400).is_leftover("here/1", now, |_| true));
    }

    #[test]
    fn elsewhere_or_unlabelled_only_an_old_idle_database_is_a_leftover() {
        let now = 1_700_000_000;
        let hour = STALE_AFTER.as_secs();
        let other = |created, connections| Found {
            label: Some(label("there/1", 99, created)),
            connections,
            file_age: None,
        };
        let running = |_: &Owner| -> bool { panic!("another host's process cannot be checked") };
        assert!(other(now - hour - 1, 0).is_leftover("here/1", now, running));
        assert!(!other(now - 60, 0).is_leftover("here/1", now, running));
        assert!(!other(now - hour - 1, 1).is_leftover("here/1", now, running));

        let unlabelled = |file_age, connections| Found {
            label: None,
            connections,
            file_age,
        };
        let old = Some(STALE_AFTER + Duration::from_secs(1));
        assert!(unlabelled(old, 0).is_leftover("here/1", now, running));
        assert!(!unlabelled(old, 2).is_leftover("here/1", now, running));
        assert!(!unlabelled(Some(Duration::from_secs(5)), 0).is_leftover("here/1", now, running));
        assert!(!unlabelled(None, 0).is_leftover("here/1", now, running));
    }
}
