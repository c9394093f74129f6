//! A real IPP printer for tests: CUPS's `ippeveprinter` (Debian `cups-ipp-utils`),
//! an IPP Everywhere printer no one here wrote, started on a free port with its own
//! spool folder (`-d DIR -k`: every document it receives stays there), and `ipptool`
//! to ask it about its jobs or cancel one, as an operator at the printer would.
//!
//! Printing is a shell script (`-c`) that sleeps `print_delay` and succeeds, so a
//! test decides how long a job stays `processing` (ippeveprinter's own simulation
//! takes 5 to 15 s). Killing the printer kills its process group, script included;
//! started again on the same port and spool folder it has forgotten its jobs and
//! numbers them from 1 again, as the real one does.
//!
//! The process itself is started and killed by the embedded crate's
//! [`IppEvePrinter`] (the local stack's `ipp-sim` printer); this harness adds what
//! tests need: the print script, a readiness wait through ipptool, the system
//! daemons, and the ipptool queries.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pixpress_embedded::ipp::{IppEveOptions, IppEvePrinter, INSTALL_HINT};

use crate::http::{eventually_every, free_port};

const IPPTOOL: &str = "/usr/bin/ipptool";

/// How a test printer is started.
#[derive(Debug, Clone)]
pub struct PrinterOptions {
    /// `document-format-supported` (besides the `application/octet-stream`
    /// ippeveprinter always adds), e.g. `image/jpeg,image/png`.
    pub formats: String,
    /// How long printing one job takes.
    pub print_delay: Duration,
}

impl Default for PrinterOptions {
    fn default() -> Self {
        Self {
            formats: "image/jpeg,image/png".to_owned(),
            print_delay: Duration::ZERO,
        }
    }
}

/// A job as the printer reports it (Get-Jobs, `which-jobs` all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterSideJob {
    pub id: i32,
    pub name: String,
    /// `pending`, `processing`, `completed`, `canceled`, `aborted`…
    pub state: String,
    pub state_reasons: String,
    pub copies: Option<i32>,
    pub user: String,
}

/// A document the printer spooled: `{job-id}-{job-name}.{ext}` in its folder.
#[derive(Debug, Clone)]
pub struct SpooledFile {
    pub path: PathBuf,
    pub job_id: i32,
    /// The rest of the name: the job name as ippeveprinter spells files (lowercase).
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A running `ippeveprinter`, killed when dropped.
pub struct Ippeveprinter {
    port: u16,
    folder: tempfile::TempDir,
    options: PrinterOptions,
    running: Option<IppEvePrinter>,
    /// `ipp://127.0.0.1:{port}/ipp/print`.
    pub uri: String,
}

impl Ippeveprinter {
    /// Starts a printer with `options` on a free port and waits until it answers
    /// Get-Printer-Attributes.
    pub async fn start(options: PrinterOptions) -> Self {
        ensure_daemons();
        let port = free_port();
        let folder = tempfile::tempdir().expect("a folder for the test printer");
        std::fs::create_dir_all(folder.path().join("spool")).expect("the spool folder");
        let script = folder.path().join("print.sh");
        // A print command: wait as long as printing takes, then succeed.
        std::fs::write(
            &script,
            "#!/bin/sh\nsleep \"${PIXPRESS_PRINT_DELAY:-0}\"\nexit 0\n",
        )
        .expect("writing the print command");
        set_executable(&script);
        let mut printer = Self {
            port,
            folder,
            options,
            running: None,
            uri: format!("ipp://127.0.0.1:{port}/ipp/print"),
        };
        printer.start_again().await;
        printer
    }

