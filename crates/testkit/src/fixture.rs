//! A real HTTP server whose answers a test scripts: a misbehaving backend, an
//! image host, a webhook receiver, a redirect chain, a body that never ends. It
//! records every request it gets.

use std::future::Future;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

/// A request the fixture received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the fixture answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
    /// When set, the body is streamed as described instead of sending `body`.
    pub stream: Option<Streamed>,
}

/// A body sent piece by piece: `count` copies of `chunk`, with `pause` before each
/// copy but the first, so a client that stops reading early is told apart from one
/// that reads to the end by how long it takes.
#[derive(Debug, Clone)]
pub struct Streamed {
    pub chunk: Vec<u8>,
    pub count: usize,
    pub pause: Duration,
    /// Announce the full length (`Content-Length`) up front instead of sending
    /// chunked transfer encoding.
    pub content_length: bool,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json".into(),
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
            delay: Duration::ZERO,
            stream: None,
        }
    }

    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type: content_type.into(),
            headers: Vec::new(),
            body,
            delay: Duration::ZERO,
            stream: None,
        }
    }

    /// A 200 whose body is `count` copies of `chunk` with `pause` between them,
    /// sent with chunked transfer encoding (no `Content-Length`).
    pub fn chunked(content_type: &str, chunk: Vec<u8>, count: usize, pause: Duration) -> Self {
        Self {
            stream: Some(Streamed {
                chunk,
                count,
                pause,
                content_length: false,
            }),
            ..Self::bytes(200, content_type, Vec::new())
        }
    }

    /// A redirect (`status` 301, 302, 303, 307 or 308) to `location`, which may be
    /// relative to the request.
    pub fn redirect(status: u16, location: &str) -> Self {
        Self::bytes(status, "text/plain", Vec::new()).header("Location", location)
    }

    /// Makes a [`Reply::chunked`] body announce its full length up front, while
    /// still trickling it out.
    pub fn with_content_length(mut self) -> Self {
        if let Some(stream) = self.stream.as_mut() {
            stream.content_length = true;
        }
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Script = dyn Fn(&Recorded) -> Reply + Send + Sync;

pub struct Fixture {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Fixture {
    /// Starts a fixture on a loopback port 0 answering every request with `script`.
    pub fn start(script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a fixture port");
        let url = format!("http://{}", listener.local_addr().expect("fixture address"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let recorded = Arc::clone(&requests);
        let server = HttpServer::new(move || {
            let script = Arc::clone(&script);
            let recorded = Arc::clone(&recorded);
            App::new()
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                    let script = Arc::clone(&script);
                    let recorded = Arc::clone(&recorded);
                    async move {
                        let request = Recorded {
                            method: req.method().to_string(),
                            path: req.path().to_owned(),
                            query: req.query_string().to_owned(),
                            headers: req
                                .headers()
                                .iter()
                                .map(|(n, v)| {
                                    (n.to_string(), v.to_str().unwrap_or_default().to_owned())
                                })
                                .collect(),
                            body: body.to_vec(),
                        };
                        let reply = script(&request);
                        recorded
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(request);
                        if !reply.delay.is_zero() {
                            tokio::time::sleep(reply.delay).await;
                        }
                        let status = actix_web::http::StatusCode::from_u16(reply.status)
                            .expect("a valid fixture status");
                        let mut res = HttpResponse::build(status);
                        res.content_type(reply.content_type.as_str());
                        for (name, value) in &reply.headers {
                            res.insert_header((name.as_str(), value.as_str()));
                        }
                        match reply.stream {
                            Some(stream) => res.body(PacedBody::new(stream)),
                            None => res.body(reply.body),
                        }
                    }
                }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("fixture listens")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url,
            requests,
            handle,
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The body of a [`Streamed`] reply. actix polls it only as fast as the client
/// reads, so it stops being produced once the client hangs up.
struct PacedBody {
    chunk: Bytes,
    remaining: usize,
    pause: Duration,
    size: BodySize,
    /// The pause before the next chunk; `None` before the first one.
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl PacedBody {
    fn new(stream: Streamed) -> Self {
        let total = stream.chunk.len() as u64 * stream.count as u64;
        Self {
            chunk: Bytes::from(stream.chunk),
            remaining: stream.count,
            pause: stream.pause,
            size: if stream.content_length {
                BodySize::Sized(total)
            } else {
                BodySize::Stream
            },
            wait: None,
        }
    }
}

impl MessageBody for PacedBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        self.size
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        if let Some(wait) = self.wait.as_mut() {
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        self.remaining -= 1;
        self.wait = Some(Box::pin(tokio::time::sleep(self.pause)));
        Poll::Ready(Some(Ok(self.chunk.clone())))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Stop without waiting (drop cannot await); in-flight replies are cut.
        let handle = self.handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { handle.stop(false).await });
        }
    }
}
