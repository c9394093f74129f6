//! `pixpress-token`: mints an HS256 bearer token for tests and operators.
//!
//! `AUTH_JWT_SECRET=… cargo run -p pixpress-stack --bin pixpress-token -- --sub 1`
//! prints a token for user 1; `--role admin` for an admin, `--role service --sub
//! print-service` for print-service's `MANAGEMENT_TOKEN`.

use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "pixpress-token",
    version,
    about = "Mints an HS256 bearer token"
)]
struct Args {
    /// The secret the services verify with.
    #[arg(long, env = "AUTH_JWT_SECRET", hide_env_values = true)]
    secret: String,
    /// The token's subject: a user id, or a service name.
    #[arg(long)]
    sub: String,
    /// A role to grant (repeatable): `admin`, `service`.
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
}

fn main() {
    let args: Args = pixpress_kit::config::parse();
    let roles: Vec<&str> = args.roles.iter().map(String::as_str).collect();
    println!(
        "{}",
        pixpress_kit::auth::mint(
            &args.secret,
            &args.sub,
            &roles,
            Duration::from_secs(args.ttl)
        )
    );
}