    /// A printer taking JPEG and PNG that prints at once.
    pub async fn start_default() -> Self {
        Self::start(PrinterOptions::default()).await
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn spool_dir(&self) -> PathBuf {
        self.folder.path().join("spool")
    }

    /// How long jobs take from the next [`Ippeveprinter::start_again`] on.
    pub fn set_print_delay(&mut self, delay: Duration) {
        self.options.print_delay = delay;
    }

    /// Starts the printer (again, after [`Ippeveprinter::kill`]) on the same port and
    /// spool folder; waits (up to 30 s) until it answers Get-Printer-Attributes.
    pub async fn start_again(&mut self) {
        assert!(self.running.is_none(), "the printer is still running");
        let options = IppEveOptions {
            name: format!("pixpress-test-{}", self.port),
            port: self.port,
            spool_dir: self.spool_dir(),
            formats: self.options.formats.clone(),
            print_command: Some(self.folder.path().join("print.sh")),
            env: vec![(
                "PIXPRESS_PRINT_DELAY".to_owned(),
                format!("{:.3}", self.options.print_delay.as_secs_f64()),
            )],
        };
        let printer = IppEvePrinter::start(&options)
            .await
            .unwrap_or_else(|e| panic!("starting the test printer: {e}"));
        let uri = self.uri.clone();
        let running = self.running.insert(printer);
        eventually_every(
            "ippeveprinter to answer Get-Printer-Attributes",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                if let Some(status) = running.exit_status() {
                    panic!(
                        "ippeveprinter exited with {status} before answering; it needs the \
                         system D-Bus and avahi-daemon running ({INSTALL_HINT})"
                    );
                }
                let uri = uri.clone();
                async move {
                    let status = tokio::process::Command::new(IPPTOOL)
                        .args(["-q", "-T", "2", &uri, "get-printer-attributes.test"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .await
                        .ok()?;
                    status.success().then_some(())
                }
            },
        )
        .await;
    }

    /// SIGKILL to the printer and its print command, and waits until it is gone: a
    /// power cut. Its port is free again afterwards.
    pub fn kill(&mut self) {
        if let Some(mut printer) = self.running.take() {
            printer.kill();
        }
    }

    /// Every document the printer spooled, by job id (the print command's `.prn`
    /// output files are left out).
    pub fn spooled(&self) -> Vec<SpooledFile> {
        let mut files: Vec<SpooledFile> = std::fs::read_dir(self.spool_dir())
            .expect("reading the spool folder")
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext != "prn"))
            .filter_map(|path| {
                let stem = path.file_stem()?.to_str()?.to_owned();
                let (id, name) = stem.split_once('-')?;
                Some(SpooledFile {
                    job_id: id.parse().ok()?,
                    name: name.to_owned(),
                    bytes: std::fs::read(&path).ok()?,
                    path,
                })
            })
            .collect();
        files.sort_by_key(|f| f.job_id);
        files
    }

