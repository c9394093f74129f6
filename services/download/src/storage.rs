//! S3 storage of originals and thumbnails: where download-service puts the bytes it
//! fetched, and how it hands out links to them.
//!
//! Objects are stored with the Content-Type and Cache-Control they are served back
//! with. Links are presigned GET URLs, since a browser or a printer opens them, not
//! this service: on the *public* endpoint (`S3_PUBLIC_ENDPOINT`) for users' browsers,
//! on the internal one (`S3_ENDPOINT`) for printers on the services' network
//! ([`Audience`]). Addressing is
//! path-style (`{endpoint}/{bucket}/{key}`), which MinIO and the embedded server need.
//!
//! This module does not retry: a failed call is reported, and the download worker
//! decides whether and when to try again (DESIGN.md §5).

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, CACHE_CONTROL};
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, BucketConfiguration, Region};

/// Upper bound for one S3 call, upload of the largest original included: a
/// black-holed S3 must surface as an error the worker can retry, never as a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Readiness must answer quickly even when S3 does not.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the bucket is and how to sign for it (the `S3_*` settings).
#[derive(Clone)]
pub struct StorageConfig {
    /// Endpoint this service talks to, e.g. `http://minio:9000`.
    pub endpoint: String,
    /// Endpoint presigned URLs point at, when clients reach S3 by another name.
    pub public_endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The settings cannot describe a usable bucket (a start-up error).
    #[error("invalid S3 settings: {0}")]
    Config(String),
    /// A value that cannot be sent as an HTTP header.
    #[error("invalid {header} for S3: {value:?}")]
    InvalidHeader { header: &'static str, value: String },
    /// S3 was unreachable, timed out, or answered with an error.
    #[error("S3 {operation} failed: {source}")]
    S3 {
        operation: &'static str,
        #[source]
        source: S3Error,
    },
    /// The bucket failed the readiness probe: unreachable, missing or refusing us.
    #[error("S3 bucket {bucket}: {source}")]
    Unready {
        bucket: String,
        #[source]
        source: S3Error,
    },
    /// The bucket did not answer the readiness probe in time.
    #[error("S3 bucket {bucket}: no answer within {after:?}")]
    NoAnswer { bucket: String, after: Duration },
    /// There is no bucket to use: `S3_ENDPOINT` is not set.
    #[error("S3_ENDPOINT is not configured")]
    NotConfigured,
}

impl StorageError {
    fn s3(operation: &'static str) -> impl FnOnce(S3Error) -> StorageError {
        move |source| StorageError::S3 { operation, source }
    }
}

/// A handle on the bucket; cheap to clone (the HTTP client is shared).
/// Who opens a presigned link, and so which S3 endpoint it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    /// Users' browsers: `S3_PUBLIC_ENDPOINT` (or `S3_ENDPOINT` when unset).
    #[default]
    Public,
    /// Printers and services on the backend network: `S3_ENDPOINT`, the name this
    /// service reaches S3 by.
    Internal,
}

#[derive(Clone)]
pub struct Storage {
    /// Every call this service makes goes through the internal endpoint.
    bucket: Box<Bucket>,
    /// A SigV4 signature covers the Host header, so URLs for the public endpoint
    /// must be signed by a handle on that endpoint; it never sends a request.
    public: Box<Bucket>,
    /// What [`ensure_bucket`](Storage::ensure_bucket) needs to create the bucket.
    region: Region,
    credentials: Credentials,
}

impl Storage {
    pub fn new(config: &StorageConfig) -> Result<Storage, StorageError> {
        if config.bucket.is_empty() {
            return Err(StorageError::Config("the bucket name is empty".into()));
        }
        let credentials = Credentials::new(
            Some(&config.access_key),
            Some(&config.secret_key),
            None,
            None,
            None,
        )
        .map_err(|e| StorageError::Config(format!("credentials: {e}")))?;
        let region = custom_region(&config.region, &config.endpoint)?;
        let public_region = match &config.public_endpoint {
            Some(public) => custom_region(&config.region, public)?,
            None => region.clone(),
        };

        let handle = |region: Region| -> Result<Box<Bucket>, StorageError> {
            Bucket::new(&config.bucket, region, credentials.clone())
                .and_then(|b| b.with_path_style().with_request_timeout(REQUEST_TIMEOUT))
                .map_err(|e| StorageError::Config(format!("bucket {}: {e}", config.bucket)))
        };
        Ok(Storage {
            bucket: handle(region.clone())?,
            public: handle(public_region)?,
            region,
            credentials,
        })
    }

