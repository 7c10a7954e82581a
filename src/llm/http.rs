//! The HTTP client for OpenAI-compatible servers: chat completions (`/chat/completions`) and
//! plain completions (`/completions`), per-endpoint concurrency limits, least-loaded endpoint
//! choice, timeouts, and retries with exponential backoff and jitter.
//!
//! Two transports, chosen per endpoint when the client is built:
//! - **direct**: `http://` endpoints that no proxy setting (`HTTP_PROXY`, `ALL_PROXY`,
//!   `NO_PROXY`, upper or lower case) intercepts, which are the local and LAN servers (vLLM,
//!   Ollama, llama.cpp) where request rates are high. hyper's pooled HTTP/1.1 client is used
//!   as is: per request, reqwest adds two URL parses (redirect policy and response URL), header
//!   merging and its own timeout futures. Measured with one fixed body against the bench's
//!   mock at 256 requests in flight, reqwest took 48-53 µs of CPU per request and hyper's client
//!   35-40 µs: about a quarter less.
//! - **reqwest**: everything else (`https://` with rustls and HTTP/2 by ALPN, proxies).
//!
//! Wall-clock time and tokio live here (and in the bridge that owns the runtime), never in the
//! simulation. API keys are only ever put in the `Authorization` header: they are not part of any
//! error message, log line or transcript entry.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::decision::schema::Constraint;
use crate::decision::RequestKey;
use crate::rng::{unit_hash, Stream};

pub use crate::config::Protocol;

/// One message of a chat conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Text.
    pub content: String,
}

impl PromptMessage {
    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
        }
    }
    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: "assistant".into(),
            content: content.into(),
        }
    }
}

/// Token counts reported by the server (`usage`), zero when it reports none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt (input) tokens.
    pub prompt_tokens: u64,
    /// Completion (output) tokens.
    pub completion_tokens: u64,
}

impl Usage {
    /// Adds `o` to `self`.
    pub fn add(&mut self, o: Usage) {
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
    }
}

/// A successful completion.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The answer text (`choices[0].message.content`, or `choices[0].text`).
    pub text: String,
    /// Token usage.
    pub usage: Usage,
    /// Wall-clock time from the call's start to the answer, in milliseconds (waiting for an
    /// endpoint permit and retries included).
    pub latency_ms: u64,
    /// Index of the endpoint that answered.
    pub endpoint: usize,
    /// HTTP tries made (1 = no retry).
    pub tries: u32,
}

/// A failed call: the error and the endpoint its last try went to (`None` when no endpoint was
/// configured).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallFailure {
    /// Why.
    pub error: LlmError,
    /// Index into [`HttpClient::endpoints`] of the last try.
    pub endpoint: Option<usize>,
}

/// `base` as a failed call's transcript line names it: user-info (`user:pass@`) redacted by
/// [`crate::config::redact_url`], and a query string or fragment (where keys are sometimes
/// passed, `?api-key=...`) replaced by `?<redacted>`. The API key itself is never part of a
/// base URL (it is sent as a header).
pub fn redacted_endpoint(base: &str) -> String {
    let u = crate::config::redact_url(base);
    match u.find(['?', '#']) {
        Some(q) => format!("{}?{}", &u[..q], crate::config::REDACTED),
        None => u,
    }
}

/// Why a call failed after its retries. Messages never contain an API key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// A non-success HTTP status (body excerpt, at most 200 characters).
    #[error("HTTP {status}: {body}")]
    Status {
        /// Status code.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// Connection refused, reset or dropped; a truncated body.
    #[error("transport error: {0}")]
    Transport(String),
    /// The request timed out (`request_timeout_secs`, or `connect_timeout_secs` while
    /// connecting); that timeout in milliseconds.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// The body was not the JSON the protocol defines.
    #[error("invalid response body: {0}")]
    InvalidBody(String),
    /// The response had no `choices`.
    #[error("response had no choices")]
    EmptyChoices,
    /// More than one try was made and the last one failed (retries exhausted, or a
    /// non-retryable error after retries); the last error is given.
    #[error("gave up after {tries} tries: {last}")]
    RetriesExhausted {
        /// Tries made.
        tries: u32,
        /// The last failure.
        last: Box<LlmError>,
    },
}

