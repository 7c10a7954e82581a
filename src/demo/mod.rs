//! The web demo (`recagent demo`): a live simulation in the browser, with controls,
//! interventions, interviews and role play.
//!
//! - [`engine`]: the simulation thread (one loop at most; commands between rounds; a delta
//!   per round);
//! - [`api`]: the HTTP API and the embedded page (`page/`: one HTML file, one script, one
//!   style sheet; no library, no network);
//! - [`view`]: the snapshots the GET endpoints answer from;
//! - [`roleplay`]: the behaviour-backend decorator through which a person plays an agent.
//!
//! The server binds 127.0.0.1 by default; any other address needs a token on every request
//! that changes state. Nothing secret is ever sent: the configuration goes out redacted
//! ([`crate::config::SimConfig::redacted_json`]).

pub mod api;
pub mod engine;
pub mod roleplay;
pub mod view;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

use crate::config::SimConfig;
use crate::io::output::OutputPaths;
use engine::{Command, Engine, Recipe, Shared};
use roleplay::RolePlay;

/// Errors starting the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The simulation could not be built.
    #[error(transparent)]
    Sim(crate::sim::SimError),
    /// Something else the demo needs could not be set up.
    #[error("{0}")]
    Setup(String),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
}

/// How to start the demo.
pub struct DemoOptions {
    /// The configuration.
    pub cfg: SimConfig,
    /// The outputs.
    pub paths: OutputPaths,
    /// Replace an earlier run in the outputs' folder.
    pub overwrite: bool,
    /// Address to bind.
    pub host: String,
    /// Port (0: any free port).
    pub port: u16,
    /// The token for state-changing requests; generated when `None` and the host is not a
    /// loopback address.
    pub token: Option<String>,
    /// How long a role-play request waits for the person.
    pub roleplay_timeout: Duration,
    /// A role-play log (`roleplay.jsonl`) to fill in again.
    pub roleplay_replay: Vec<roleplay::Played>,
}

/// A running demo server.
pub struct DemoServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The token state-changing requests need (`None`: none).
    pub token: Option<String>,
    /// Shared with the simulation thread.
    pub shared: Arc<Shared>,
    tx: mpsc::Sender<Command>,
    runtime: Option<tokio::runtime::Runtime>,
    sim_thread: Option<std::thread::JoinHandle<()>>,
}

impl DemoServer {
    /// The page's URL (with the token when there is one).
    pub fn url(&self) -> String {
        let host = match self.addr {
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
            SocketAddr::V4(a) => a.ip().to_string(),
        };
        match &self.token {
            Some(t) => format!("http://{host}:{}/?token={t}", self.addr.port()),
            None => format!("http://{host}:{}/", self.addr.port()),
        }
    }

    /// Serves until the process ends.
    pub fn wait(mut self) {
        if let Some(h) = self.sim_thread.take() {
            let _ = h.join();
        }
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Shutdown);
        self.shared.roleplay.cancel();
        self.shared
            .running
            .store(false, std::sync::atomic::Ordering::SeqCst);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A fresh token: 32 hex digits from the operating system's randomness.
fn fresh_token() -> String {
    let bits: [u8; 16] = rand::random();
    bits.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds the world, starts the simulation thread and the HTTP server, and returns once it
/// listens.
///
/// # Errors
/// [`DemoError`]: the world cannot be built, or the address cannot be bound.
pub fn start(o: DemoOptions) -> Result<DemoServer, DemoError> {
    let token = match o.token {
        Some(t) if !t.is_empty() => Some(t),
        _ if is_loopback(&o.host) => None,
        _ => Some(fresh_token()),
    };
    let (events, _) = tokio::sync::broadcast::channel(64);
    let ev = events.clone();
    let roleplay = Arc::new(RolePlay::new(
        o.roleplay_timeout,
        Box::new(move |p| {
            let data = serde_json::json!({"pending": p});
            let json = serde_json::to_string(&data).unwrap_or_default();
            let _ = ev.send(Arc::new(("roleplay".to_string(), json)));
        }),
    ));
    let shared = Arc::new(Shared {
        running: AtomicBool::new(false),
        loops: AtomicU64::new(0),
        rounds_run: AtomicU64::new(0),
        snapshot: RwLock::default(),
        events,
        roleplay,
        config: RwLock::new(o.cfg.redacted_json()),
    });
    let recipe = Recipe {
        cfg: o.cfg,
        paths: o.paths,
        overwrite: o.overwrite,
        replay: o.roleplay_replay,
    };
    // The world is not `Send`: it is built on its own thread, which reports how that went.
    let (tx, rx) = mpsc::channel();
    let (built_tx, built_rx) = mpsc::sync_channel(1);
    let sh = shared.clone();
    let sim_thread = std::thread::Builder::new()
        .name("recagent-demo-sim".into())
        .spawn(move || match Engine::new(recipe, sh) {
            Ok(engine) => {
                let _ = built_tx.send(Ok(()));
                engine.run(rx);
            }
            Err(e) => {
                let _ = built_tx.send(Err(e));
            }
        })
        .map_err(|e| DemoError::Setup(format!("cannot start the simulation thread: {e}")))?;
    built_rx
        .recv()
        .map_err(|_| DemoError::Setup("the simulation thread ended while building".into()))??;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| DemoError::Setup(format!("cannot start the HTTP runtime: {e}")))?;
    let bind = format!("{}:{}", o.host, o.port);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&bind))
        .map_err(|source| DemoError::Bind {
            addr: bind.clone(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| DemoError::Bind { addr: bind, source })?;
    let state = api::AppState {
        shared: shared.clone(),
        tx: Arc::new(Mutex::new(tx.clone())),
        token: token.as_deref().map(Arc::from),
    };
    let app = api::router(state);
    runtime.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the demo server stopped");
        }
    });
    Ok(DemoServer {
        addr,
        token,
        shared,
        tx,
        runtime: Some(runtime),
        sim_thread: Some(sim_thread),
    })
}
