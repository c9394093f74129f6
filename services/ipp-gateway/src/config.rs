//! ipp-gateway settings (DESIGN.md §12); `ipp-gateway --help` lists them. The
//! printer list is validated here, at start: a gateway with a misspelt printer
//! refuses to start rather than losing jobs to it later.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use pixpress_kit::config::CommonArgs;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ipp-gateway",
    version,
    about = "An HTTP printer to print-service that prints on real printers over IPP \
             (IPP Everywhere printers, CUPS queues). Settings come from the environment."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8084")]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub common: CommonArgs,
    /// The printers, as `name=uri` pairs separated by commas, e.g.
    /// `office=ipp://printer.local/ipp/print,lab=ipps://cups.lab:631/printers/Lab`.
    /// Names are `a-z 0-9 - _`, unique; print-service reaches one at
    /// `http://<gateway>/printers/{name}`. URIs are `ipp://` (HTTP) or `ipps://`
    /// (HTTPS), port 631 unless given.
    #[arg(long, env = "IPP_PRINTERS", default_value = "")]
    pub ipp_printers: PrinterList,
    /// Milliseconds between two Get-Job-Attributes of a job being printed.
    #[arg(long, env = "IPP_POLL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub ipp_poll_ms: u64,
    /// Standard Webhooks secret (`whsec_…`) callbacks are signed with.
    #[arg(long, env = "PRINTER_CALLBACK_SECRET", hide_env_values = true)]
    pub printer_callback_secret: Option<String>,
    /// Folder of the gateway's job journal: every job it acknowledged, the printer's
    /// job id, the callbacks delivered, plus the fetched images of unfinished jobs.
    /// Replayed at start: a restarted gateway resumes following its jobs and sends
    /// none twice. Created if missing. Unset: jobs live in memory and are lost at exit.
    #[arg(long, env = "IPP_STATE_DIR")]
    pub ipp_state_dir: Option<PathBuf>,
    /// Largest image fetched from a job's `image_url`, in bytes; larger ones fail
    /// the job (`image_unreachable`: the printer cannot have it).
    #[arg(long, env = "IPP_MAX_IMAGE_BYTES", default_value_t = 64 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ipp_max_image_bytes: u64,
    /// Milliseconds one fetch of an image may take (connecting, redirects, body).
    #[arg(long, env = "IPP_FETCH_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ipp_fetch_timeout_ms: u64,
    /// Milliseconds one IPP request may take (Print-Job carries the whole image).
    #[arg(long, env = "IPP_TIMEOUT_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ipp_timeout_ms: u64,
    /// Accept any TLS certificate from `ipps://` printers. Printers ship self-signed
    /// certificates; turn this on only for printers on a network you trust.
    #[arg(long, env = "IPP_TLS_ACCEPT_INVALID_CERTS", default_value_t = false)]
    pub ipp_tls_accept_invalid_certs: bool,
}

impl Config {
    /// Defaults on an ephemeral loopback port, for tests and the local stack.
    pub fn local(printers: PrinterList) -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            common: CommonArgs::default(),
            ipp_printers: printers,
            ipp_poll_ms: 1000,
            printer_callback_secret: None,
            ipp_state_dir: None,
            ipp_max_image_bytes: 64 * 1024 * 1024,
            ipp_fetch_timeout_ms: 30_000,
            ipp_timeout_ms: 60_000,
            ipp_tls_accept_invalid_certs: false,
        }
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.ipp_poll_ms)
    }
}

/// A printer the gateway drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterEntry {
    pub name: String,
    pub uri: PrinterUri,
}

/// The configured printers, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrinterList(pub Vec<PrinterEntry>);

impl PrinterList {
    /// One printer `name` at `uri`, for tests and the local stack.
    pub fn one(name: &str, uri: &str) -> Result<Self, String> {
        format!("{name}={uri}").parse()
    }
}

impl FromStr for PrinterList {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut printers = Vec::new();
        let mut names = HashSet::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, uri) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not `name=ipp://host/path`"))?;
            let name = name.trim();
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid_name {
                return Err(format!(
                    "printer name `{name}` must be 1 to 64 of a-z, 0-9, `-` and `_`"
                ));
            }
            if !names.insert(name.to_owned()) {
                return Err(format!("printer name `{name}` is given twice"));
            }
            let uri = uri
                .trim()
                .parse()
                .map_err(|e| format!("printer `{name}`: {e}"))?;
            printers.push(PrinterEntry {
                name: name.to_owned(),
                uri,
            });
        }
        Ok(PrinterList(printers))
    }
}

/// An `ipp://` or `ipps://` printer URI, and the `http(s)://` URL its requests are
/// POSTed to (RFC 8010 §4, RFC 7472: port 631 unless given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterUri {
    ipp: String,
    http: String,
}

impl PrinterUri {
    /// The URI as configured, sent as `printer-uri` in every request.
    pub fn as_str(&self) -> &str {
        &self.ipp
    }

    /// Where requests are POSTed.
    pub fn http_url(&self) -> &str {
        &self.http
    }
}

impl fmt::Display for PrinterUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ipp)
    }
}

impl FromStr for PrinterUri {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("`{text}` is not an ipp:// or ipps:// URI"))?;
        let http_scheme = match scheme.to_ascii_lowercase().as_str() {
            "ipp" => "http",
            "ipps" => "https",
            other => return Err(format!("`{text}`: scheme `{other}` is not ipp or ipps")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') || text.contains(char::is_whitespace) {
            return Err(format!("`{text}` has no usable host"));
        }
        // The host may be a bracketed IPv6 address, whose colons are not a port's.
        let after_host = match authority.strip_prefix('[') {
            Some(v6) => v6.split_once(']').map_or("", |(_, after)| after),
            None => authority,
        };
        let has_port = after_host
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
        let authority = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:631")
        };
        let http = format!("{http_scheme}://{authority}{path}");
        reqwest::Url::parse(&http).map_err(|e| format!("`{text}`: {e}"))?;
        Ok(Self {
            ipp: text.to_owned(),
            http,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_uris_map_to_http_with_port_631_by_default() {
        for (uri, http) in [
            (
                "ipp://printer.local/ipp/print",
                "http://printer.local:631/ipp/print",
            ),
            (
                "ipp://127.0.0.1:8631/ipp/print",
                "http://127.0.0.1:8631/ipp/print",
            ),
            (
                "ipps://cups:443/printers/Lab",
                "https://cups:443/printers/Lab",
            ),
            ("ipp://[::1]/ipp/print", "http://[::1]:631/ipp/print"),
            ("ipp://[::1]:9100/ipp/print", "http://[::1]:9100/ipp/print"),
        ] {
            let parsed: PrinterUri = uri.parse().unwrap();
            assert_eq!((parsed.as_str(), parsed.http_url()), (uri, http));
        }
    }

    #[test]
    fn a_printer_list_names_each_printer_once_with_an_ipp_uri() {
        let list: PrinterList = "office=ipp://a/ipp/print, lab-2=ipps://b:631/x"
            .parse()
            .unwrap();
        let names: Vec<_> = list.0.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["office", "lab-2"]);
        assert_eq!("".parse::<PrinterList>().unwrap(), PrinterList::default());
        for (bad, says) in [
            ("office", "is not `name=ipp://host/path`"),
            ("Office=ipp://a/p", "must be 1 to 64"),
            ("a=ipp://x/p,a=ipp://y/p", "given twice"),
            ("a=http://x/p", "is not ipp or ipps"),
            ("a=ipp://", "no usable host"),
        ] {
            let err = bad.parse::<PrinterList>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
