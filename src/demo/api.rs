//! The HTTP API (JSON) and the embedded page. Every error is a JSON body `{"error": "..."}`
//! with a 4xx status: 400 invalid JSON, 401 missing token, 404 unknown agent, 409 a refused
//! setting or an action that does not fit the state, 413 an oversized body, 422 an invalid
//! value (a profile field, a setting's value, a role-play answer that does not parse).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use futures::Stream;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use super::engine::{Action, Command, CommandError, Shared};
use crate::intervention::{Intervention, InterventionError, ProfilePatch};

/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 16 * 1024;

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const STYLE_CSS: &str = include_str!("page/style.css");

/// The handlers' state.
#[derive(Clone)]
pub struct AppState {
    /// Shared with the simulation thread.
    pub shared: Arc<Shared>,
    /// Commands to the simulation thread.
    pub tx: Arc<Mutex<mpsc::Sender<Command>>>,
    /// The token state-changing requests need (`None`: none needed).
    pub token: Option<Arc<str>>,
}

/// An API error: a status and a message.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("the request body is larger than {MAX_BODY} bytes")
        } else {
            r.body_text()
        };
        Self(status, msg)
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        let status = match &e {
            CommandError::Intervention(InterventionError::UnknownAgent(_)) => StatusCode::NOT_FOUND,
            CommandError::Intervention(InterventionError::Refused { .. })
            | CommandError::Conflict(_) => StatusCode::CONFLICT,
            CommandError::Intervention(InterventionError::Invalid { .. })
            | CommandError::Intervention(InterventionError::Config(_)) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(status, e.to_string())
    }
}

/// A JSON body whose rejections are JSON errors.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| Self(v))
            .map_err(ApiError::from)
    }
}

/// The router: the page, its assets and the API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(app_js))
        .route("/assets/style.css", get(style_css))
        .route("/api/state", get(get_state))
        .route("/api/events", get(events))
        .route("/api/control", post(control))
        .route("/api/agents", get(agents))
        .route("/api/agents/{id}", get(agent))
        .route("/api/graph", get(graph))
        .route("/api/stats", get(stats))
        .route("/api/config", get(config))
        .route("/api/agents/{id}/interview", post(interview))
        .route("/api/agents/{id}/message", post(message))
        .route("/api/agents/{id}/profile", patch(profile))
        .route("/api/settings", post(settings))
        .route("/api/roleplay", post(roleplay))
        .route("/api/roleplay/pending", get(roleplay_pending))
        .route("/api/roleplay/answer", post(roleplay_answer))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method (the README's endpoint table lists each one's)".into(),
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(refuse_oversized))
        .with_state(state)
}

/// Largest declared body that is read (and discarded) before its 413 is sent, in bytes.
const DRAINED_BODY: u64 = 1024 * 1024;

/// A body whose `Content-Length` is over [`MAX_BODY`] gets its 413 before any handler runs.
/// Up to [`DRAINED_BODY`] bytes it is read to the end first: answering while the client is
/// still sending makes the server close a socket with unread data, and the reset that follows
/// can destroy the 413 before the client reads it (a client saw "peer disconnected" instead).
/// Larger declared bodies are refused at once; bodies without a length (chunked) are limited
/// by [`DefaultBodyLimit`] in the JSON extractor.
async fn refuse_oversized(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > MAX_BODY as u64 => {
            if n <= DRAINED_BODY {
                // The body's content is refused either way; only the connection matters here.
                let _ = axum::body::to_bytes(req.into_body(), DRAINED_BODY as usize).await;
            }
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {MAX_BODY} bytes"),
            )
            .into_response()
        }
        _ => next.run(req).await,
    }
}

/// State-changing requests carry the token (`Authorization: Bearer T` or `X-Recagent-Token`)
/// when one is set.
async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &st.token {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let h = req.headers();
            let given = h
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .or_else(|| h.get("x-recagent-token").and_then(|v| v.to_str().ok()));
            if given != Some(&**token) {
                return ApiError(
                    StatusCode::UNAUTHORIZED,
                    "this server needs its token on requests that change state: send `Authorization: Bearer <token>` (the page takes it from the URL the demo printed, ?token=...)".into(),
                )
                .into_response();
            }
        }
    }
    next.run(req).await
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}
async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}
async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