    /// Every job the printer knows (Get-Jobs with `which-jobs` all, via ipptool).
    pub async fn jobs(&self) -> Vec<PrinterSideJob> {
        let test = self.test_file(
            "get-jobs.test",
            "OPERATION Get-Jobs\n\
             GROUP operation-attributes-tag\n\
             ATTR charset attributes-charset utf-8\n\
             ATTR naturalLanguage attributes-natural-language en\n\
             ATTR uri printer-uri $uri\n\
             ATTR keyword which-jobs all\n\
             ATTR keyword requested-attributes job-id,job-name,job-state,job-state-reasons,copies,job-originating-user-name\n\
             STATUS successful-ok\n\
             DISPLAY job-id\nDISPLAY job-name\nDISPLAY job-state\nDISPLAY job-state-reasons\n\
             DISPLAY copies\nDISPLAY job-originating-user-name\n",
        );
        let csv = self.ipptool(&["-c"], &test).await;
        csv.lines()
            .skip(1)
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let fields = csv_fields(line);
                let field = |i: usize| fields.get(i).cloned().unwrap_or_default();
                PrinterSideJob {
                    id: field(0).parse().expect("a job id"),
                    name: field(1),
                    state: field(2),
                    state_reasons: field(3),
                    copies: field(4).parse().ok(),
                    user: field(5),
                }
            })
            .collect()
    }

    /// Cancel-Job of `job_id`, as an operator at the printer would.
    pub async fn cancel(&self, job_id: i32) {
        let test = self.test_file(
            "cancel-job.test",
            "OPERATION Cancel-Job\n\
             GROUP operation-attributes-tag\n\
             ATTR charset attributes-charset utf-8\n\
             ATTR naturalLanguage attributes-natural-language en\n\
             ATTR uri printer-uri $uri\n\
             ATTR integer job-id $job_id\n\
             ATTR name requesting-user-name operator\n\
             STATUS successful-ok\n",
        );
        self.ipptool(&["-t", "-d", &format!("job_id={job_id}")], &test)
            .await;
    }

    /// Print-Job of `file` (`format`) named `job_name`, sent by ipptool rather than
    /// the gateway: a job the printer has that the gateway did not journal.
    pub async fn print(&self, file: &Path, format: &str, job_name: &str) -> i32 {
        let test = self.test_file(
            "print-job.test",
            "OPERATION Print-Job\n\
             GROUP operation-attributes-tag\n\
             ATTR charset attributes-charset utf-8\n\
             ATTR naturalLanguage attributes-natural-language en\n\
             ATTR uri printer-uri $uri\n\
             ATTR name requesting-user-name pixpress\n\
             ATTR name job-name $job_name\n\
             ATTR mimeMediaType document-format $format\n\
             FILE $filename\n\
             STATUS successful-ok\n\
             DISPLAY job-id\n",
        );
        let file = file.to_str().expect("a UTF-8 path");
        let csv = self
            .ipptool(
                &[
                    "-c",
                    "-f",
                    file,
                    "-d",
                    &format!("job_name={job_name}"),
                    "-d",
                    &format!("format={format}"),
                ],
                &test,
            )
            .await;
        csv.lines()
            .nth(1)
            .and_then(|line| line.trim().parse().ok())
            .unwrap_or_else(|| panic!("no job-id from Print-Job: {csv}"))
    }

    fn test_file(&self, name: &str, body: &str) -> PathBuf {
        let path = self.folder.path().join(name);
        std::fs::write(&path, format!("{{\nNAME \"{name}\"\n{body}}}\n"))
            .expect("writing an ipptool test");
        path
    }

    /// Runs ipptool against the printer; panics with its output when a test fails.
    async fn ipptool(&self, args: &[&str], test: &Path) -> String {
        let out = tokio::process::Command::new(IPPTOOL)
            .args(["-T", "10"])
            .args(args)
            .arg(&self.uri)
            .arg(test)
            .output()
            .await
            .unwrap_or_else(|e| panic!("running {IPPTOOL} ({INSTALL_HINT}): {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "ipptool {args:?} {} failed: {stdout}{}",
            test.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

impl Drop for Ippeveprinter {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The fields of one line of ipptool's CSV (`"a,b"` quoted when it holds commas).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("one field at least").push(c),
        }
    }
    fields
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .expect("making the print command executable");
}

fn running(name: &str) -> bool {
    Command::new("pgrep")
        .args(["-x", name])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// ippeveprinter registers itself with avahi over the system D-Bus when it starts:
/// both must run. Starts them if they do not, or panics saying what to install.
pub fn ensure_daemons() {
    if !running("dbus-daemon") {
        let _ = std::fs::create_dir_all("/run/dbus");
        let started = Command::new("dbus-daemon")
            .args(["--system", "--fork"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            started || running("dbus-daemon"),
            "the system D-Bus is not running and `dbus-daemon --system --fork` failed: \
             {INSTALL_HINT}"
        );
    }
    if !running("avahi-daemon") {
        let started = Command::new("avahi-daemon")
            .arg("-D")
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            started || running("avahi-daemon"),
            "avahi-daemon is not running and `avahi-daemon -D` failed: {INSTALL_HINT}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_keep_quoted_commas() {
        assert_eq!(
            csv_fields("3,abc,canceled,\"job-canceled-by-user,other\",1,pixpress"),
            [
                "3",
                "abc",
                "canceled",
                "job-canceled-by-user,other",
                "1",
                "pixpress"
            ]
        );
    }
}