impl LlmError {
    /// HTTP tries the call made before this error (1 unless [`LlmError::RetriesExhausted`]).
    pub fn tries(&self) -> u32 {
        match self {
            LlmError::RetriesExhausted { tries, .. } => *tries,
            _ => 1,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            LlmError::Status { status, .. } => *status == 429 || *status >= 500,
            LlmError::Transport(_) | LlmError::Timeout(_) => true,
            _ => false,
        }
    }
}

/// One server endpoint: a base URL, a key and a model, with its own concurrency limit.
pub struct Endpoint {
    /// Base URL, e.g. `http://127.0.0.1:8080/v1` (no trailing slash).
    pub base: String,
    /// Where requests go (`{base}/chat/completions` or `{base}/completions`), parsed once:
    /// URL parsing per request was a measurable share of the bridge's CPU time. `None` when the
    /// base is not a URL.
    route: Option<Route>,
    /// `Authorization: Bearer <key>`, marked sensitive (never printed by `Debug`).
    auth: Option<reqwest::header::HeaderValue>,
    /// Model name sent in requests.
    pub model: String,
    sem: Arc<Semaphore>,
    load: AtomicUsize,
}

impl Endpoint {
    /// How this endpoint is called: `"direct"` (hyper's client: plain http, no proxy, no
    /// credentials in the URL), `"reqwest"`, or `"none"` when the base is not a URL.
    pub fn transport(&self) -> &'static str {
        match self.route {
            Some(Route::Direct(_)) => "direct",
            Some(Route::Reqwest(_)) => "reqwest",
            None => "none",
        }
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .field("key", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .finish()
    }
}

/// One call's share of its endpoint's load, given back when dropped.
struct LoadGuard<'a>(&'a AtomicUsize);

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How an endpoint is called (module docs).
#[derive(Clone, Debug)]
enum Route {
    /// hyper's client, straight to the server.
    Direct(hyper::Uri),
    /// reqwest (TLS, HTTP/2, proxies).
    Reqwest(reqwest::Url),
}

/// The direct transport's client: pooled HTTP/1.1 connections with `TCP_NODELAY`.
type DirectClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

/// Request parameters and retry policy.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Wire protocol.
    pub protocol: Protocol,
    /// Sampling temperature, 0..=2.
    pub temperature: f64,
    /// Most output tokens (`max_tokens`).
    pub max_tokens: u32,
    /// `seed` sent to servers that take it (`None` = not sent).
    pub seed: Option<u64>,
    /// Stop sequences (not sent when empty).
    pub stop: Vec<String>,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Retries after the first try (so at most `max_retries + 1` tries).
    pub max_retries: u32,
    /// First backoff delay; doubled each retry.
    pub backoff_base: Duration,
    /// Longest delay between tries (also caps `Retry-After`).
    pub backoff_max: Duration,
    /// Concurrent requests per endpoint.
    pub max_in_flight_per_endpoint: usize,
}

/// The HTTP client over all endpoints.
#[derive(Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    direct: DirectClient,
    endpoints: Vec<Endpoint>,
    opts: ClientOptions,
}

/// A request body, serialised straight from borrowed fields (no intermediate JSON tree).
#[derive(Serialize)]
struct RequestBody<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<&'a [PromptMessage]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    temperature: f64,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<&'a [String]>,
    /// `structured_output: json_schema`: OpenAI's `{type: json_schema, json_schema: {..}}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<serde_json::Value>,
    /// `structured_output: grammar`: a GBNF grammar (llama.cpp's servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    grammar: Option<&'a str>,
}

/// Chat-completions response (only the fields read).
#[derive(Deserialize)]
struct ApiResponse {
    #[serde(default)]
    choices: Vec<ApiChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ApiChoice {
    #[serde(default)]
    message: Option<ApiMessage>,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct ApiMessage {
    #[serde(default)]
    content: Option<String>,
}

/// Backoff before retry number `retry` (1-based): `min(max, base * 2^(retry-1))`, scaled by a
/// jitter factor in [0.5, 1.0) that depends only on the request key and the retry number
/// ("equal jitter", AWS Architecture Blog, "Exponential Backoff and Jitter", 2015).
pub fn backoff(opts: &ClientOptions, key: &RequestKey, attempt: u32, retry: u32) -> Duration {
    let exp = opts
        .backoff_base
        .saturating_mul(1u32 << (retry.saturating_sub(1)).min(20));
    let capped = exp.min(opts.backoff_max);
    let mut ids = key.as_ids().to_vec();
    ids.extend([u64::from(attempt), u64::from(retry)]);
    let j = unit_hash(0, Stream::LlmJitter, &ids);
    capped.mul_f64(0.5 + 0.5 * j)
}

/// An error with its sources, `outer: inner: ...` (hyper's and reqwest's top-level messages,
/// such as "client error (Connect)" or "error sending request", leave the cause to the
/// sources). Callers strip URLs first (`reqwest::Error::without_url`); hyper's errors have none.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let m = x.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = x.source();
    }
    s
}

