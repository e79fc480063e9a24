//! The real parts around the engine: a mock API of the test's own (axum on 127.0.0.1:0),
//! and the real Container API server in process, optionally behind a front that serves
//! `/state` itself (to record what is put, or to answer 404 as a Container API from
//! before `/state` does) and forwards everything else.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use container_api::{Config, Server, Summary};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const MAILCHIMP: &str = include_str!("../fixtures/mailchimp-members.json");
pub const CDP_HUB: &str = include_str!("../fixtures/cdp-hub.json");

/// One request the mock API received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: std::time::Instant,
}

impl Received {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The answer of the mock API.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// Sent instead of `body` when set, as text/html.
    pub text: Option<String>,
}

impl Answer {
    pub fn ok(body: Value) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body,
            text: None,
        }
    }

    pub fn status(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
            text: None,
        }
    }

    pub fn text(status: u16, text: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "text/html".into())],
            body: Value::Null,
            text: Some(text.into()),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = Arc<dyn Fn(&Received) -> Answer + Send + Sync>;

#[derive(Clone)]
struct MockState {
    handler: Handler,
    received: Arc<Mutex<Vec<Received>>>,
}

/// An API answering every request with `handler`, recording what it received.
pub struct MockApi {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Option<oneshot::Sender<()>>,
}

impl MockApi {
    pub async fn start(handler: impl Fn(&Received) -> Answer + Send + Sync + 'static) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = MockState {
            handler: Arc::new(handler),
            received: received.clone(),
        };
        let app = Router::new().fallback(mock_handler).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            url,
            received,
            stop: Some(stop),
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn mock_handler(
    State(state): State<MockState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = uri
        .query()
        .map(|q| url_pairs(q).into_iter().collect::<Vec<(String, String)>>())
        .unwrap_or_default();
    let received = Received {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query,
        headers,
        body,
        at: std::time::Instant::now(),
    };
    state.received.lock().unwrap().push(received.clone());
    let answer = (state.handler)(&received);
    let status = StatusCode::from_u16(answer.status).unwrap();
    let mut response = match answer.text {
        Some(text) => (status, text).into_response(),
        None => (status, axum::Json(answer.body)).into_response(),
    };
    for (name, value) in answer.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The real Container API server of one run, in process.
pub struct ContainerApi {
    pub dir: TempDir,
    /// The base URL the engine is given.
    pub url: String,
    /// What `PUT /state` received, when the front serves it.
    state: Arc<Mutex<StateFront>>,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<anyhow::Result<Summary>>,
    front_stop: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct StateFront {
    /// Answer 404 to `/state`, as a Container API without it does.
    no_state: bool,
    current: Option<Value>,
    puts: Vec<Value>,
    /// Method and path of each request forwarded, with the record count of each
    /// `POST /output/output`.
    forwarded: Vec<(String, String, Option<usize>)>,
}

#[derive(Clone)]
struct FrontState {
    target: String,
    client: reqwest::Client,
    state: Arc<Mutex<StateFront>>,
}

impl ContainerApi {
    /// The Container API as it is.
    pub async fn start() -> Self {
        Self::start_inner(None, &[]).await
    }

    /// The Container API as it was before `/state`: a front answers 404 there and
    /// forwards everything else.
    pub async fn without_state() -> Self {
        let api = Self::start_inner(Some(None), &[]).await;
        api.state.lock().unwrap().no_state = true;
        api
    }

    /// The Container API of an export's run: each `(stream, records)` is the input
    /// stream `stream` (`input`, `new`, ...), served with typed values as cde registers
    /// HTTP exports.
    pub async fn with_inputs(inputs: &[(&str, Vec<Value>)]) -> Self {
        Self::start_inner(None, inputs).await
    }

    /// The Container API behind a front that serves `/state`, starting from `state`
    /// (`None`: no state yet).
    pub async fn with_state(state: Option<Value>) -> Self {
        Self::start_inner(Some(state), &[]).await
    }

    async fn start_inner(state: Option<Option<Value>>, inputs: &[(&str, Vec<Value>)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path().join("run"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        std::fs::create_dir_all(&config.run_dir).unwrap();
        if !inputs.is_empty() {
            config.typed_values = true;
            let input_dir = config.run_dir.join("input");
            std::fs::create_dir_all(&input_dir).unwrap();
            for (stream, records) in inputs {
                let text: String = records.iter().map(|r| format!("{r}\n")).collect();
                std::fs::write(input_dir.join(format!("{stream}.jsonl")), text).unwrap();
            }
        }
        let server = Server::bind(config).await.unwrap();
        let direct = format!("http://{}", server.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        let front = Arc::new(Mutex::new(StateFront::default()));
        let mut front_stop = None;
        let url = match state {
            None => direct,
            Some(initial) => {
                front.lock().unwrap().current = initial;
                let app = Router::new()
                    .route("/state", axum::routing::get(get_state).put(put_state))
                    .fallback(forward)
                    .with_state(FrontState {
                        target: direct,
                        client: reqwest::Client::new(),
                        state: front.clone(),
                    });
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let url = format!("http://{}", listener.local_addr().unwrap());
                let (tx, rx) = oneshot::channel::<()>();
                front_stop = Some(tx);
                tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await
                        .unwrap();
                });
                url
            }
        };
        Self {
            dir,
            url,
            state: front,
            stop,
            handle,
            front_stop,
        }
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The bodies `PUT /state` received.
    pub fn state_puts(&self) -> Vec<Value> {
        self.state.lock().unwrap().puts.clone()
    }

    /// Stops the server (closing its files) and returns the records written and the
    /// log lines.
    pub async fn finish(self) -> Finished {
        if let Some(stop) = self.front_stop {
            let _ = stop.send(());
        }
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("the Container API stops within 30 s")
            .unwrap()
            .unwrap();
        let run_dir = self.dir.path().join("run");
        let (puts, forwarded) = {
            let front = self.state.lock().unwrap();
            (front.puts.clone(), front.forwarded.clone())
        };
        Finished {
            records: read_lines(&run_dir.join("output").join("output.jsonl")),
            feedback: read_lines(&run_dir.join("output").join("feedback.jsonl")),
            logs: read_lines(&run_dir.join("logs.jsonl")),
            state_puts: puts,
            forwarded,
            _dir: self.dir,
        }
    }
}

pub struct Finished {
    pub records: Vec<Value>,
    /// The rows of `output/feedback.jsonl`.
    pub feedback: Vec<Value>,
    pub logs: Vec<Value>,
    pub state_puts: Vec<Value>,
    /// What the front forwarded (only when started [`ContainerApi::with_state`]).
    pub forwarded: Vec<(String, String, Option<usize>)>,
    _dir: TempDir,
}

impl Finished {
    pub fn logs_at(&self, level: &str) -> Vec<&Value> {
        self.logs.iter().filter(|l| l["level"] == level).collect()
    }
}

fn read_lines(path: &std::path::Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("reading {}: {e}", path.display()),
    }
}

fn no_state() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"message": "Not found."})),
    )
        .into_response()
}

