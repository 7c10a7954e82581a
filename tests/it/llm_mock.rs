//! An in-process OpenAI-compatible mock server (axum) for the LLM bridge tests and bench.
//!
//! `POST /v1/chat/completions` and `POST /v1/completions` ask a script what to do with each
//! request (given its body and a global 0-based hit number): answer, wait, fail with a status
//! (and `Retry-After`), drop the connection, send invalid JSON, empty `choices`, or a truncated
//! body. Accepted sockets get `TCP_NODELAY` (stack-notes §8). Runs on its own thread and runtime.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;
use serde_json::{json, Value};

/// What the mock does with one request.
#[derive(Clone, Debug)]
pub enum Step {
    /// Answer with this text (usage: prompt = chars/4, completion = chars/4).
    Answer(String),
    /// Wait, then do the inner step.
    Delay(Duration, Box<Step>),
    /// Reply with this status (and `Retry-After` seconds, as written).
    Status(u16, Option<String>),
    /// Send headers, then abort the body (connection dropped).
    Drop,
    /// 200 with a body that is not JSON.
    InvalidJson,
    /// 200 with `"choices": []`.
    EmptyChoices,
    /// 200 with half of a valid body, then the connection is cut.
    Truncated(String),
}

/// The script: `(request body, hit number) -> Step`.
pub type Script = Arc<dyn Fn(&Value, usize) -> Step + Send + Sync>;

#[derive(Clone)]
struct AppState {
    script: Script,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<(Value, Option<String>)>>>,
    /// Keep every body in `seen` (tests); off for the bench, which sends tens of thousands.
    record: bool,
    /// Bench mode: every request gets this pre-serialised answer after this delay, without
    /// parsing the request (so the mock spends as little CPU as it can).
    fixed: Option<(Duration, axum::body::Bytes)>,
    /// The bench's precise clock for `fixed` delays.
    timer: Option<PreciseTimer>,
}

/// Wakes each waiter at its deadline to within the kernel's timer slack (tens of µs), from a
/// thread of its own. tokio's timer rounds every deadline up to its next 1 ms tick and fires
/// the ticks in bursts, so a 50 ms `tokio::time::sleep` takes 50.5-51.5 ms and answers that
/// arrived up to 1 ms apart leave together: the bench's mock would not be "a 50 ms server".
#[derive(Clone)]
pub struct PreciseTimer {
    tx: std::sync::mpsc::Sender<(std::time::Instant, tokio::sync::oneshot::Sender<()>)>,
}

impl PreciseTimer {
    /// Starts the timer thread (it ends when the last handle is dropped).
    pub fn start() -> PreciseTimer {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        type Waiter = (std::time::Instant, u64, tokio::sync::oneshot::Sender<()>);
        struct ByDeadline(Waiter);
        impl PartialEq for ByDeadline {
            fn eq(&self, o: &Self) -> bool {
                (self.0 .0, self.0 .1) == (o.0 .0, o.0 .1)
            }
        }
        impl Eq for ByDeadline {}
        impl PartialOrd for ByDeadline {
            fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for ByDeadline {
            fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                (self.0 .0, self.0 .1).cmp(&(o.0 .0, o.0 .1))
            }
        }
        let (tx, rx) =
            std::sync::mpsc::channel::<(std::time::Instant, tokio::sync::oneshot::Sender<()>)>();
        std::thread::spawn(move || {
            let mut heap: BinaryHeap<Reverse<ByDeadline>> = BinaryHeap::new();
            let mut seq = 0u64;
            loop {
                let now = std::time::Instant::now();
                while heap.peek().is_some_and(|Reverse(w)| w.0 .0 <= now) {
                    if let Some(Reverse(ByDeadline((_, _, done)))) = heap.pop() {
                        let _ = done.send(());
                    }
                }
                let next = match heap.peek() {
                    Some(Reverse(w)) => rx.recv_timeout(w.0 .0.saturating_duration_since(now)),
                    None => rx
                        .recv()
                        .map_err(|_| std::sync::mpsc::RecvTimeoutError::Disconnected),
                };
                match next {
                    Ok((at, done)) => {
                        seq += 1;
                        heap.push(Reverse(ByDeadline((at, seq, done))));
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        if heap.is_empty() {
                            return;
                        }
                    }
                }
            }
        });
        PreciseTimer { tx }
    }