/// The largest response body read, bytes: far above any completion (`max_tokens` of text in
/// JSON), small enough that a misbehaving server cannot exhaust memory with a few calls.
pub const MAX_RESPONSE_BYTES: usize = 8 << 20;

fn too_large() -> LlmError {
    LlmError::InvalidBody(format!(
        "response body larger than {} MiB, not read",
        MAX_RESPONSE_BYTES >> 20
    ))
}

/// Whether an error or one of its sources is an I/O timeout (hyper-util's connect timeout).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(x) = cur {
        if x.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cur = x.source();
    }
    false
}

/// `Retry-After` in seconds (integer or decimal form; HTTP dates are ignored).
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let s: f64 = v.trim().parse().ok()?;
    // A server's `1e20` must not panic the call: too long for a Duration is "as long as
    // allowed" (capped by `backoff_max` later); negative or NaN is ignored.
    match Duration::try_from_secs_f64(s) {
        Ok(d) => Some(d),
        Err(_) if s > 0.0 => Some(Duration::MAX),
        Err(_) => None,
    }
}

impl HttpClient {
    /// Builds the client over `bases x keys` (every base with every key; no key = no
    /// `Authorization` header), with `models[i]` for base `i` (or `model` when absent).
    ///
    /// # Errors
    /// `InvalidBody` when reqwest cannot build a client (TLS backend failure) or a key cannot be
    /// put in a header (control characters, such as a trailing newline).
    pub fn new(
        bases: &[String],
        keys: &[String],
        models: &[String],
        model: &str,
        opts: ClientOptions,
    ) -> Result<Self, LlmError> {
        Self::with_transport(bases, keys, models, model, opts, false)
    }

