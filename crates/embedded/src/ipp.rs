//! An IPP Everywhere printer on this machine: CUPS's `ippeveprinter` (Debian
//! `cups-ipp-utils`) started as a child process on a port of ours, with its own spool
//! folder (`-d DIR -k`: every document it receives stays there). The local stack
//! registers it as the printer `ipp-sim` behind ipp-gateway; the test kit starts one
//! per test. It is not a pixpress program: it speaks IPP exactly as real printers do.
//!
//! ippeveprinter registers itself with Avahi over the system D-Bus when it starts and
//! exits if it cannot, so both daemons must be running ([`IppEvePrinter::start`] says
//! so when it exits early). It listens on every address (naming `-n 127.0.0.1` makes
//! it fail on its IPv6 listener); the URI names the loopback one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs it.
pub const IPPEVEPRINTER: &str = "/usr/sbin/ippeveprinter";
/// What to install when it is missing, or cannot start.
pub const INSTALL_HINT: &str = "apt-get install cups-ipp-utils avahi-daemon dbus, and run \
                                `dbus-daemon --system` and `avahi-daemon`";
/// How long a start may take before it counts as failed.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// How to start the printer.
#[derive(Debug, Clone)]
pub struct IppEveOptions {
    /// The printer's name (its DNS-SD service name).
    pub name: String,
    pub port: u16,
    /// Its spool folder (created if missing): one file per document received.
    pub spool_dir: PathBuf,
    /// `document-format-supported` (ippeveprinter adds `application/octet-stream`),
    /// e.g. `image/jpeg,image/png`.
    pub formats: String,
    /// The print command (`-c`), run with each document; `None`: ippeveprinter's own
    /// simulation, which takes 5 to 15 s per job.
    pub print_command: Option<PathBuf>,
    /// Environment for the print command.
    pub env: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum IppEveError {
    #[error("{IPPEVEPRINTER} is not installed ({INSTALL_HINT})")]
    NotInstalled,
    #[error("cannot prepare the spool folder {0}: {1}")]
    Spool(PathBuf, std::io::Error),
    #[error("cannot start {IPPEVEPRINTER}: {0}")]
    Spawn(std::io::Error),
    #[error("ippeveprinter exited with {0} before listening ({INSTALL_HINT})")]
    Exited(std::process::ExitStatus),
    #[error("ippeveprinter did not listen on port {0} within {START_PATIENCE:?}")]
    NotListening(u16),
}

/// A running ippeveprinter; killed (with its print command) when dropped.
pub struct IppEvePrinter {
    child: Option<Child>,
    /// `ipp://127.0.0.1:{port}/ipp/print`.
    pub uri: String,
}

impl IppEvePrinter {
    /// Whether ippeveprinter is installed here.
    pub fn installed() -> bool {
        Path::new(IPPEVEPRINTER).exists()
    }

    /// Starts it and waits (off the runtime's threads) until it listens.
    pub async fn start(options: &IppEveOptions) -> Result<Self, IppEveError> {
        let options = options.clone();
        tokio::task::spawn_blocking(move || Self::start_blocking(&options))
            .await
            .map_err(|e| IppEveError::Spawn(std::io::Error::other(e)))?
    }

    fn start_blocking(options: &IppEveOptions) -> Result<Self, IppEveError> {
        if !Self::installed() {
            return Err(IppEveError::NotInstalled);
        }
        std::fs::create_dir_all(&options.spool_dir)
            .map_err(|e| IppEveError::Spool(options.spool_dir.clone(), e))?;
        let mut command = Command::new(IPPEVEPRINTER);
        command
            .arg("-d")
            .arg(&options.spool_dir)
            .arg("-k")
            .arg("-f")
            .arg(&options.formats)
            .arg("-p")
            .arg(options.port.to_string());
        if let Some(print_command) = &options.print_command {
            command.arg("-c").arg(print_command);
        }
        command
            .arg(&options.name)
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so stopping it stops its print command too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().map_err(IppEveError::Spawn)?;
        let mut printer = Self {
            child: Some(child),
            uri: format!("ipp://127.0.0.1:{}/ipp/print", options.port),
        };
        let started = Instant::now();
        loop {
            if let Some(child) = printer.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    printer.child = None;
                    return Err(IppEveError::Exited(status));
                }
            }
            if std::net::TcpStream::connect(("127.0.0.1", options.port)).is_ok() {
                return Ok(printer);
            }
            if started.elapsed() > START_PATIENCE {
                return Err(IppEveError::NotListening(options.port));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How the printer exited, if it has (after [`IppEvePrinter::kill`] it is gone
    /// and this is `None`).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }

    /// The printer's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL to the printer and its print command (a power cut), and waits until
    /// they are gone; its port is free again afterwards.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling the process group of our own child, which we have
            // not reaped yet, so its id cannot have been reused.
            unsafe {
                libc::killpg(child.id() as libc::pid_t, libc::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for IppEvePrinter {
    fn drop(&mut self) {
        self.kill();
    }
}