    /// Resolves at `at` (or at once when the timer thread is gone).
    pub async fn sleep_until(&self, at: std::time::Instant) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send((at, done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// A running mock server.
pub struct Mock {
    /// Base URL, e.g. `http://127.0.0.1:PORT/v1`.
    pub base: String,
    /// Requests received.
    pub hits: Arc<AtomicUsize>,
    /// Every request body with its `Authorization` header(s, joined by " | ").
    pub seen: Arc<Mutex<Vec<(Value, Option<String>)>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The last user message of a chat request, or the prompt of a completions request.
pub fn prompt_of(body: &Value) -> String {
    if let Some(msgs) = body["messages"].as_array() {
        return msgs
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string();
    }
    body["prompt"].as_str().unwrap_or("").to_string()
}

/// The first user message (the rendered decision prompt).
pub fn first_prompt(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.first())
        .and_then(|m| m["content"].as_str())
        .or_else(|| body["prompt"].as_str())
        .unwrap_or("")
        .to_string()
}

fn ok_body(body: &Value, text: &str) -> Value {
    let p = (prompt_of(body).len() / 4) as u64;
    let c = (text.len() / 4) as u64;
    json!({
        "id": "cmpl-mock", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "text": text, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
    })
}

async fn run_step(step: Step, body: &Value, timer: Option<&PreciseTimer>) -> Response {
    let mut step = step;
    loop {
        match step {
            Step::Delay(d, inner) => {
                match timer {
                    Some(t) => t.sleep_until(std::time::Instant::now() + d).await,
                    None => tokio::time::sleep(d).await,
                }
                step = *inner;
            }
            Step::Answer(t) => return axum::Json(ok_body(body, &t)).into_response(),
            Step::Status(code, ra) => {
                let mut r = (
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    "mock failure",
                )
                    .into_response();
                if let Some(ra) = ra {
                    r.headers_mut()
                        .insert("retry-after", ra.parse().expect("header value"));
                }
                return r;
            }
            Step::Drop => {
                let s = futures::stream::iter(vec![Err::<Vec<u8>, std::io::Error>(
                    std::io::Error::other("dropped"),
                )]);
                return Response::new(Body::from_stream(s));
            }
            Step::InvalidJson => return (StatusCode::OK, "{not json").into_response(),
            Step::EmptyChoices => {
                return axum::Json(json!({"choices": [], "usage": null})).into_response()
            }
            Step::Truncated(t) => {
                let full = serde_json::to_vec(&ok_body(body, &t)).unwrap_or_default();
                let half = full[..full.len() / 2].to_vec();
                let s = futures::stream::iter(vec![
                    Ok::<Vec<u8>, std::io::Error>(half),
                    Err(std::io::Error::other("cut")),
                ]);
                let mut r = Response::new(Body::from_stream(s));
                r.headers_mut()
                    .insert("content-length", full.len().to_string().parse().unwrap());
                return r;
            }
        }
    }
}

async fn handle(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let n = st.hits.fetch_add(1, Ordering::SeqCst);
    if let Some((d, answer)) = &st.fixed {
        match &st.timer {
            Some(t) => t.sleep_until(std::time::Instant::now() + *d).await,
            None => tokio::time::sleep(*d).await,
        }
        return (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            answer.clone(),
        )
            .into_response();
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Every `Authorization` header, joined by " | " (a request should carry at most one).
    let all: Vec<&str> = headers
        .get_all("authorization")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .collect();
    let auth = (!all.is_empty()).then(|| all.join(" | "));
    if st.record {
        st.seen.lock().unwrap().push((v.clone(), auth));
    }
    let step = (st.script)(&v, n);
    run_step(step, &v, st.timer.as_ref()).await
}

impl Mock {
    /// Starts a server running `script`, recording every request in `seen`.
    pub fn start(script: impl Fn(&Value, usize) -> Step + Send + Sync + 'static) -> Mock {
        Self::start_with(script, true)
    }

    /// Starts a server running `script`; `record`: keep every request in `seen`.
    pub fn start_with(
        script: impl Fn(&Value, usize) -> Step + Send + Sync + 'static,
        record: bool,
    ) -> Mock {
        Self::serve(Arc::new(script), record, None, false)
    }

    /// Starts a bench server running `script` on one thread, recording nothing, its delays kept
    /// to within the kernel's timer slack ([`PreciseTimer`]): the end-to-end LLM bench's mock,
    /// whose answers depend on the prompt ([`sensible_answer`]) and whose latency follows a
    /// distribution.
    pub fn start_bench(script: impl Fn(&Value, usize) -> Step + Send + Sync + 'static) -> Mock {
        Self::serve(Arc::new(script), false, None, true)
    }

    /// Starts a server that answers every request with `text` after `delay`, reading nothing
    /// of the request (the bench's mock: its CPU time per request is as small as axum allows).
    pub fn start_fixed(delay: Duration, text: &str) -> Mock {
        let body = serde_json::to_vec(&ok_body(&Value::Null, text)).unwrap_or_default();
        Self::serve(
            Arc::new(|_: &Value, _| Step::EmptyChoices),
            false,
            Some((delay, axum::body::Bytes::from(body))),
            true,
        )
    }

    fn serve(
        script: Script,
        record: bool,
        fixed: Option<(Duration, axum::body::Bytes)>,
        lean: bool,
    ) -> Mock {
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = AppState {
            script,
            hits: hits.clone(),
            seen: seen.clone(),
            record,
            timer: lean.then(PreciseTimer::start),
            fixed,
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            // The bench's fixed-answer mock runs on one thread: no cross-thread wake-ups, so
            // it takes as little of the machine's CPU as it can.
            let rt = if lean {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap()
            };
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                let app = Router::new()
                    .route("/v1/chat/completions", post(handle))
                    .route("/v1/completions", post(handle))
                    .with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        let addr = addr_rx.recv().unwrap();
        Mock {
            base: format!("http://{addr}/v1"),
            hits,
            seen,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

/// A deterministic "agent" answering every RecAgent-style prompt sensibly, from the prompt text
/// alone: the choice depends on the agent's name, so runs vary across agents but not across runs.
pub fn sensible_answer(body: &Value) -> String {
    let p = first_prompt(body);
    let name = p
        .strip_prefix("You are ")
        .and_then(|r| r.split(',').next())
        .unwrap_or("someone")
        .to_string();
    let h = name.bytes().map(u32::from).sum::<u32>();
    if p.contains("[RECOMMENDER]::") {
        return match h % 3 {
            0 | 1 => format!("[RECOMMENDER]:: {name} enters the Recommender System"),
            _ => format!("[SOCIAL]:: {name} enters the Social Media"),
        };
    }
    if p.contains("[BUY]::") {
        return match h % 4 {
            0 => "[NEXT]:: next page".into(),
            _ => format!("[BUY]:: {}", 1 + h % 3),
        };
    }
    if p.contains("RATING: <integer 1-5>") {
        return format!("RATING: {}; FEELING: I quite liked it.", 2 + h % 4);
    }
    if p.contains("[CHAT]:: <name") {
        // Chat with the first friend listed, or post.
        let friends = p
            .split("Friends available to chat now: ")
            .nth(1)
            .and_then(|r| r.split(".\n").next())
            .unwrap_or("");
        let first = friends.split(", ").next().unwrap_or("");
        return if h % 2 == 0 && !first.is_empty() && first != "nothing" {
            format!("[CHAT]:: {first}")
        } else {
            "[POST]:: movies".into()
        };
    }
    if p.contains("starts a conversation with") {
        let speakers: Vec<&str> = p
            .lines()
            .filter(|l| l.starts_with('[') && l.contains("]: <what"))
            .filter_map(|l| l.strip_prefix('[').and_then(|r| r.split(']').next()))
            .collect();
        if speakers.len() == 2 {
            return format!(
                "[{a}]: Hi {b}, seen anything good?\n[{b}]: Not much, you?\n[{a}]: A few things.",
                a = speakers[0],
                b = speakers[1]
            );
        }
    }
    if p.contains("wants to post a message") {
        return format!("{name} says: what a week for movies!");
    }
    "I do not know.".into()
}