async fn get_state(State(st): State<AppState>) -> Response {
    Json(st.shared.state()).into_response()
}

async fn events(State(st): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = st.shared.events.subscribe();
    let hello = serde_json::to_string(&st.shared.state()).unwrap_or_default();
    let first =
        futures::stream::once(async move { Ok(Event::default().event("hello").data(hello)) });
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        let e = match rx.recv().await {
            Ok(ev) => Event::default().event(ev.0.clone()).data(ev.1.clone()),
            // A slow page missed events: it reloads the state.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                Event::default().event("resync").data("{}")
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(e), rx))
    });
    use futures::StreamExt as _;
    Sse::new(first.chain(rest)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

impl AppState {
    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, CommandError>>) -> Command,
    ) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        let sent = self
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(make(tx));
        if sent.is_err() {
            return Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the simulation has stopped".into(),
            ));
        }
        rx.await
            .map_err(|_| {
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the simulation has stopped".into(),
                )
            })?
            .map_err(ApiError::from)
    }

    fn agent_known(&self, id: u32) -> Result<(), ApiError> {
        let snap = self.shared.snapshot();
        if snap.cards.binary_search_by_key(&id, |c| c.id).is_ok() {
            Ok(())
        } else {
            Err(unknown(id))
        }
    }
}

fn unknown(id: u32) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no agent has id {id}"))
}

