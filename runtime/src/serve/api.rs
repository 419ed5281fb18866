//! The JSON API: routes, bearer-token auth, and the mapping of trainyard errors to HTTP.
//! A spec error is 400 with the field's JSON path and exactly the CLI's message; a job of
//! another owner is 404, never 403, so ids of other owners' jobs reveal nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Error;
use crate::serve::state::{Job, JobState, ListFilter, NewJob, Store};
use crate::spec::{CheckedSpec, JobSpec};

/// Largest request body accepted (413 above).
pub const BODY_LIMIT: usize = 1 << 20;

/// A bearer token's identity (`--auth tokens.json`: `{"TOKEN": {"owner": "risk", "admin": false}}`).
#[derive(Debug, Clone, Deserialize)]
pub struct Identity {
    /// The owner its jobs get.
    pub owner: String,
    /// Sees and cancels every owner's jobs.
    #[serde(default)]
    pub admin: bool,
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct Service {
    /// The state store.
    pub store: Store,
    /// Tokens, or None without `--auth` (every caller is the admin `anonymous`).
    pub tokens: Option<BTreeMap<String, Identity>>,
    /// Relative input paths of submitted specs resolve against this directory.
    pub base_dir: PathBuf,
    /// Resource classes the executor has slots for.
    pub classes: Vec<String>,
    /// The runs root attempts write to: the registry `/v1/models` reads.
    pub runs_root: PathBuf,
}

/// The router.
pub fn router(service: Arc<Service>) -> axum::Router {
    axum::Router::new()
        .route("/v1/jobs", post(submit).get(list))
        .route("/v1/jobs/{id}", get(show))
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route("/v1/jobs/{id}/metrics", get(metrics_file))
        .route("/v1/jobs/{id}/manifest", get(manifest_file))
        .route("/v1/jobs/{id}/logs", get(logs))
        .route("/v1/models/{name}/production", get(production))
        .route("/v1/models/{name}/history", get(history))
        .route("/v1/openapi.json", get(openapi))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(prometheus))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(service)
}

/// An API error: status and a JSON body `{"error": ..., "field": ...}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

fn err(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError(status, json!({"error": message.into()}))
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match &e {
            Error::Spec { path, .. } => {
                ApiError(StatusCode::BAD_REQUEST, json!({"error": e.to_string(), "field": path}))
            }
            Error::Data(_) => err(StatusCode::BAD_REQUEST, e.to_string()),
            _ => {
                tracing::error!("request failed: {e}");
                err(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the service's log")
            }
        }
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The caller, from `Authorization: Bearer TOKEN`.
fn caller(service: &Service, headers: &HeaderMap) -> ApiResult<Identity> {
    let Some(tokens) = &service.tokens else {
        return Ok(Identity { owner: "anonymous".into(), admin: true });
    };
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| err(StatusCode::UNAUTHORIZED, "a bearer token is required"))?;
    tokens.get(token).cloned().ok_or_else(|| err(StatusCode::UNAUTHORIZED, "unknown token"))
}

/// The job `id` if the caller may see it; 404 otherwise, whether it exists or not.
async fn visible(service: &Service, who: &Identity, id: &str) -> ApiResult<Job> {
    match service.store.get(id).await? {
        Some(job) if who.admin || job.owner == who.owner => Ok(job),
        _ => Err(err(StatusCode::NOT_FOUND, format!("no job {id}"))),
    }
}

/// Makes every relative input path of `spec` absolute against `base`, so the attempt, which
/// runs the spec from its own directory, reads what the submitter named.
pub(crate) fn absolutize(spec: &mut Value, base: &Path) {
    let fix = |v: &mut Value| {
        if let Value::String(s) = v
            && !crate::store::is_url(s)
            && Path::new(crate::store::local_path(s)).is_relative()
        {
            *s = base.join(crate::store::local_path(s)).display().to_string();
        }
    };
    for (section, key) in [("data", "features"), ("data", "labels"), ("holdout", "files")] {
        if let Some(Value::Array(items)) = spec.get_mut(section).and_then(|s| s.get_mut(key)) {
            items.iter_mut().for_each(fix);
        }
    }
    if let Some(Value::Array(items)) = spec.pointer_mut("/holdout/files/files") {
        items.iter_mut().for_each(fix);
    }
    for pointer in ["/baseline/run", "/baseline/root"] {
        if let Some(v) = spec.pointer_mut(pointer) {
            fix(v);
        }
    }
}

async fn submit(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let who = caller(&service, &headers)?;
    // Either the spec itself, or {"spec": ..., "resources": ..., "labels": ...}.
    let (mut spec_json, resources, labels) = match body.get("spec") {
        Some(spec) => (spec.clone(), body.get("resources").cloned(), body.get("labels").cloned()),
        None => (body.clone(), None, None),
    };
    if let Some(Value::String(class)) = &resources {
        spec_json["resources"] = Value::String(class.clone());
    }
    let spec = JobSpec::from_json(&spec_json.to_string(), &[])?;
    let checked = CheckedSpec::new(spec, &service.base_dir)?;
    let class = checked.resources.map_or("cpu-small", |c| c.name()).to_string();
    if !service.classes.contains(&class) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("resources: this service has no slots for {class:?}; it runs {}", service.classes.join(", ")), "field": "resources"}),
        ));
    }
    let labels = match labels {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(m)) => Value::Object(m),
        Some(_) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                json!({"error": "labels: must be an object", "field": "labels"}),
            ));
        }
    };
    absolutize(&mut spec_json, &service.base_dir);
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    let new = NewJob {
        owner: who.owner,
        name: checked.spec.name.clone(),
        resources: class,
        labels,
        spec: spec_json,
        idempotency_key: key,
    };
    let (job, created) = service.store.submit(new).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({"id": job.id, "state": job.state}))))
}