    pub fn bucket_name(&self) -> &str {
        &self.bucket.name
    }

    /// Creates the bucket unless it exists. Safe to call from every replica at once:
    /// losing the race to create it counts as success.
    pub async fn ensure_bucket(&self) -> Result<(), StorageError> {
        match self.probe().await {
            Ok(()) => return Ok(()),
            Err(S3Error::HttpFailWithBody(404, _)) => {}
            Err(e) => return Err(StorageError::s3("bucket lookup")(e)),
        }
        let created = Bucket::create_with_path_style(
            &self.bucket.name,
            self.region.clone(),
            self.credentials.clone(),
            BucketConfiguration::default(),
        )
        .await;
        match created {
            Ok(_) | Err(S3Error::HttpFailWithBody(409, _)) => Ok(()),
            Err(e) => Err(StorageError::s3("bucket creation")(e)),
        }
    }

    /// Whether an object is stored under `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        self.bucket
            .object_exists(key)
            .await
            .map_err(StorageError::s3("object lookup"))
    }

    /// Stores `bytes` under `key`, replacing what was there. `content_type` and
    /// `cache_control` are served back with the object.
    pub async fn put(
        &self,
        key: &str,
        bytes: &[u8],
        content_type: &str,
        cache_control: &str,
    ) -> Result<(), StorageError> {
        header_value("Content-Type", content_type)?;
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, header_value("Cache-Control", cache_control)?);
        self.bucket
            .put_object_with_content_type_and_headers(key, bytes, content_type, Some(headers))
            .await
            .map(|_| ())
            .map_err(StorageError::s3("upload"))
    }

    /// Deletes the object under `key`; one that is not there counts as deleted.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.bucket.delete_object(key).await {
            Ok(_) | Err(S3Error::HttpFailWithBody(404, _)) => Ok(()),
            Err(e) => Err(StorageError::s3("deletion")(e)),
        }
    }

    /// A URL on the public endpoint that lets whoever holds it GET the object for
    /// `expires_secs` seconds (at most a week). Signing is local: nothing is sent,
    /// and the object is not checked to exist.
    pub async fn presign_get(&self, key: &str, expires_secs: u32) -> Result<String, StorageError> {
        self.presign_get_for(Audience::Public, key, expires_secs)
            .await
    }

    /// [`presign_get`](Storage::presign_get) on the endpoint `audience` reaches S3 by.
    pub async fn presign_get_for(
        &self,
        audience: Audience,
        key: &str,
        expires_secs: u32,
    ) -> Result<String, StorageError> {
        let handle = match audience {
            Audience::Public => &self.public,
            Audience::Internal => &self.bucket,
        };
        handle
            .presign_get(key, expires_secs, None)
            .await
            .map_err(StorageError::s3("presigning"))
    }

    /// Readiness: the bucket answers a signed request. The error says why not.
    pub async fn check(&self) -> Result<(), StorageError> {
        let bucket = || self.bucket.name.clone();
        match tokio::time::timeout(CHECK_TIMEOUT, self.probe()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(StorageError::Unready {
                bucket: bucket(),
                source,
            }),
            Err(_) => Err(StorageError::NoAnswer {
                bucket: bucket(),
                after: CHECK_TIMEOUT,
            }),
        }
    }

    /// The cheapest signed request that needs the bucket to exist: list one key.
    async fn probe(&self) -> Result<(), S3Error> {
        self.bucket
            .list_page(String::new(), None, None, None, Some(1))
            .await
            .map(|_| ())
    }
}