fn agent_id(raw: &str) -> Result<u32, ApiError> {
    raw.parse().map_err(|_| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no agent has id {raw:?} (ids are whole numbers)"),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlBody {
    action: Action,
}

async fn control(
    State(st): State<AppState>,
    Body(b): Body<ControlBody>,
) -> Result<Response, ApiError> {
    match b.action {
        // Take effect at once, even while a round waits for a role-play answer.
        Action::Pause => {
            st.shared.running.store(false, Ordering::SeqCst);
        }
        Action::Reset => {
            st.shared.running.store(false, Ordering::SeqCst);
            st.shared.roleplay.cancel();
        }
        _ => {}
    }
    let action = b.action;
    let r = st.send(|tx| Command::Control(action, tx)).await;
    match (action, r) {
        // The flag was cleared above: report the change.
        (Action::Pause, Ok(mut reply)) => {
            reply.changed = true;
            Ok(Json(reply).into_response())
        }
        (_, r) => r.map(|reply| Json(reply).into_response()),
    }
}

async fn agents(State(st): State<AppState>) -> Response {
    let snap = st.shared.snapshot();
    Json(
        &snap
            .graph
            .nodes
            .iter()
            .map(|n| {
                let state = snap
                    .cards
                    .binary_search_by_key(&n.id, |c| c.id)
                    .map(|i| snap.cards[i].state)
                    .unwrap_or_default();
                json!({"id": n.id, "name": n.name, "state": state})
            })
            .collect::<Vec<_>>(),
    )
    .into_response()
}

async fn agent(State(st): State<AppState>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let id = agent_id(&raw)?;
    let snap = st.shared.snapshot();
    let i = snap
        .cards
        .binary_search_by_key(&id, |c| c.id)
        .map_err(|_| unknown(id))?;
    Ok(Json(&snap.cards[i]).into_response())
}

async fn graph(State(st): State<AppState>) -> Response {
    let snap = st.shared.snapshot();
    let nodes: Vec<_> = snap
        .cards
        .iter()
        .map(|c| json!({"id": c.id, "name": c.name, "state": c.state}))
        .collect();
    Json(json!({"nodes": nodes, "edges": snap.graph.edges})).into_response()
}

async fn stats(State(st): State<AppState>) -> Response {
    Json(&*st.shared.snapshot().stats).into_response()
}

async fn config(State(st): State<AppState>) -> Response {
    let v = st
        .shared
        .config
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Json(v).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuestionBody {
    question: String,
}

async fn interview(
    State(st): State<AppState>,
    Path(raw): Path<String>,
    Body(b): Body<QuestionBody>,
) -> Result<Response, ApiError> {
    let agent = agent_id(&raw)?;
    st.agent_known(agent)?;
    let answer = st
        .send(|tx| {
            Command::Intervene(
                Intervention::Interview {
                    agent,
                    question: b.question,
                },
                tx,
            )
        })
        .await?;
    Ok(Json(json!({"agent": agent, "answer": answer.unwrap_or_default()})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextBody {
    text: String,
}

async fn message(
    State(st): State<AppState>,
    Path(raw): Path<String>,
    Body(b): Body<TextBody>,
) -> Result<Response, ApiError> {
    let agent = agent_id(&raw)?;
    st.agent_known(agent)?;
    st.send(|tx| {
        Command::Intervene(
            Intervention::Message {
                agent,
                text: b.text,
            },
            tx,
        )
    })
    .await?;
    Ok(Json(json!({"agent": agent, "applied": true})).into_response())
}

async fn profile(
    State(st): State<AppState>,
    Path(raw): Path<String>,
    Body(patch): Body<ProfilePatch>,
) -> Result<Response, ApiError> {
    let agent = agent_id(&raw)?;
    st.agent_known(agent)?;
    st.send(|tx| Command::Intervene(Intervention::Profile { agent, patch }, tx))
        .await?;
    let snap = st.shared.snapshot();
    let i = snap
        .cards
        .binary_search_by_key(&agent, |c| c.id)
        .map_err(|_| unknown(agent))?;
    Ok(Json(&snap.cards[i]).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingBody {
    key: String,
    value: serde_json::Value,
}

async fn settings(
    State(st): State<AppState>,
    Body(b): Body<SettingBody>,
) -> Result<Response, ApiError> {
    let value = match &b.value {
        serde_json::Value::String(s) => s.clone(),
        v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => v.to_string(),
        _ => {
            return Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "value: a string, a number or a boolean".into(),
            ))
        }
    };
    let key = b.key.clone();
    st.send(|tx| {
        Command::Intervene(
            Intervention::Setting {
                key: b.key,
                value: value.clone(),
            },
            tx,
        )
    })
    .await?;
    Ok(Json(json!({"key": key, "value": value, "applied": true})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolePlayBody {
    agent: Option<u32>,
}

async fn roleplay(
    State(st): State<AppState>,
    Body(b): Body<RolePlayBody>,
) -> Result<Response, ApiError> {
    if let Some(a) = b.agent {
        st.agent_known(a)?;
    }
    st.shared.roleplay.set_agent(b.agent);
    st.shared
        .publish("roleplay", &json!({"agent": b.agent, "pending": null}));
    Ok(Json(json!({"agent": b.agent})).into_response())
}

async fn roleplay_pending(State(st): State<AppState>) -> Response {
    let rp = &st.shared.roleplay;
    Json(json!({"agent": rp.agent(), "pending": rp.pending()})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    id: u64,
    answer: String,
}

async fn roleplay_answer(
    State(st): State<AppState>,
    Body(b): Body<AnswerBody>,
) -> Result<Response, ApiError> {
    if b.answer.chars().count() > crate::intervention::MAX_TEXT_CHARS {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "answer: allowed 1..={} characters",
                crate::intervention::MAX_TEXT_CHARS
            ),
        ));
    }
    let rx = st
        .shared
        .roleplay
        .answer(b.id, b.answer)
        .map_err(|e| ApiError(StatusCode::CONFLICT, e.to_string()))?;
    match rx.await {
        Ok(Ok(())) => Ok(Json(json!({"id": b.id, "accepted": true})).into_response()),
        Ok(Err(why)) => Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the answer was not taken: {why}; answer in the format the prompt shows"),
        )),
        Err(_) => Err(ApiError(
            StatusCode::CONFLICT,
            "the request timed out before the answer arrived".into(),
        )),
    }
}