    /// As [`HttpClient::new`]; `force_reqwest` sends every endpoint through reqwest, even plain
    /// http ones (tests of that transport against the plain-http mock server).
    ///
    /// # Errors
    /// As [`HttpClient::new`].
    pub fn with_transport(
        bases: &[String],
        keys: &[String],
        models: &[String],
        model: &str,
        opts: ClientOptions,
        force_reqwest: bool,
    ) -> Result<Self, LlmError> {
        let client = reqwest::Client::builder()
            .timeout(opts.request_timeout)
            .connect_timeout(opts.connect_timeout)
            .pool_max_idle_per_host(opts.max_in_flight_per_endpoint.max(1))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| LlmError::InvalidBody(format!("cannot build HTTP client: {e}")))?;
        let direct = {
            let mut c = hyper_util::client::legacy::connect::HttpConnector::new();
            c.set_nodelay(true);
            c.set_connect_timeout(Some(opts.connect_timeout));
            // reqwest's defaults: a server that vanishes without a reset (power loss, network
            // split) is noticed in about a minute when idle and 30 s into a call, instead of
            // every try waiting out `request_timeout` on a dead pooled connection.
            c.set_keepalive(Some(Duration::from_secs(15)));
            c.set_keepalive_interval(Some(Duration::from_secs(15)));
            c.set_keepalive_retries(Some(3));
            #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
            c.set_tcp_user_timeout(Some(Duration::from_secs(30)));
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(opts.max_in_flight_per_endpoint.max(1))
                .build(c)
        };
        let proxies = hyper_util::client::proxy::matcher::Matcher::from_env();
        let key_list: Vec<Option<String>> = if keys.is_empty() {
            vec![None]
        } else {
            keys.iter().map(|k| Some(k.clone())).collect()
        };
        let path = match opts.protocol {
            Protocol::Chat => "chat/completions",
            Protocol::Completions => "completions",
        };
        let mut endpoints = Vec::new();
        for (i, b) in bases.iter().enumerate() {
            let base = b.trim_end_matches('/').to_string();
            // A base that does not parse fails each of its calls with a transport error (as a
            // connection error would), not the whole run.
            let route = reqwest::Url::parse(&format!("{base}/{path}"))
                .ok()
                .map(|url| {
                    // Credentials in the URL become a Basic header only through reqwest.
                    let plain = url.scheme() == "http"
                        && url.username().is_empty()
                        && url.password().is_none();
                    let direct = (plain && !force_reqwest)
                        .then(|| url.as_str().parse::<hyper::Uri>().ok())
                        .flatten()
                        .filter(|uri| proxies.intercept(uri).is_none());
                    match direct {
                        Some(uri) => Route::Direct(uri),
                        None => Route::Reqwest(url),
                    }
                });
            // reqwest sends a URL's credentials as a Basic `Authorization` header: a key's
            // Bearer header would be a second one, which servers read one way or the other.
            let basic = route
                .as_ref()
                .is_some_and(|r| matches!(r, Route::Reqwest(u) if !u.username().is_empty() || u.password().is_some()));
            if basic && keys.iter().any(|k| !k.is_empty()) {
                tracing::warn!(
                    "endpoint {i}: the base URL has credentials, sent as Basic auth; the API key is not sent to it"
                );
            }
            for (ki, k) in key_list.iter().enumerate() {
                let auth = match k {
                    Some(k) if !basic => {
                        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {k}"))
                            .map_err(|_| {
                                LlmError::InvalidBody(format!(
                                    "API key {} has characters an HTTP header cannot carry (a line break or control character?)",
                                    ki + 1
                                ))
                            })?;
                        v.set_sensitive(true);
                        Some(v)
                    }
                    _ => None,
                };
                endpoints.push(Endpoint {
                    base: base.clone(),
                    route: route.clone(),
                    auth,
                    model: models.get(i).cloned().unwrap_or_else(|| model.to_string()),
                    sem: Arc::new(Semaphore::new(opts.max_in_flight_per_endpoint.max(1))),
                    load: AtomicUsize::new(0),
                });
            }
        }
        Ok(Self {
            client,
            direct,
            endpoints,
            opts,
        })
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// The endpoints (keys hidden in `Debug`).
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The least-loaded endpoint (ties: lowest index); its load is incremented until the
    /// returned guard is dropped (also when the call is cancelled).
    ///
    /// A retry passes the endpoint that just failed as `avoid`: one that fails at once (server
    /// down) is always the least loaded, and would otherwise draw every retry.
    fn pick(&self, avoid: Option<usize>) -> (usize, LoadGuard<'_>) {
        let n = self.endpoints.len();
        let i = (0..n)
            .filter(|&i| n == 1 || Some(i) != avoid)
            .min_by_key(|&i| (self.endpoints[i].load.load(Ordering::Relaxed), i))
            .unwrap_or(0);
        self.endpoints[i].load.fetch_add(1, Ordering::Relaxed);
        (i, LoadGuard(&self.endpoints[i].load))
    }

    /// Sends one conversation, retrying on 429, 5xx, transport errors and timeouts.
    /// `attempt` is the corrective-retry number (it only varies the jitter).
    ///
    /// # Errors
    /// [`LlmError`]; after retries, [`LlmError::RetriesExhausted`] with the last failure.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future drops the in-flight request and releases the endpoint
    /// permit and its share of the load; nothing is recorded.
    pub async fn complete(
        &self,
        key: &RequestKey,
        attempt: u32,
        messages: &[PromptMessage],
    ) -> Result<Completion, LlmError> {
        self.complete_with(key, attempt, messages, None)
            .await
            .map_err(|f| f.error)
    }

