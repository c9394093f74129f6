//! pixpress-bench: the benchmark harness. It starts what each scenario needs itself
//! — the services in-process on loopback ports (from their libraries), a throwaway
//! database, the in-process S3, and for `footprint` the service binaries as child
//! processes — drives them with wrk (or, for `lifecycle`, an open-loop driver of its
//! own), with authentication on everywhere, and prints one table: every figure
//! beside a reference measured in the same run, their ratio and the target.
//!
//! `pixpress-bench all` runs every scenario (under 10 minutes on 2 cores);
//! `pixpress-bench <scenario>` runs one; `--quick` runs each for a few seconds (CI:
//! figures are printed, never asserted). BENCHMARKS.md explains each scenario.

mod alloc;
mod images;
mod postgres;
mod report;
mod scenarios;
mod services;
mod system;
mod wrk;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};

use report::Row;
use scenarios::Ctx;

#[global_allocator]
static ALLOC: alloc::CountingAlloc = alloc::CountingAlloc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    All,
    Health,
    Intake,
    Overload,
    Dispatch,
    Thumbnail,
    Download,
    Footprint,
    /// The job lifecycle at the highest rate sustained, open loop.
    Lifecycle,
    /// How soon an image added by URL is `ready`.
    ImageLatency,
    /// `GET /print/jobs/{id}` against pgbench's select by primary key.
    GetJob,
    /// Not in `all`: the cost of each layer the kit wraps around a route.
    Layers,
    /// The bare actix-web reference app as a process of its own (for `footprint`).
    #[value(hide = true)]
    BareServer,
}

