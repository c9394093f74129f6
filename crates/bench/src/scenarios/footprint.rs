//! `footprint`: resident memory (VmRSS) of each service run as its own binary (what
//! an operator sizes a container for), idle after start, and at the end of an intake
//! load (64 connections of `POST /print/jobs`, as in `intake`). Authentication is
//! on (`AUTH_JWT_SECRET`, and each service's token for the services it calls). The binaries are the
//! release builds next to this one; under `cargo run` they are (re)built first.
//!
//! Reference: the same figures for a bare actix-web server (this binary's hidden
//! `bare-server` mode: the `health` reference app) — what the framework alone
//! holds, idle and after serving 64 connections for as long.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pixpress_testkit::s3::TestBucket;

use crate::report::Row;
use crate::scenarios::{intake, note, Ctx};
use crate::services;
use crate::system::resident_kib;
use crate::wrk::{self, Load};

const SERVICES: [(&str, &str); 4] = [
    ("printer-sim", "pixpress-printer-sim"),
    ("management-api", "pixpress-management"),
    ("download-service", "pixpress-download"),
    ("print-service", "pixpress-print"),
];

/// A service binary running as a child process; SIGTERM and wait on drop.
struct ChildService {
    name: &'static str,
    url: String,
    child: std::process::Child,
}

impl ChildService {
    fn start(
        name: &'static str,
        path: &Path,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        Self::start_on(pixpress_testkit::http::free_port(), name, path, args, env)
    }

