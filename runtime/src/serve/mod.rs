//! `trainyard serve`: the JSON API in front of the trainer. Jobs are submitted as JSON, their
//! state lives in SQLite or PostgreSQL ([`state`]), and an executor runs their attempts under
//! the retry policy the Kubernetes Job uses ([`policy`]): [`local`] as child processes, or
//! [`kubernetes`] as the Jobs `trainyard render` builds. [`client`] is `trainyard submit` and
//! `trainyard jobs`.

pub mod api;
pub mod client;
pub mod kubernetes;
pub mod local;
pub mod policy;
pub mod state;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

/// What `trainyard serve` was given.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://...`.
    pub state: String,
    /// Runs root: `ROOT/<name>/<job id>` per attempt.
    pub runs_root: PathBuf,
    /// `--auth tokens.json`.
    pub auth: Option<PathBuf>,
    /// Listen beyond loopback without `--auth`.
    pub insecure_no_auth: bool,
    /// Concurrent attempts per resource class.
    pub slots: BTreeMap<String, usize>,
    /// The first retry's delay.
    pub retry_delay: Duration,
    /// The program attempts run; default: this binary.
    pub train_binary: Option<PathBuf>,
    /// Where attempts run.
    pub executor: ExecutorKind,
}

/// What runs the attempts of jobs: it claims queued jobs from the store, runs them, and records
/// how each attempt ended and what the job's state is next.
pub trait Executor: Send + 'static {
    /// Its name in the attempts table.
    const NAME: &'static str;
    /// Settles what a previous service left running, then works until the process ends.
    fn start(self) -> impl std::future::Future<Output = Result<Vec<tokio::task::JoinHandle<()>>>> + Send;
}

/// Where attempts run.
#[derive(Debug, Clone)]
pub enum ExecutorKind {
    /// `trainyard train` child processes of the service.
    Local,
    /// Kubernetes Jobs in `namespace` (in-cluster config, else the kubeconfig).
    Kubernetes {
        /// Namespace of the Jobs.
        namespace: String,
        /// Container image; default the release's.
        image: Option<String>,
        /// ServiceAccount of the pods.
        service_account: Option<String>,
    },
}

/// Reads `--auth`: `{"TOKEN": {"owner": "...", "admin": false}}`.
fn tokens(path: &std::path::Path) -> Result<BTreeMap<String, api::Identity>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::spec("--auth", format!("{}: {e}", path.display())))
}

/// Runs the service until the process is stopped.
pub fn run(opts: Options) -> Result<()> {
    if !opts.listen.ip().is_loopback() && opts.auth.is_none() && !opts.insecure_no_auth {
        return Err(Error::spec(
            "--listen",
            format!(
                "{} is not a loopback address: give --auth tokens.json, or --insecure-no-auth",
                opts.listen
            ),
        ));
    }
    let tokens = opts.auth.as_deref().map(tokens).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("starting the runtime: {e}")))?;
    runtime.block_on(async move {
        let store = state::Store::open(&opts.state).await?;
        let binary = match &opts.train_binary {
            Some(b) => b.clone(),
            None => {
                std::env::current_exe().map_err(|e| Error::Internal(format!("finding trainyard: {e}")))?
            }
        };
        let base_dir =
            std::env::current_dir().map_err(|e| Error::Internal(format!("working directory: {e}")))?;
        let runs_root = if opts.runs_root.is_absolute() {
            opts.runs_root.clone()
        } else {
            base_dir.join(&opts.runs_root)
        };
        let first_delay_us = i64::try_from(opts.retry_delay.as_micros()).unwrap_or(i64::MAX);
        let _schedulers = match &opts.executor {
            ExecutorKind::Local => {
                let executor = local::Local {
                    store: store.clone(),
                    binary,
                    logs: runs_root.join(".service").join("logs"),
                    runs_root: runs_root.clone(),
                    slots: opts.slots.clone(),
                    first_delay_us,
                    grace: Duration::from_secs(30),
                    poll: Duration::from_millis(200),
                };
                executor.start().await?
            }
            ExecutorKind::Kubernetes { namespace, image, service_account } => {
                let executor = kubernetes::Kubernetes {
                    store: store.clone(),
                    cluster: kubernetes::KubeCluster::infer(namespace).await?,
                    namespace: namespace.clone(),
                    image: image.clone(),
                    service_account: service_account.clone(),
                    slots: opts.slots.clone(),
                    poll: Duration::from_secs(2),
                    base_dir: base_dir.clone(),
                    runs_root: runs_root.clone(),
                    first_delay_us,
                };
                executor.start().await?
            }
        };
        let service = Arc::new(api::Service {
            store,
            tokens,
            base_dir,
            classes: opts.slots.keys().cloned().collect(),
            runs_root,
        });
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| Error::data(format!("--listen {}: {e}", opts.listen)))?;
        let addr = listener.local_addr().map_err(|e| Error::Internal(e.to_string()))?;
        tracing::info!(listen = %addr, state = %opts.state, "serving the trainyard API on http://{addr}");
        axum::serve(listener, api::router(service))
            .await
            .map_err(|e| Error::Internal(format!("serving: {e}")))
    })
}