async fn get_state(State(front): State<FrontState>) -> Response {
    if front.state.lock().unwrap().no_state {
        return no_state();
    }
    let current = front.state.lock().unwrap().current.clone();
    axum::Json(json!({"message": "", "data": current.unwrap_or(json!({}))})).into_response()
}

async fn put_state(State(front): State<FrontState>, body: Bytes) -> Response {
    if front.state.lock().unwrap().no_state {
        return no_state();
    }
    let body: Value = serde_json::from_slice(&body).unwrap();
    let mut state = front.state.lock().unwrap();
    state.current = Some(body["data"].clone());
    state.puts.push(body);
    axum::Json(json!({"message": "State saved."})).into_response()
}

async fn forward(
    State(front): State<FrontState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let records = (uri.path() == "/output/output")
        .then(|| serde_json::from_slice::<Value>(&body).ok())
        .flatten()
        .and_then(|b| b["data"].as_array().map(Vec::len));
    front.state.lock().unwrap().forwarded.push((
        method.to_string(),
        uri.path().to_owned(),
        records,
    ));
    let mut request = front
        .client
        .request(method, format!("{}{path}", front.target))
        .body(body);
    if let Some(content_type) = headers.get("content-type") {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let content_type = response.headers().get("content-type").cloned();
    let bytes = response.bytes().await.unwrap();
    let mut out = (status, bytes).into_response();
    if let Some(content_type) = content_type {
        out.headers_mut().insert("content-type", content_type);
    }
    out
}

/// The definition of an AEP connector as the orchestrator builds it.
pub fn definition(spec: Value, auth: Value) -> String {
    json!({"dialect": "aep", "spec": spec, "auth": auth, "kind": "data-source"}).to_string()
}

/// The definition of a CDP connector of `kind` over `spec`, with `extra` fields
/// (`operation`, `rejections`, ...) merged in.
pub fn cdp_definition(spec: Value, kind: &str, extra: Value) -> String {
    let mut definition = json!({"dialect": "cdp", "spec": spec, "kind": kind});
    for (k, v) in extra.as_object().unwrap() {
        definition[k] = v.clone();
    }
    definition.to_string()
}

/// The CDP hub fixture as a JSON value.
pub fn cdp_hub() -> Value {
    serde_json::from_str(CDP_HUB).unwrap()
}

/// The JSON body of a request the mock API received.
pub fn json_body(received: &Received) -> Value {
    serde_json::from_slice(&received.body).unwrap()
}

/// The variables of a run: the definition, the Container API and the options.
pub fn vars(
    definition: &str,
    container: &str,
    options: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.insert("CDE_HTTP_CONNECTOR".into(), definition.into());
    vars.insert("CONTAINER_API_URL".into(), container.into());
    vars
}

/// Runs the engine, failing the test if it takes longer than `limit`.
pub async fn run(vars: HashMap<String, String>) -> u8 {
    tokio::time::timeout(Duration::from_secs(60), http_connector::run_with_vars(vars))
        .await
        .expect("the engine finishes within 60 s")
}