async fn show(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    let who = caller(&service, &headers)?;
    let job = visible(&service, &who, &id).await?;
    let attempts = service.store.attempts(&id).await?;
    let transitions = service.store.transitions(&id).await?;
    Ok(Json(json!({
        "id": job.id,
        "owner": job.owner,
        "name": job.name,
        "state": job.state,
        "resources": job.resources,
        "labels": job.labels,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "cancel_requested": job.cancel_requested,
        "run_path": job.run_path,
        "result": job.result,
        "attempts": attempts,
        "transitions": transitions,
    })))
}

/// `GET /v1/jobs` query.
#[derive(Debug, Deserialize)]
struct ListQuery {
    name: Option<String>,
    owner: Option<String>,
    state: Option<String>,
    since: Option<i64>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let who = caller(&service, &headers)?;
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<JobState>()
                .map_err(|e| ApiError(StatusCode::BAD_REQUEST, json!({"error": e, "field": "state"})))?,
        ),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    // A non-admin token lists its own jobs whatever `owner` says.
    let owner = if who.admin { q.owner } else { Some(who.owner) };
    let filter = ListFilter { owner, name: q.name, state, since: q.since, cursor: q.cursor, limit };
    let jobs = service.store.list(&filter).await?;
    let next = (jobs.len() as i64 == limit).then(|| jobs.last().map(|j| j.id.clone())).flatten();
    let items: Vec<Value> = jobs
        .iter()
        .map(|j| json!({"id": j.id, "owner": j.owner, "name": j.name, "state": j.state, "resources": j.resources, "created_at": j.created_at, "updated_at": j.updated_at}))
        .collect();
    Ok(Json(json!({"jobs": items, "next_cursor": next})))
}

async fn cancel(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    let who = caller(&service, &headers)?;
    visible(&service, &who, &id).await?;
    let state = service.store.cancel(&id).await?;
    Ok(Json(json!({"id": id, "state": state})))
}

/// A file of the job's run directory, as JSON.
async fn run_file(service: &Service, headers: &HeaderMap, id: &str, name: &str) -> ApiResult<Json<Value>> {
    let who = caller(service, headers)?;
    let job = visible(service, &who, id).await?;
    let Some(run) = job.run_path else {
        return Err(err(StatusCode::NOT_FOUND, format!("job {id} has written no run directory yet")));
    };
    let path = Path::new(&run).join(name);
    let text =
        std::fs::read_to_string(&path).map_err(|e| err(StatusCode::NOT_FOUND, format!("{name}: {e}")))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, format!("{name}: {e}")))?;
    Ok(Json(value))
}

async fn metrics_file(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    run_file(&service, &headers, &id, "metrics.json").await
}

async fn manifest_file(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    run_file(&service, &headers, &id, "manifest.json").await
}

/// `GET /v1/jobs/{id}/logs` query.
#[derive(Debug, Deserialize)]
struct LogsQuery {
    tail: Option<usize>,
    attempt: Option<i64>,
}

