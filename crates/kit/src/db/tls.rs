//! TLS to PostgreSQL over rustls (ring; no OpenSSL), with libpq's `sslmode`s.
//!
//! tokio-postgres parses `disable`, `prefer` and `require` only, so `verify-ca` and
//! `verify-full` are taken out of `DATABASE_URL` here and become `require` plus the
//! certificate check they ask for. As in libpq: `prefer` and `require` encrypt without
//! checking the certificate, unless a CA file is given (then they check the chain, as
//! `verify-ca`); `verify-ca` checks that the certificate chains to a trusted CA, not
//! whom it names; `verify-full` checks both. Trusted CAs: `DATABASE_CA_FILE`, else the
//! public (Mozilla) roots. Not done: client certificates, revocation lists, and
//! libpq's `sslrootcert`/`sslcert` URL parameters (tokio-postgres rejects them).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;

use super::BadDatabaseSettings;

/// The TLS every connection to the database is made with.
pub type Tls = tokio_postgres_rustls::MakeRustlsConnect;

/// What the server's certificate must prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Nothing: the connection is encrypted, the server unauthenticated.
    Nothing,
    /// That it chains to a trusted CA (`verify-ca`).
    Chain,
    /// That it chains to a trusted CA and names the host connected to (`verify-full`).
    ChainAndHost,
}

/// `DATABASE_URL` as tokio-postgres takes it, and the TLS its `sslmode` asks for.
pub(super) fn parse(
    url: &str,
    ca_file: Option<&Path>,
) -> Result<(tokio_postgres::Config, Tls), BadDatabaseSettings> {
    let (url, verify) = take_verify_modes(url);
    let mut config = tokio_postgres::Config::from_str(&url).map_err(BadDatabaseSettings::Url)?;
    let check = match verify {
        Some(check) => {
            config.ssl_mode(SslMode::Require);
            check
        }
        None if ca_file.is_some() => Check::Chain,
        None => Check::Nothing,
    };
    let roots = match ca_file {
        Some(path) => read_ca_file(path)?,
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    Ok((config, tls(check, roots)?))
}

/// Takes `sslmode=verify-ca|verify-full` out of a `postgres://` URL's query: the
/// URL left, and the check the last `sslmode` asks for if it was one of them.
fn take_verify_modes(url: &str) -> (String, Option<Check>) {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let Some((base, query)) = url.split_once('?').filter(|_| is_url) else {
        return (url.to_owned(), None);
    };
    let mut check = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let Some((key, value)) = form_urlencoded::parse(pair.as_bytes()).next() else {
                return true;
            };
            if key != "sslmode" {
                return true;
            }
            check = match &*value {
                "verify-ca" => Some(Check::Chain),
                "verify-full" => Some(Check::ChainAndHost),
                _ => None,
            };
            check.is_none()
        })
        .collect();
    let url = match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", kept.join("&")),
    };
    (url, check)
}

fn read_ca_file(path: &Path) -> Result<RootCertStore, BadDatabaseSettings> {
    let bad = |reason: String| BadDatabaseSettings::CaFile {
        path: path.to_owned(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(roots)
}

fn tls(check: Check, roots: RootCertStore) -> Result<Tls, BadDatabaseSettings> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = ServerCheck {
        check,
        roots,
        algorithms: provider.signature_verification_algorithms,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(BadDatabaseSettings::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Tls::new(config))
}

/// Checks the server's certificate as far as the `sslmode` asks; the handshake's
/// signatures are always checked (they prove the server holds the certificate's key).
#[derive(Debug)]
struct ServerCheck {
    check: Check,
    roots: RootCertStore,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.check != Check::Nothing {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                &self.roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
            if self.check == Check::ChainAndHost {
                verify_server_name(&cert, server_name)?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_leave_the_url_and_the_rest_of_its_query_stays() {
        let cases = [
            (
                "postgres://h/db?sslmode=verify-full",
                "postgres://h/db",
                Some(Check::ChainAndHost),
            ),
            (
                "postgres://h/db?options=-c%20a%3Db&sslmode=verify-ca&user=u",
                "postgres://h/db?options=-c%20a%3Db&user=u",
                Some(Check::Chain),
            ),
            (
                "postgres://h/db?sslmode=require",
                "postgres://h/db?sslmode=require",
                None,
            ),
            // The last sslmode counts, as in tokio-postgres.
            (
                "postgres://h/db?sslmode=verify-full&sslmode=disable",
                "postgres://h/db?sslmode=disable",
                None,
            ),
            ("host=h sslmode=require", "host=h sslmode=require", None),
        ];
        for (url, left, check) in cases {
            assert_eq!(take_verify_modes(url), (left.to_owned(), check), "{url}");
        }
    }

    #[test]
    fn verify_modes_become_require() {
        let (config, _) = parse("postgres://h/db?sslmode=verify-full", None).unwrap();
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let missing = Path::new("/nonexistent/ca.pem");
        let empty = std::env::current_exe().unwrap(); // a file, but no PEM in it
        for path in [missing, &empty] {
            let result = parse("postgres://h/db?sslmode=verify-full", Some(path));
            assert!(
                matches!(result, Err(BadDatabaseSettings::CaFile { .. })),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn an_unknown_sslmode_is_refused() {
        assert!(matches!(
            parse("postgres://h/db?sslmode=verify-everything", None),
            Err(BadDatabaseSettings::Url(_))
        ));
    }
}
