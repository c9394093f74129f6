//! Logging: env_logger with the request id of the current request on every line.

use std::io::Write;

use crate::request_id;

/// Initializes the global logger once; later calls (tests, the stack) are no-ops.
pub fn init_logging(filter: &str) {
    let _ = env_logger::Builder::new()
        .parse_filters(filter)
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
