//! A real HTTP server whose answers a test scripts: a misbehaving backend, an
//! image host, a webhook receiver. It records every request it gets.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json".into(),
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
            delay: Duration::ZERO,
        }
    }

    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type: content_type.into(),
            headers: Vec::new(),
            body,
            delay: Duration::ZERO,
        }
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
                        res.body(reply.body)
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

impl Drop for Fixture {
    fn drop(&mut self) {
        // Stop without waiting (drop cannot await); in-flight replies are cut.
        let handle = self.handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { handle.stop(false).await });
        }
    }
}
