//! Logging: env_logger with the request id of the current request on every line.

use std::io::Write;

use crate::request_id;

/// Dependencies that narrate every request at `info`; quiet unless asked for.
const CHATTY: [&str; 4] = ["tracing::span", "s3s", "s3s_fs", "tokio_postgres"];

/// Initializes the global logger once; later calls (tests, the stack) are no-ops.
pub fn init_logging(filter: &str) {
    let mut directives = filter.to_owned();
    for target in CHATTY {
        if !filter.contains(target) {
            directives.push_str(&format!(",{target}=warn"));
        }
    }
    let _ = env_logger::Builder::new()
        .parse_filters(&directives)
        .format(|buf, record| {
            let ts = buf.timestamp_millis();
            let level = record.level();
            match request_id::current() {
                Some(id) => writeln!(
                    buf,
                    "{ts} {level:<5} {} [request_id={id}] {}",
                    record.target(),
                    record.args()
                ),
                None => writeln!(buf, "{ts} {level:<5} {} {}", record.target(), record.args()),
            }
        })
        .try_init();
}