    /// As [`HttpClient::complete`], with the answer constrained by `constraint` (a JSON schema
    /// as `response_format`, or a GBNF `grammar`), and a failure naming the endpoint of its last
    /// try.
    ///
    /// # Errors
    /// [`CallFailure`]: the [`LlmError`] (after retries, [`LlmError::RetriesExhausted`]) and the
    /// endpoint.
    ///
    /// # Cancel safety
    /// As [`HttpClient::complete`].
    pub async fn complete_with(
        &self,
        key: &RequestKey,
        attempt: u32,
        messages: &[PromptMessage],
        constraint: Option<&Constraint>,
    ) -> Result<Completion, CallFailure> {
        if self.endpoints.is_empty() {
            return Err(CallFailure {
                error: LlmError::Transport("no endpoint configured".into()),
                endpoint: None,
            });
        }
        let started = Instant::now();
        let mut tries = 0u32;
        let mut failed: Option<usize> = None;
        loop {
            tries += 1;
            let (ep, load) = self.pick(failed);
            let res = self.try_once(ep, messages, constraint).await;
            drop(load);
            match res {
                Ok((text, usage)) => {
                    return Ok(Completion {
                        text,
                        usage,
                        latency_ms: started.elapsed().as_millis() as u64,
                        endpoint: ep,
                        tries,
                    })
                }
                Err((e, wait)) => {
                    failed = Some(ep);
                    if !e.retryable() || tries > self.opts.max_retries {
                        let error = if tries == 1 {
                            e
                        } else {
                            LlmError::RetriesExhausted {
                                tries,
                                last: Box::new(e),
                            }
                        };
                        return Err(CallFailure {
                            error,
                            endpoint: Some(ep),
                        });
                    }
                    let delay = wait
                        .map(|w| w.min(self.opts.backoff_max))
                        .unwrap_or_else(|| backoff(&self.opts, key, attempt, tries));
                    tracing::debug!(?key, tries, ?delay, "retrying LLM call: {e}");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn try_once(
        &self,
        ep: usize,
        messages: &[PromptMessage],
        constraint: Option<&Constraint>,
    ) -> Result<(String, Usage), (LlmError, Option<Duration>)> {
        let e = &self.endpoints[ep];
        let _permit = e
            .sem
            .acquire()
            .await
            .map_err(|_| (LlmError::Transport("endpoint closed".into()), None))?;
        let o = &self.opts;
        let route = e.route.as_ref().ok_or_else(|| {
            (
                // Not the base itself: it may carry credentials.
                LlmError::Transport(format!("endpoint {ep}: the base URL does not parse")),
                None,
            )
        })?;
        let flat;
        let body = RequestBody {
            model: &e.model,
            messages: match o.protocol {
                Protocol::Chat => Some(messages),
                Protocol::Completions => None,
            },
            prompt: match o.protocol {
                Protocol::Chat => None,
                Protocol::Completions => {
                    flat = flatten(messages);
                    Some(&flat)
                }
            },
            temperature: o.temperature,
            max_tokens: o.max_tokens,
            seed: o.seed,
            stop: (!o.stop.is_empty()).then_some(&o.stop[..]),
            response_format: constraint.and_then(Constraint::response_format),
            grammar: constraint.and_then(|c| c.grammar.as_deref()),
        };
        // Sized for the prompt and the other fields: no regrowing (and copying) while writing.
        let size = 256
            + messages.iter().map(|m| m.content.len() + 32).sum::<usize>()
            // A schema is a few hundred bytes; a grammar about as long again.
            + constraint.map_or(0, |c| 1024 + c.grammar.as_ref().map_or(0, String::len));
        let mut bytes = Vec::with_capacity(size);
        serde_json::to_writer(&mut bytes, &body).map_err(|err| {
            (
                LlmError::InvalidBody(format!("cannot encode request: {err}")),
                None,
            )
        })?;
        let timeout_ms = o.request_timeout.as_millis() as u64;
        let connect_ms = o.connect_timeout.as_millis() as u64;
        let (status, wait, bytes) = match route {
            Route::Direct(uri) => {
                let mut req = hyper::Request::post(uri.clone())
                    .header(hyper::header::CONTENT_TYPE, "application/json");
                if let Some(a) = &e.auth {
                    req = req.header(hyper::header::AUTHORIZATION, a.clone());
                }
                let req = req
                    .body(http_body_util::Full::new(bytes::Bytes::from(bytes)))
                    .map_err(|err| (LlmError::Transport(err.to_string()), None))?;
                let call = async {
                    let resp = self.direct.request(req).await.map_err(|err| {
                        // A connect timeout is a timeout, as reqwest reports it.
                        let e = if timed_out(&err) {
                            LlmError::Timeout(connect_ms)
                        } else {
                            LlmError::Transport(error_chain(&err))
                        };
                        (e, None)
                    })?;
                    let status = resp.status();
                    if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                        // reqwest would follow it; a local server that redirects is set up
                        // behind another URL, which is the one to configure.
                        return Err((
                            LlmError::Status {
                                status: status.as_u16(),
                                body: "redirect not followed: plain-http endpoints are called \
                                       directly; set api_bases to the URL the server redirects to"
                                    .into(),
                            },
                            None,
                        ));
                    }
                    let wait = retry_after(resp.headers());
                    let limited =
                        http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES);
                    let body = http_body_util::BodyExt::collect(limited)
                        .await
                        .map_err(|err| {
                            let e = if err.is::<http_body_util::LengthLimitError>() {
                                too_large()
                            } else {
                                LlmError::Transport(error_chain(&*err))
                            };
                            (e, None)
                        })?;
                    Ok((status, wait, body.to_bytes()))
                };
                tokio::time::timeout(o.request_timeout, call)
                    .await
                    .map_err(|_| (LlmError::Timeout(timeout_ms), None))??
            }
            Route::Reqwest(url) => {
                let mut req = self
                    .client
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(bytes);
                if let Some(a) = &e.auth {
                    req = req.header(reqwest::header::AUTHORIZATION, a.clone());
                }
                let classify = |err: reqwest::Error| {
                    if err.is_timeout() {
                        LlmError::Timeout(if err.is_connect() {
                            connect_ms
                        } else {
                            timeout_ms
                        })
                    } else {
                        // `without_url`: the URL could carry credentials in its user-info part.
                        LlmError::Transport(error_chain(&err.without_url()))
                    }
                };
                let mut resp = req.send().await.map_err(|e| (classify(e), None))?;
                let status = resp.status();
                let wait = retry_after(resp.headers());
                let mut bytes = Vec::new();
                while let Some(chunk) = resp.chunk().await.map_err(|e| (classify(e), None))? {
                    if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err((too_large(), None));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                (status, wait, bytes::Bytes::from(bytes))
            }
        };
        if !status.is_success() {
            let body: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
            return Err((
                LlmError::Status {
                    status: status.as_u16(),
                    body,
                },
                wait,
            ));
        }
        let parsed: ApiResponse = serde_json::from_slice(&bytes).map_err(|err| {
            (
                LlmError::InvalidBody(format!("{err} ({} bytes)", bytes.len())),
                None,
            )
        })?;
        let usage = parsed.usage.unwrap_or_default();
        let first = parsed
            .choices
            .into_iter()
            .next()
            .ok_or((LlmError::EmptyChoices, None))?;
        let text = first
            .message
            .and_then(|m| m.content)
            .or(first.text)
            .unwrap_or_default();
        Ok((text, usage))
    }
}

/// A conversation as one completion prompt: messages joined by blank lines, previous answers
/// marked `Answer:`, ending with `Answer:` for the model to continue.
pub fn flatten(messages: &[PromptMessage]) -> String {
    let mut s = String::new();
    for m in messages {
        if m.role == "assistant" {
            s.push_str("Answer: ");
        }
        s.push_str(m.content.trim_end());
        s.push_str("\n\n");
    }
    s.push_str("Answer:");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    #[test]
    fn backoff_doubles_with_equal_jitter_and_is_capped() {
        let o = ClientOptions {
            protocol: Protocol::Chat,
            temperature: 0.0,
            max_tokens: 1,
            seed: None,
            stop: Vec::new(),
            request_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            max_retries: 3,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            max_in_flight_per_endpoint: 1,
        };
        let k = RequestKey {
            round: 1,
            phase: crate::decision::page::WATCH,
            user: UserId(7),
            step: 2,
        };
        // retry r waits in [0.5, 1) x min(max, base x 2^(r-1)).
        for (r, full) in [
            (1, 100u64),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (9, 1000),
        ] {
            let d = backoff(&o, &k, 0, r).as_secs_f64() * 1000.0;
            let full = full as f64;
            assert!(d >= 0.5 * full && d < full, "retry {r}: {d} ms");
        }
        // Same key and retry, same delay; another user, another jitter.
        assert_eq!(backoff(&o, &k, 0, 2), backoff(&o, &k, 0, 2));
        let other = RequestKey {
            user: UserId(8),
            ..k
        };
        assert_ne!(backoff(&o, &k, 0, 2), backoff(&o, &other, 0, 2));
    }

    #[test]
    fn flatten_ends_with_an_answer_cue() {
        let m = [
            PromptMessage::user("Q?"),
            PromptMessage::assistant("bad"),
            PromptMessage::user("again"),
        ];
        assert_eq!(flatten(&m), "Q?\n\nAnswer: bad\n\nagain\n\nAnswer:");
    }
}