impl Scenario {
    const EVERY: [Scenario; 10] = [
        Scenario::Health,
        Scenario::Intake,
        Scenario::Overload,
        Scenario::Dispatch,
        Scenario::Lifecycle,
        Scenario::GetJob,
        Scenario::Thumbnail,
        Scenario::Download,
        Scenario::ImageLatency,
        Scenario::Footprint,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::All => "all",
            Scenario::Health => "health",
            Scenario::Intake => "intake",
            Scenario::Overload => "overload",
            Scenario::Dispatch => "dispatch",
            Scenario::Thumbnail => "thumbnail",
            Scenario::Download => "download",
            Scenario::Footprint => "footprint",
            Scenario::Lifecycle => "lifecycle",
            Scenario::ImageLatency => "image-latency",
            Scenario::GetJob => "get-job",
            Scenario::Layers => "layers",
            Scenario::BareServer => "bare-server",
        }
    }

    fn needs_wrk(self) -> bool {
        !matches!(
            self,
            Scenario::Thumbnail | Scenario::Download | Scenario::Lifecycle | Scenario::ImageLatency
        )
    }

    async fn run(self, ctx: &mut Ctx) -> anyhow::Result<()> {
        match self {
            Scenario::Health => scenarios::health::run(ctx).await,
            Scenario::Intake => scenarios::intake::run(ctx).await,
            Scenario::Overload => scenarios::overload::run(ctx).await,
            Scenario::Dispatch => scenarios::dispatch::run(ctx).await,
            Scenario::Thumbnail => scenarios::thumbnail::run(ctx).await,
            Scenario::Download => scenarios::download::run(ctx).await,
            Scenario::Footprint => scenarios::footprint::run(ctx).await,
            Scenario::Lifecycle => scenarios::lifecycle::run(ctx).await,
            Scenario::ImageLatency => scenarios::image_latency::run(ctx).await,
            Scenario::GetJob => scenarios::get_job::run(ctx).await,
            Scenario::Layers => scenarios::layers::run(ctx).await,
            Scenario::All | Scenario::BareServer => Ok(()),
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "pixpress-bench",
    about = "Benchmarks pixpress against references measured in the same run; prints one table."
)]
struct Cli {
    /// What to run.
    #[arg(value_enum, default_value = "all")]
    scenario: Scenario,
    /// A few seconds per scenario (CI): figures are printed, never asserted.
    #[arg(long)]
    quick: bool,
    /// Write the `thumbnail` inputs to this directory and exit (to time other
    /// decoders, such as `djpeg -scale 1/8`, on the same bytes).
    #[arg(long, value_name = "DIR")]
    dump: Option<std::path::PathBuf>,
    /// `lifecycle`: one window at this many jobs/s instead of searching for the
    /// highest rate sustained (to profile at a given rate).
    #[arg(long, value_name = "JOBS_PER_SECOND")]
    rate: Option<f64>,
    /// Load `pg_stat_statements` into the harness's own PostgreSQL, so `lifecycle`
    /// prints the statements per job (costs every statement a little).
    #[arg(long)]
    pg_stat_statements: bool,
    /// Where `bare-server` listens.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:0", hide = true)]
    addr: SocketAddr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // First, before any thread: it may set TEST_DATABASE_URL.
    let needs_database = cli.dump.is_none() && cli.scenario != Scenario::BareServer;
    let _server = match needs_database
        .then(|| postgres::ensure_server(cli.pg_stat_statements))
        .transpose()
    {
        Ok(server) => server.flatten(),
        Err(e) => {
            eprintln!("pixpress-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pixpress-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(dir) = &cli.dump {
        return match scenarios::thumbnail::dump(dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pixpress-bench --dump: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.scenario == Scenario::BareServer {
        return runtime.block_on(bare_server(cli.addr));
    }
    runtime.block_on(run(cli))
}

async fn bare_server(addr: SocketAddr) -> ExitCode {
    let served = async {
        let listener = pixpress_kit::server::bind(addr)?;
        let server = services::bare_health_server(listener)?;
        let handle = server.handle();
        let task = tokio::spawn(server);
        pixpress_kit::server::shutdown_signal().await;
        handle.stop(true).await;
        task.await??;
        anyhow::Ok(())
    };
    match served.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pixpress-bench bare-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The server the scenarios' databases are on, and whether it is durable.
async fn database_description() -> String {
    let db = services::database().await;
    let client = db.client().await;
    postgres::describe(&client).await
}

async fn run(cli: Cli) -> ExitCode {
    system::raise_fd_limit();
    let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned());
    pixpress_kit::telemetry::init_logging(&log, pixpress_kit::telemetry::LogFormat::Text);

    let chosen: Vec<Scenario> = match cli.scenario {
        Scenario::All => Scenario::EVERY.to_vec(),
        one => vec![one],
    };
    if chosen.iter().any(|s| s.needs_wrk()) && !wrk::available() {
        eprintln!("{}", wrk::MISSING);
        return ExitCode::FAILURE;
    }

    let load_before = system::load_average();
    let started = Instant::now();
    let mode = if cli.quick { " --quick" } else { "" };
    eprintln!(
        "pixpress-bench {}{mode}: {}, load average {load_before}",
        cli.scenario.name(),
        system::machine()
    );
    let mut ctx = Ctx {
        quick: cli.quick,
        rate: cli.rate,
        rows: Vec::new(),
    };
    let database = database_description().await;
    eprintln!("   database: {database}");
    let mut failed = false;
    for scenario in chosen {
        eprintln!("== {}", scenario.name());
        let scenario_started = Instant::now();
        if let Err(e) = scenario.run(&mut ctx).await {
            eprintln!("   {} failed: {e:#}", scenario.name());
            ctx.push(Row::failed(scenario.name(), format!("{e:#}")));
            failed = true;
        }
        eprintln!(
            "   ({:.1} s, load average {})",
            scenario_started.elapsed().as_secs_f64(),
            system::load_average()
        );
    }

    println!();
    println!(
        "pixpress-bench {}{mode} — {}, {database}; load average {load_before} before, {} after; {:.0} s",
        cli.scenario.name(),
        system::machine(),
        system::load_average(),
        started.elapsed().as_secs_f64()
    );
    println!();
    print!("{}", report::render(&ctx.rows, cli.quick));
    if cli.quick {
        println!("\n(--quick: short runs; figures are indicative and not asserted)");
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
