//! An S3 bucket per test: a real S3-compatible server (the embedded one, SigV4
//! checked) on a free port, serving a temporary folder that holds one empty bucket.
//! It can be stopped and started again on the same port with the same data, for
//! tests of what a service does while S3 is down and after it comes back.

use std::net::SocketAddr;

use pixpress_embedded::s3::{S3Options, S3Server};

pub struct TestBucket {
    /// Base URL for path-style requests, e.g. `http://127.0.0.1:40123`.
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// Kept across restarts so the endpoint stays valid.
    port: u16,
    /// `None` while stopped.
    server: Option<S3Server>,
    /// The server's data; removed when the test ends.
    dir: tempfile::TempDir,
}

impl TestBucket {
    /// Starts a server with a fresh, empty bucket. Panics with one clear line when
    /// it cannot (a test cannot run without it).
    pub async fn new() -> TestBucket {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("creating a temp dir: {e}"));
        let options = S3Options {
            root: dir.path().to_path_buf(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            access_key: "pixpress-test".into(),
            secret_key: format!("secret-{}", uuid::Uuid::new_v4().simple()),
            region: "us-east-1".into(),
        };
        let server = S3Server::start(options)
            .await
            .unwrap_or_else(|e| panic!("starting the in-process S3 server: {e}"));
        let bucket = "pixpress".to_owned();
        server
            .create_bucket(&bucket)
            .await
            .unwrap_or_else(|e| panic!("creating bucket {bucket}: {e}"));
        TestBucket {
            endpoint: server.endpoint(),
            bucket,
            access_key: server.access_key().to_owned(),
            secret_key: server.secret_key().to_owned(),
            region: server.region().to_owned(),
            port: server.port(),
            server: Some(server),
            dir,
        }
    }

    /// Takes S3 down: connections are refused, including ones kept alive in a
    /// client's pool. The data is kept for [`restart_server`](Self::restart_server).
    pub async fn stop_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// Brings S3 back on the same endpoint with the same data. Does nothing when
    /// the server is running.
    pub async fn restart_server(&mut self) {
        if self.server.is_some() {
            return;
        }
        let port = self.port;
        let options = S3Options {
            root: self.dir.path().to_path_buf(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            region: self.region.clone(),
        };
        let server = S3Server::start(options)
            .await
            .unwrap_or_else(|e| panic!("restarting the in-process S3 server on port {port}: {e}"));
        self.server = Some(server);
    }

    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `S3_*` settings that point a service process at this bucket.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("S3_ENDPOINT", self.endpoint.clone()),
            ("S3_REGION", self.region.clone()),
            ("S3_BUCKET", self.bucket.clone()),
            ("S3_ACCESS_KEY", self.access_key.clone()),
            ("S3_SECRET_KEY", self.secret_key.clone()),
        ]
    }
}

impl TestBucket {
    /// The keys of the objects stored under `prefix` (read from the server's
    /// folder, so it works while the server is down too).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name();
                // s3s-fs keeps metadata and uploads in hidden files beside objects.
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                if path.is_dir() {
                    walk(&path, base, out);
                } else if let Ok(rel) = path.strip_prefix(base) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        let base = self.dir.path().join(&self.bucket);
        let mut keys = Vec::new();
        walk(&base, &base, &mut keys);
        keys.retain(|k| k.starts_with(prefix));
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn restart_serves_the_same_endpoint_and_bucket() {
        let mut bucket = TestBucket::new().await;
        let endpoint = bucket.endpoint.clone();
        assert!(bucket.dir.path().join(&bucket.bucket).is_dir());

        bucket.stop_server().await;
        assert!(!bucket.is_running());
        assert!(tokio::net::TcpStream::connect(("127.0.0.1", bucket.port()))
            .await
            .is_err());

        bucket.restart_server().await;
        assert_eq!(bucket.endpoint, endpoint);
        assert!(tokio::net::TcpStream::connect(("127.0.0.1", bucket.port()))
            .await
            .is_ok());
        assert!(bucket.dir.path().join(&bucket.bucket).is_dir());
    }
}