async fn logs(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<String> {
    let who = caller(&service, &headers)?;
    visible(&service, &who, &id).await?;
    let attempts = service.store.attempts(&id).await?;
    let attempt = match q.attempt {
        Some(n) => attempts.iter().find(|a| a.attempt == n),
        None => attempts.last(),
    }
    .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("job {id} has no such attempt")))?;
    let Some(path) = &attempt.log_path else {
        return Err(err(
            StatusCode::NOT_FOUND,
            "the attempt has no log here (a Kubernetes attempt's log is in its pod)",
        ));
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(StatusCode::NOT_FOUND, format!("log: {e}")))?;
    let lines: Vec<&str> = text.lines().collect();
    let tail = q.tail.unwrap_or(lines.len()).min(lines.len());
    Ok(lines[lines.len() - tail..].join("\n") + "\n")
}

async fn ready(State(service): State<Arc<Service>>) -> ApiResult<&'static str> {
    service.store.schema_version().await?;
    Ok("ready\n")
}

async fn prometheus(State(service): State<Arc<Service>>) -> ApiResult<String> {
    let mut out = String::from("# HELP trainyard_jobs Jobs by state.\n# TYPE trainyard_jobs gauge\n");
    for (state, n) in service.store.counts().await? {
        out.push_str(&format!("trainyard_jobs{{state=\"{state}\"}} {n}\n"));
    }
    let (queued, ran) = service.store.durations().await?;
    histogram(
        &mut out,
        "trainyard_job_queue_seconds",
        "Seconds from submission to the first attempt's start.",
        &queued,
    );
    histogram(&mut out, "trainyard_attempt_run_seconds", "Seconds each ended attempt ran.", &ran);
    Ok(out)
}

/// Upper bounds of the duration histograms: a second to a day.
const BUCKETS: [f64; 12] =
    [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0, 86400.0];

/// A Prometheus histogram of `values` (seconds), cumulative as the text format has it.
fn histogram(out: &mut String, name: &str, help: &str, values: &[f64]) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
    for bound in BUCKETS {
        let n = values.iter().filter(|v| **v <= bound).count();
        out.push_str(&format!("{name}_bucket{{le=\"{bound}\"}} {n}\n"));
    }
    out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {}\n", values.len()));
    out.push_str(&format!("{name}_sum {}\n{name}_count {}\n", values.iter().sum::<f64>(), values.len()));
}

/// The OpenAPI document of this API (`/v1/openapi.json`), kept beside the routes it describes;
/// a test checks that every route is in it.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The runs root as the registry, for `/v1/models`. Production pointers are per name, not per
/// owner: any valid token reads them, as `trainyard runs production` reads any root it can open.
async fn registry<T: Send + 'static>(
    service: &Service,
    headers: &HeaderMap,
    read: impl FnOnce(&crate::registry::Root) -> crate::error::Result<T> + Send + 'static,
) -> ApiResult<T> {
    caller(service, headers)?;
    let root = service.runs_root.clone();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        read(&crate::registry::Root::Local(root))
    })
    .await
    .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the registry: {e}")))?
    .map_err(|e| match e {
        Error::Usage(m) => err(StatusCode::BAD_REQUEST, m),
        e => ApiError::from(e),
    })
}

async fn production(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    let wanted = name.clone();
    let pointer =
        registry(&service, &headers, move |root| crate::registry::production::current(root, &wanted)).await?;
    let pointer =
        pointer.ok_or_else(|| err(StatusCode::NOT_FOUND, format!("{name} has no production run")))?;
    Ok(Json(
        serde_json::to_value(pointer).map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
    ))
}

async fn history(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    let mut entries =
        registry(&service, &headers, move |root| crate::registry::production::history(root, &name)).await?;
    // Newest first, as `trainyard runs history` prints it.
    entries.reverse();
    Ok(Json(json!({"promotions": entries})))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_openapi_document_and_nothing_else_is() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let documented: std::collections::BTreeSet<String> =
            doc["paths"].as_object().unwrap().keys().cloned().collect();
        let source = include_str!("api.rs");
        let routed: std::collections::BTreeSet<String> = source
            .split(".route(\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_string)
            .collect();
        assert!(routed.len() >= 12, "{routed:?}");
        assert_eq!(routed, documented);
    }
}