/// An endpoint given as an http(s) URL, without the trailing slash rust-s3 would
/// double when it appends the bucket.
fn custom_region(region: &str, endpoint: &str) -> Result<Region, StorageError> {
    let url = reqwest::Url::parse(endpoint)
        .map_err(|e| StorageError::Config(format!("endpoint {endpoint:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(StorageError::Config(format!(
            "endpoint {endpoint:?} is not an http(s) URL"
        )));
    }
    Ok(Region::Custom {
        region: region.to_owned(),
        endpoint: endpoint.trim_end_matches('/').to_owned(),
    })
}

fn header_value(header: &'static str, value: &str) -> Result<HeaderValue, StorageError> {
    HeaderValue::from_str(value).map_err(|_| StorageError::InvalidHeader {
        header,
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pixpress_testkit::s3::TestBucket;

    fn config(bucket: &TestBucket) -> StorageConfig {
        StorageConfig {
            endpoint: bucket.endpoint.clone(),
            public_endpoint: None,
            region: bucket.region.clone(),
            bucket: bucket.bucket.clone(),
            access_key: bucket.access_key.clone(),
            secret_key: bucket.secret_key.clone(),
        }
    }

    fn storage(config: &StorageConfig) -> Storage {
        Storage::new(config).unwrap_or_else(|e| panic!("storage: {e}"))
    }

    async fn get(url: &str) -> reqwest::Response {
        reqwest::get(url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn a_stored_object_is_served_by_its_presigned_url_with_its_headers() {
        let bucket = TestBucket::new().await;
        let storage = storage(&config(&bucket));
        let bytes = b"\x89PNG\r\n\x1a\nnot really a png".to_vec();
        storage
            .put(
                "originals/1.png",
                &bytes,
                "image/png",
                "public, max-age=31536000, immutable",
            )
            .await
            .expect("put");

        let url = storage
            .presign_get("originals/1.png", 300)
            .await
            .expect("presign");
        assert!(url.starts_with(&bucket.endpoint), "{url}");
        let response = get(&url).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-type"), Some("image/png"));
        assert_eq!(
            header(&response, "cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(
            response.bytes().await.expect("body").as_ref(),
            bytes.as_slice()
        );
    }

    #[tokio::test]
    async fn presigned_urls_point_at_the_public_endpoint_and_work_there() {
        let bucket = TestBucket::new().await;
        let mut config = config(&bucket);
        let public = format!("http://localhost:{}", bucket.port());
        config.public_endpoint = Some(public.clone());
        let storage = storage(&config);
        storage
            .put("thumbnails/1.jpg", b"jpeg", "image/jpeg", "no-cache")
            .await
            .expect("put");

        let url = storage
            .presign_get("thumbnails/1.jpg", 300)
            .await
            .expect("presign");
        assert!(
            url.starts_with(&format!("{public}/{}/", bucket.bucket)),
            "{url}"
        );
        let response = get(&url).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.bytes().await.expect("body").as_ref(), b"jpeg");

        // The printers' link names the internal endpoint, and works there too.
        let internal = storage
            .presign_get_for(Audience::Internal, "thumbnails/1.jpg", 300)
            .await
            .expect("presign");
        assert!(
            internal.starts_with(&format!("{}/{}/", config.endpoint, bucket.bucket)),
            "{internal}"
        );
        let response = get(&internal).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.bytes().await.expect("body").as_ref(), b"jpeg");
    }

    #[tokio::test]
    async fn a_tampered_presigned_url_is_refused() {
        let bucket = TestBucket::new().await;
        let storage = storage(&config(&bucket));
        storage
            .put("a.jpg", b"a", "image/jpeg", "no-cache")
            .await
            .expect("put a");
        storage
            .put("b.jpg", b"b", "image/jpeg", "no-cache")
            .await
            .expect("put b");

        let url = storage.presign_get("a.jpg", 300).await.expect("presign");
        let response = get(&url.replace("/a.jpg", "/b.jpg")).await;
        assert_eq!(response.status(), 403);
    }

    #[tokio::test]
    async fn exists_tells_whether_an_object_was_stored() {
        let bucket = TestBucket::new().await;
        let storage = storage(&config(&bucket));
        assert!(!storage.exists("originals/7").await.expect("exists before"));
        storage
            .put("originals/7", b"bytes", "image/gif", "no-cache")
            .await
            .expect("put");
        assert!(storage.exists("originals/7").await.expect("exists after"));
    }

    #[tokio::test]
    async fn delete_removes_an_object_and_accepts_a_missing_one() {
        let bucket = TestBucket::new().await;
        let storage = storage(&config(&bucket));
        storage
            .put("originals/8", b"bytes", "image/gif", "no-cache")
            .await
            .expect("put");
        storage.delete("originals/8").await.expect("delete");
        assert!(!storage.exists("originals/8").await.expect("exists"));
        storage
            .delete("originals/8")
            .await
            .expect("deleting it again");
    }

    #[tokio::test]
    async fn ensure_bucket_creates_a_missing_bucket_and_can_be_repeated() {
        let bucket = TestBucket::new().await;
        let mut config = config(&bucket);
        config.bucket = "fresh-bucket".into();
        let storage = storage(&config);
        assert!(
            storage.check().await.is_err(),
            "bucket should not exist yet"
        );

        storage.ensure_bucket().await.expect("first ensure");
        storage.ensure_bucket().await.expect("second ensure");
        storage.check().await.expect("bucket ready");
        storage
            .put("k", b"v", "text/plain", "no-cache")
            .await
            .expect("put into the new bucket");
    }

    #[tokio::test]
    async fn put_fails_while_s3_is_down_and_works_once_it_is_back() {
        let mut bucket = TestBucket::new().await;
        let storage = storage(&config(&bucket));
        storage
            .put("before", b"1", "text/plain", "no-cache")
            .await
            .expect("put while up");

        bucket.stop_server().await;
        let attempt = tokio::time::timeout(
            Duration::from_secs(20),
            storage.put("during", b"2", "text/plain", "no-cache"),
        )
        .await
        .expect("put must fail, not hang, while S3 is down");
        assert!(
            matches!(attempt, Err(StorageError::S3 { .. })),
            "{attempt:?}"
        );
        assert!(storage.check().await.is_err());

        bucket.restart_server().await;
        storage.check().await.expect("ready again");
        storage
            .put("after", b"3", "text/plain", "no-cache")
            .await
            .expect("put after restart");
        assert!(
            storage.exists("before").await.expect("exists"),
            "data survives a restart"
        );
    }

    #[tokio::test]
    async fn a_wrong_secret_key_is_refused() {
        let bucket = TestBucket::new().await;
        let mut config = config(&bucket);
        config.secret_key = "not-the-secret".into();
        let storage = storage(&config);

        let put = storage.put("k", b"v", "text/plain", "no-cache").await;
        assert!(
            matches!(
                put,
                Err(StorageError::S3 {
                    source: S3Error::HttpFailWithBody(403, _),
                    ..
                })
            ),
            "{put:?}"
        );
        assert!(storage.check().await.is_err());

        let url = storage
            .presign_get("k", 300)
            .await
            .expect("signing is local");
        assert_eq!(get(&url).await.status(), 403);
    }

    #[test]
    fn settings_that_cannot_work_are_refused_at_start() {
        let valid = StorageConfig {
            endpoint: "http://127.0.0.1:9000".into(),
            public_endpoint: None,
            region: "us-east-1".into(),
            bucket: "pixpress".into(),
            access_key: "a".into(),
            secret_key: "s".into(),
        };
        assert!(Storage::new(&valid).is_ok());
        for endpoint in ["127.0.0.1:9000", "ftp://host", "not a url"] {
            let config = StorageConfig {
                endpoint: endpoint.into(),
                ..valid.clone()
            };
            assert!(Storage::new(&config).is_err(), "{endpoint}");
        }
        let config = StorageConfig {
            public_endpoint: Some("nope".into()),
            ..valid.clone()
        };
        assert!(Storage::new(&config).is_err());
    }

    #[tokio::test]
    async fn header_values_that_cannot_be_sent_are_refused() {
        let bucket = TestBucket::new().await;
        let storage = storage(&config(&bucket));
        let put = storage
            .put("k", b"v", "text/plain\r\nx: y", "no-cache")
            .await;
        assert!(
            matches!(put, Err(StorageError::InvalidHeader { .. })),
            "{put:?}"
        );
    }
}
