//! TLS to PostgreSQL (DATABASE_URL's `sslmode`, DATABASE_CA_FILE) against a real
//! server that accepts TLS connections only, with a certificate made here: signed by
//! a CA of the test's own, for 127.0.0.1 and localhost.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pixpress_kit::config::DatabaseArgs;
use pixpress_kit::db::{ConnectError, Connector, Database, DbError};
use pixpress_kit::notify::{listen, Announcer};
use pixpress_kit::server::Background;
use pixpress_testkit::cluster::{OwnServer, ServerCertificate};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::sync::{Notify, OnceCell};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(5);

/// The TLS-only server every test here connects to, and the CA files.
struct Fixture {
    server: OwnServer,
    /// The CA that signed the server's certificate.
    ca_file: PathBuf,
    /// A CA that signed nothing the server has.
    other_ca_file: PathBuf,
    _files: tempfile::TempDir,
}

static FIXTURE: OnceCell<Fixture> = OnceCell::const_new();

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

async fn fixture() -> &'static Fixture {
    FIXTURE
        .get_or_init(|| async {
            let ca = new_ca("pixpress test CA");
            let key = KeyPair::generate().unwrap();
            let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &*ca)
                .unwrap();
            let server = OwnServer::start_with_tls(ServerCertificate {
                cert_pem: &cert.pem(),
                key_pem: &key.serialize_pem(),
            })
            .await;
            let files = tempfile::tempdir().unwrap();
            let ca_file = files.path().join("ca.pem");
            let other_ca_file = files.path().join("other-ca.pem");
            std::fs::write(&ca_file, ca.pem()).unwrap();
            std::fs::write(&other_ca_file, new_ca("another CA").pem()).unwrap();
            Fixture {
                server,
                ca_file,
                other_ca_file,
                _files: files,
            }
        })
        .await
}

/// Settings for the fixture's server: `host` and `query` in the URL, and a CA file.
fn args(host: &str, query: &str, ca_file: Option<&PathBuf>) -> DatabaseArgs {
    let port = FIXTURE.get().expect("the fixture first").server.port();
    let mut args = DatabaseArgs::new(format!(
        "postgres://postgres@{host}:{port}/postgres?{query}"
    ));
    args.database_ca_file = ca_file.cloned();
    args
}

/// Connects once (outside any pool) and says whether the session is encrypted.
async fn session_is_encrypted(args: &DatabaseArgs) -> Result<bool, ConnectError> {
    let (client, driver) = Connector::new(args, DEADLINE).unwrap().open().await?;
    tokio::spawn(driver);
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl answers");
    Ok(row.get("ssl"))
}

/// The server's refusal of `args`, as the error message.
async fn refusal(args: &DatabaseArgs) -> String {
    match session_is_encrypted(args).await {
        Ok(_) => panic!("connected"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn require_gives_the_pool_encrypted_connections() {
    fixture().await;
    let mut background = Background::new();
    let db = Database::start(
        &args("127.0.0.1", "sslmode=require", None),
        DEADLINE,
        &mut background,
    )
    .unwrap();

    let encrypted: bool = db
        .within(async {
            let conn = db.get().await?;
            let row = conn
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await?;
            Ok::<_, DbError>(row.get("ssl"))
        })
        .await
        .expect("a pooled connection over TLS");

    assert!(encrypted);
}

#[tokio::test]
async fn require_carries_listen_and_notify() {
    fixture().await;
    let args = args("127.0.0.1", "sslmode=require", None);
    let stop = CancellationToken::new();
    let wake = Arc::new(Notify::new());
    let connector = Connector::new(&args, DEADLINE).unwrap();
    tokio::spawn(listen(
        connector,
        "kit_tls_test",
        Arc::clone(&wake),
        stop.clone(),
    ));
    let pool = pixpress_kit::db::pool(&args, DEADLINE).unwrap();
    let announcer = Announcer::new(pool, "kit_tls_test");
    tokio::spawn(announcer.clone().run(stop.clone()));

    // The listener subscribes asynchronously: announce until a wake-up arrives.
    let woken = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            announcer.announce();
            let wait = tokio::time::timeout(Duration::from_millis(200), wake.notified());
            if wait.await.is_ok() {
                return;
            }
        }
    })
    .await;
    stop.cancel();

    assert!(woken.is_ok(), "no notification over TLS within 10 s");
}

#[tokio::test]
async fn without_an_sslmode_tls_is_used_when_the_server_offers_it() {
    fixture().await;
    // libpq's default, `prefer`; a server without TLS gets a plain connection.
    let args = args("127.0.0.1", "application_name=kit-tls-test", None);

    assert_eq!(session_is_encrypted(&args).await.ok(), Some(true));
}

#[tokio::test]
async fn verify_full_with_the_ca_file_connects() {
    let f = fixture().await;
    let args = args("127.0.0.1", "sslmode=verify-full", Some(&f.ca_file));

    assert_eq!(session_is_encrypted(&args).await.ok(), Some(true));
}

#[tokio::test]
async fn verify_full_without_the_ca_file_is_refused() {
    fixture().await;
    // The public roots do not include the test's CA.
    let args = args("127.0.0.1", "sslmode=verify-full", None);

    let refusal = refusal(&args).await;

    assert!(refusal.contains("UnknownIssuer"), "{refusal}");
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_host() {
    let f = fixture().await;
    // TCP to 127.0.0.1, but the certificate must name `db.example`.
    let args = args(
        "db.example",
        "hostaddr=127.0.0.1&sslmode=verify-full",
        Some(&f.ca_file),
    );

    let refusal = refusal(&args).await;

    assert!(refusal.contains("not valid for name"), "{refusal}");
}

#[tokio::test]
async fn verify_ca_accepts_a_certificate_for_another_host() {
    let f = fixture().await;
    let args = args(
        "db.example",
        "hostaddr=127.0.0.1&sslmode=verify-ca",
        Some(&f.ca_file),
    );

    assert_eq!(session_is_encrypted(&args).await.ok(), Some(true));
}

#[tokio::test]
async fn require_with_a_ca_file_checks_the_chain() {
    let f = fixture().await;
    // As libpq: given a CA file, `require` checks the chain (as `verify-ca`).
    let args = args("127.0.0.1", "sslmode=require", Some(&f.other_ca_file));

    let refusal = refusal(&args).await;

    assert!(refusal.contains("UnknownIssuer"), "{refusal}");
}

#[tokio::test]
async fn disable_is_refused_by_the_server() {
    fixture().await;
    let args = args("127.0.0.1", "sslmode=disable", None);

    let refusal = refusal(&args).await;

    assert!(refusal.contains("no pg_hba.conf entry"), "{refusal}");
}
