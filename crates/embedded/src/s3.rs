//! An S3-compatible server in-process: the S3 API over a local folder (`s3s-fs`),
//! with SigV4 signatures checked against one access key / secret key (`s3s`), so the
//! local stack and the tests exercise the same client code, signing and presigned
//! URLs included, as they would against MinIO or AWS.
//!
//! Layout on disk is s3s-fs's: one folder per bucket under the root, one file per
//! object, with Content-Type, Cache-Control and user metadata in hidden sidecar files.
//! Data survives a stop: a server started again on the same root serves it back.
//!
//! Deliberately not here: TLS, virtual-hosted-style addressing (clients must use
//! path-style URLs), several users or bucket policies.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

#[derive(Debug, thiserror::Error)]
pub enum S3ServerError {
    #[error("cannot use {path} as the S3 data folder: {source}")]
    DataFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "invalid bucket name {0:?}: 3 to 63 characters, lowercase letters, digits, \
         '-' and '.', starting and ending with a letter or digit"
    )]
    InvalidBucketName(String),
}

/// How to start a server.
#[derive(Clone)]
pub struct S3Options {
    /// Folder holding the buckets; created when missing, reused otherwise.
    pub root: PathBuf,
    /// Where to listen; port 0 picks a free port.
    pub addr: SocketAddr,
    pub access_key: String,
    pub secret_key: String,
    /// The region clients should sign for. The server accepts any region in the
    /// signature scope; this is only handed back to clients.
    pub region: String,
}

impl std::fmt::Debug for S3Options {
    // The secret key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("root", &self.root)
            .field("addr", &self.addr)
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// A running server. It stops serving, open connections included, on [`stop`] or
/// when dropped.
///
/// [`stop`]: S3Server::stop
pub struct S3Server {
    options: S3Options,
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<()>>,
}

impl S3Server {
    /// Binds the address and serves on the current tokio runtime.
    ///
    /// The socket has SO_REUSEADDR, so a server stopped a moment ago can be started
    /// again on the same port (and the same root) to simulate S3 coming back.
    pub async fn start(options: S3Options) -> Result<S3Server, S3ServerError> {
        let data_folder = |source| S3ServerError::DataFolder {
            path: options.root.clone(),
            source,
        };
        tokio::fs::create_dir_all(&options.root)
            .await
            .map_err(data_folder)?;
        let fs = s3s_fs::FileSystem::new(&options.root)
            .map_err(|e| data_folder(std::io::Error::other(format!("{e:?}"))))?;

        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(
            options.access_key.clone(),
            options.secret_key.clone(),
        ));
        let service = builder.build();

        let listener = bind(options.addr).map_err(|source| S3ServerError::Bind {
            addr: options.addr,
            source,
        })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| S3ServerError::Bind {
                addr: options.addr,
                source,
            })?;

        let (shutdown, stopped) = oneshot::channel();
        let serving = tokio::spawn(serve(listener, service, stopped));
        log::debug!(
            "in-process S3 server on http://{local_addr} serving {}",
            options.root.display()
        );
        Ok(S3Server {
            options,
            local_addr,
            shutdown: Some(shutdown),
            serving: Some(serving),
        })
    }

    /// Base URL for path-style requests, e.g. `http://127.0.0.1:9000`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn root(&self) -> &Path {
        &self.options.root
    }

    pub fn access_key(&self) -> &str {
        &self.options.access_key
    }

    pub fn secret_key(&self) -> &str {
        &self.options.secret_key
    }

    pub fn region(&self) -> &str {
        &self.options.region
    }

    /// Creates a bucket (its folder) if it does not exist yet, without going
    /// through the API: for setting up before any client is configured.
    pub async fn create_bucket(&self, name: &str) -> Result<(), S3ServerError> {
        if !is_valid_bucket_name(name) {
            return Err(S3ServerError::InvalidBucketName(name.to_owned()));
        }
        let path = self.options.root.join(name);
        tokio::fs::create_dir_all(&path)
            .await
            .map_err(|source| S3ServerError::DataFolder { path, source })
    }

    /// Stops accepting, closes every open connection (requests in flight fail) and
    /// returns once the port is released. The data stays in the root folder.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(serving) = self.serving.take() {
            let _ = serving.await;
        }
        log::debug!("in-process S3 server on http://{} stopped", self.local_addr);
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Dropping the accept loop drops its listener and its set of connections,
        // which aborts them; nothing can be awaited here.
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The accept loop. Every connection is a task in a set owned by this loop, so that
/// stopping the loop also closes connections clients keep alive in their pools:
/// a stopped server must look down to them, not only to new clients.
async fn serve(listener: TcpListener, service: S3Service, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service.clone());
                    connections.spawn(async move {
                        if let Err(e) = connection.await {
                            log::debug!("in-process S3 connection ended: {e}");
                        }
                    });
                }
                // Running out of file descriptors and the like: keep serving.
                Err(e) => log::warn!("in-process S3 server cannot accept: {e}"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// S3's bucket naming rules, which also keep the name a single path component.
fn is_valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.')
        && edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && !name.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(root: &Path, port: u16) -> S3Options {
        S3Options {
            root: root.to_path_buf(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            access_key: "test-access".into(),
            secret_key: "test-secret".into(),
            region: "us-east-1".into(),
        }
    }

    async fn raw_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok(response)
    }

    #[tokio::test]
    async fn unsigned_requests_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = S3Server::start(options(dir.path(), 0))
            .await
            .expect("start");
        server.create_bucket("photos").await.expect("bucket");
        let response = raw_get(server.addr(), "/photos/").await.expect("response");
        assert!(response.starts_with("HTTP/1.1 403"), "{response}");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_stopped_server_refuses_connections_and_restarts_on_the_same_port() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = S3Server::start(options(dir.path(), 0))
            .await
            .expect("start");
        let addr = server.addr();
        // A keep-alive connection opened before the stop must not keep serving.
        let open = tokio::net::TcpStream::connect(addr).await.expect("connect");
        raw_get(addr, "/").await.expect("served before stop");
        server.stop().await;

        // Nothing serves HTTP there any more. (A bare connect proves nothing: Linux may
        // pick the freed port as the client's own and connect the socket to itself.)
        let after =
            tokio::time::timeout(std::time::Duration::from_secs(2), raw_get(addr, "/")).await;
        let served = matches!(&after, Ok(Ok(response)) if response.starts_with("HTTP/"));
        assert!(!served, "still served after stop: {after:?}");
        let mut open = open;
        let mut buf = [0u8; 1];
        let read = tokio::io::AsyncReadExt::read(&mut open, &mut buf).await;
        assert!(matches!(read, Ok(0) | Err(_)), "old connection still open");

        let again = S3Server::start(options(dir.path(), addr.port()))
            .await
            .expect("restart on the same port");
        assert_eq!(again.port(), addr.port());
        raw_get(addr, "/").await.expect("served after restart");
    }

    #[tokio::test]
    async fn bucket_names_cannot_escape_the_root() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = S3Server::start(options(dir.path(), 0))
            .await
            .expect("start");
        for bad in ["..", "../x", "a/b", "UPPER", "ab", "-abc"] {
            assert!(server.create_bucket(bad).await.is_err(), "{bad}");
        }
        server
            .create_bucket("ok-bucket.1")
            .await
            .expect("valid name");
        server
            .create_bucket("ok-bucket.1")
            .await
            .expect("idempotent");
        assert!(dir.path().join("ok-bucket.1").is_dir());
    }
}