    fn start_on(
        port: u16,
        name: &'static str,
        path: &Path,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(path)
            .args(args)
            .env("HTTP_ADDR", &addr)
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        Ok(Self {
            name,
            url: format!("http://{addr}"),
            child,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss_mib(&self) -> f64 {
        resident_kib(self.pid()).map_or(f64::NAN, |(rss, _)| rss as f64 / 1024.0)
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The release binaries beside this one, built first when run by cargo.
fn binaries() -> anyhow::Result<PathBuf> {
    let dir = std::env::current_exe()?
        .parent()
        .context("the harness binary has a folder")?
        .to_path_buf();
    if let Ok(cargo) = std::env::var("CARGO") {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut command = Command::new(cargo);
        // The same packages as .ci/bench-quick.sh builds: cargo unifies features per
        // invocation, so another set would rebuild dependencies.
        command
            .current_dir(root)
            .args(["build", "--release", "--bins", "-p", "pixpress-bench"]);
        // `cargo run` gives this process the package's CARGO_PKG_*, CARGO_MANIFEST_* and
        // friends; build scripts (ring's) rerun when those change, so passing them on
        // would rebuild half the tree here and again on the next plain build.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let from_cargo_run = [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_PRIMARY_",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix))
                || name == "OUT_DIR"
                || name == "CARGO_TARGET_TMPDIR";
            if from_cargo_run {
                command.env_remove(name.as_ref());
            }
        }
        for (_, package) in SERVICES {
            command.args(["-p", package]);
        }
        note("building the service binaries (cargo build --release --bins)");
        let status = command.stdout(Stdio::null()).status()?;
        if !status.success() {
            bail!("cargo build of the service binaries failed ({status})");
        }
    }
    for (binary, _) in SERVICES {
        if !dir.join(binary).is_file() {
            bail!(
                "{} is missing: build the services with `cargo build --release --bins`",
                dir.join(binary).display()
            );
        }
    }
    Ok(dir)
}

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let dir = binaries()?;
    let db = services::database().await;
    let bucket = TestBucket::new().await;
    let printer_secret = services::secret();
    let download_secret = services::secret();
    // Authentication on, as the stack sets it up.
    let auth = services::Auth::new();
    let jwt = ("AUTH_JWT_SECRET", auth.secret().to_owned());
    let management_port = pixpress_testkit::http::free_port();
    let management_url = format!("http://127.0.0.1:{management_port}");

    let printer = ChildService::start(
        "printer-sim",
        &dir.join("printer-sim"),
        &[],
        &[
            ("PRINTER_CALLBACK_SECRET", printer_secret.clone()),
            ("PRINTER_DELAY_MS", "0".into()),
        ],
    )?;
    let download = ChildService::start(
        "download-service",
        &dir.join("download-service"),
        &[],
        &[
            ("DATABASE_URL", db.url.clone()),
            ("S3_ENDPOINT", bucket.endpoint.clone()),
            ("S3_REGION", bucket.region.clone()),
            ("S3_BUCKET", bucket.bucket.clone()),
            ("S3_ACCESS_KEY", bucket.access_key.clone()),
            ("S3_SECRET_KEY", bucket.secret_key.clone()),
            ("DOWNLOAD_CALLBACK_SECRET", download_secret.clone()),
            ("DOWNLOAD_ALLOW_PRIVATE_NETWORKS", "true".into()),
            ("MANAGEMENT_URL", management_url.clone()),
            ("MANAGEMENT_TOKEN", auth.service_token("download-service")),
            jwt.clone(),
        ],
    )?;
    let management = ChildService::start_on(
        management_port,
        "management-api",
        &dir.join("management-api"),
        &[],
        &[
            ("PRINTER_URL", printer.url.clone()),
            ("DOWNLOAD_URL", download.url.clone()),
            ("DOWNLOAD_CALLBACK_SECRET", download_secret.clone()),
            ("MANAGEMENT_PUBLIC_URL", management_url.clone()),
            ("DOWNLOAD_TOKEN", auth.service_token("management-api")),
            jwt.clone(),
        ],
    )?;
    let print = ChildService::start(
        "print-service",
        &dir.join("print-service"),
        &[],
        &[
            ("DATABASE_URL", db.url.clone()),
            ("MANAGEMENT_URL", management.url.clone()),
            ("PRINTER_CALLBACK_SECRET", printer_secret.clone()),
            ("DISPATCH_ENABLED", "false".into()),
            ("MANAGEMENT_TOKEN", auth.service_token("print-service")),
            jwt,
        ],
    )?;
    // This very binary, even if the build above replaced the file meanwhile.
    let exe = Path::new("/proc/self/exe");
    let bare = ChildService::start("bare actix-web", exe, &["bare-server"], &[])?;
    for service in [&printer, &download, &management, &print, &bare] {
        services::wait_ok(&service.url, "/health").await?;
    }
    services::wait_ok(&print.url, "/ready").await?;
    services::wait_ok(&download.url, "/ready").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = [&printer, &management, &download, &print];
    let idle: Vec<f64> = all.iter().map(|s| s.rss_mib()).collect();
    let bare_idle = bare.rss_mib();

    let job = services::ready_image(&management.url, &auth, 1, intake::PHOTO_URL).await?;
    let body = format!(r#"{{"user_id":{},"file_id":{}}}"#, job.user_id, job.file_id);
    let duration = ctx.secs(5, 2);
    let load = Load::post_json(
        format!("{}/print/jobs", print.url),
        body,
        intake::CONNECTIONS,
        duration,
    )
    .authorized(auth.user(job.user_id));
    let out = wrk::run(&load).await?;
    let loaded: Vec<f64> = all.iter().map(|s| s.rss_mib()).collect();
    wrk::run(&Load::get(
        format!("{}/health", bare.url),
        intake::CONNECTIONS,
        duration,
    ))
    .await?;
    let bare_loaded = bare.rss_mib();
    note(format!(
        "intake on the print-service binary: {:.0} req/s; bare actix-web {bare_idle:.1} MiB idle, {bare_loaded:.1} MiB after load",
        out.rate()
    ));

    for ((service, idle), loaded) in all.iter().zip(&idle).zip(&loaded) {
        note(format!(
            "{}: {idle:.1} MiB idle, {loaded:.1} MiB after intake",
            service.name
        ));
        ctx.push(Row::info(
            "footprint",
            format!("{} RSS idle / after intake", service.name),
            format!("{idle:.1} / {loaded:.1} MiB"),
            format!("{bare_idle:.1} / {bare_loaded:.1} MiB bare actix-web"),
            Some(loaded / bare_loaded),
        ));
    }

    drop((print, management, download, printer, bare));
    drop(db); // drops the scenario's database
    Ok(())
}
