//! The service's state: jobs, their attempts and state transitions, in SQLite (the embedded
//! default) or PostgreSQL, through one body of SQL (sqlx's Any driver; `$N` placeholders, which
//! both accept). Every state change is one transaction that also checks the state it changes
//! from, so two replicas (or a restarted service and its predecessor's leftovers) can never both
//! start, finish or cancel the same job.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::error::{Error, Result};

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted, waiting for a slot.
    Queued,
    /// An attempt is running.
    Running,
    /// The last attempt exited 0.
    Succeeded,
    /// An attempt failed for good (exit 2 or 3, or retries used up).
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl JobState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether nothing more happens to a job in this state.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            other => return Err(format!("unknown job state {other:?}")),
        })
    }
}

/// Schema migrations, applied in order on start; each runs once, in its own transaction.
/// Types are the common subset: TEXT, BIGINT (SQLite's INTEGER is 64-bit either way), times in
/// microseconds since the epoch, JSON as TEXT.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        resources TEXT NOT NULL,
        labels TEXT NOT NULL,
        spec TEXT NOT NULL,
        idempotency_key TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        cancel_requested BIGINT NOT NULL DEFAULT 0,
        not_before BIGINT NOT NULL DEFAULT 0,
        run_path TEXT,
        result TEXT
    );
    CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner, idempotency_key);
    CREATE INDEX jobs_state ON jobs (state, created_at);
    CREATE INDEX jobs_owner ON jobs (owner, created_at);
    CREATE TABLE attempts (
        job_id TEXT NOT NULL,
        attempt BIGINT NOT NULL,
        executor TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        finished_at BIGINT,
        exit_code BIGINT,
        message TEXT,
        log_path TEXT,
        PRIMARY KEY (job_id, attempt)
    );
    CREATE TABLE transitions (
        job_id TEXT NOT NULL,
        state TEXT NOT NULL,
        at BIGINT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX transitions_job ON transitions (job_id, at);",
    ),
    // Where an executor runs the job: for Kubernetes, the Job's name and the attempt its
    // first pod is, so a restarted service re-attaches and knows a Job it created from one
    // it never got to create.
    (2, "ALTER TABLE jobs ADD COLUMN executor_ref TEXT"),
];

/// `GET /v1/jobs` filters.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this owner's jobs (always set for a non-admin token).
    pub owner: Option<String>,
    /// Only this spec name.
    pub name: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Created at or after this time (microseconds since the epoch).
    pub since: Option<i64>,
    /// The last id of the previous page.
    pub cursor: Option<String>,
    /// Page size.
    pub limit: i64,
}

/// What a submission stores.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The owner (from the bearer token; `anonymous` without auth).
    pub owner: String,
    /// The spec's name.
    pub name: String,
    /// Resource class.
    pub resources: String,
    /// Free labels, as JSON.
    pub labels: serde_json::Value,
    /// The spec, as JSON.
    pub spec: serde_json::Value,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: String,
    /// Owner.
    pub owner: String,
    /// The spec's name.
    pub name: String,
    /// State.
    pub state: JobState,
    /// Resource class.
    pub resources: String,
    /// Labels.
    pub labels: serde_json::Value,
    /// The spec.
    pub spec: serde_json::Value,
    /// Created, microseconds since the epoch.
    pub created_at: i64,
    /// Last changed.
    pub updated_at: i64,
    /// A cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// The run directory, once an attempt wrote one.
    pub run_path: Option<String>,
    /// Test metrics and promotion, when done.
    pub result: Option<serde_json::Value>,
    /// Where its executor runs it (JSON; the Kubernetes executor's Job name and first attempt).
    pub executor_ref: Option<String>,
}

/// One attempt of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1, 2, ...
    pub attempt: i64,
    /// `local` or `kubernetes`.
    pub executor: String,
    /// Started, microseconds since the epoch.
    pub started_at: i64,
    /// Finished.
    pub finished_at: Option<i64>,
    /// Exit code.
    pub exit_code: Option<i64>,
    /// Termination message (the last error line).
    pub message: Option<String>,
    /// Its log file.
    pub log_path: Option<String>,
}

/// How an attempt ended, for [`Store::finish`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AttemptEnd<'a> {
    /// The exit code (-1: the service lost the process, e.g. it restarted).
    pub exit_code: i64,
    /// The termination message.
    pub message: &'a str,
    /// The attempt's log file.
    pub log_path: Option<&'a str>,
    /// The run directory it wrote.
    pub run_path: Option<&'a str>,
    /// Test metrics and promotion.
    pub result: Option<&'a serde_json::Value>,
    /// A retry is not claimed before this time (microseconds since the epoch).
    pub not_before: i64,
}

/// One state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// The new state.
    pub state: JobState,
    /// When, microseconds since the epoch.
    pub at: i64,
    /// Why.
    pub reason: String,
}

/// The state store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

/// Microseconds since the epoch.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn db(what: &str, e: sqlx::Error) -> Error {
    Error::Internal(format!("state store: {what}: {e}"))
}

/// Column `c` of `row`, with the column named when it cannot be read.
fn col<'r, T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>>(row: &'r AnyRow, c: &str) -> Result<T> {
    row.try_get(c).map_err(|e| db(c, e))
}

const JOB_COLUMNS: &str = "id, owner, name, state, resources, labels, spec, created_at, updated_at, \
                           cancel_requested, run_path, result, executor_ref";

fn job_from(row: &AnyRow) -> Result<Job> {
    let get_s = |c: &str| col::<String>(row, c);
    let parse = |c: &str, s: String| {
        serde_json::from_str(&s).map_err(|e| Error::Internal(format!("state store: {c}: {e}")))
    };
    let result: Option<String> = col(row, "result")?;
    Ok(Job {
        id: get_s("id")?,
        owner: get_s("owner")?,
        name: get_s("name")?,
        state: get_s("state")?.parse().map_err(Error::Internal)?,
        resources: get_s("resources")?,
        labels: parse("labels", get_s("labels")?)?,
        spec: parse("spec", get_s("spec")?)?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
        cancel_requested: col::<i64>(row, "cancel_requested")? != 0,
        run_path: col(row, "run_path")?,
        result: result.map(|r| parse("result", r)).transpose()?,
        executor_ref: col(row, "executor_ref")?,
    })
}

impl Store {
    /// Opens `url` (`sqlite://PATH`, created on first start, or `postgres://...`) and applies
    /// the migrations it lacks.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let url = if let Some(path) = url.strip_prefix("sqlite://") {
            // Created when missing; WAL lets readers go on while a transition commits.
            format!("sqlite://{path}?mode=rwc")
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url.to_string()
        } else {
            return Err(Error::spec(
                "--state",
                format!("expected sqlite://PATH or postgres://..., got {url:?}"),
            ));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if url.starts_with("sqlite") { 1 } else { 8 })
            .connect(&url)
            .await
            .map_err(|e| Error::data(format!("--state: cannot open {url}: {e}")))?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies every migration not yet recorded in `schema_migrations`.
    async fn migrate(&self) -> Result<()> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .execute(&self.pool)
            .await
            .map_err(|e| db("creating schema_migrations", e))?;
        for (version, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await.map_err(|e| db("migration", e))?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(*version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| db("reading schema_migrations", e))?;
            if done.is_some() {
                continue;
            }
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db(&format!("migration {version}"), e))?;
            }
            // A concurrent replica applying the same migration fails here on the primary key and
            // rolls back; the tables are then there.
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(now_us())
                .execute(&mut *tx)
                .await
                .map_err(|e| db(&format!("recording migration {version}"), e))?;
            tx.commit().await.map_err(|e| db(&format!("migration {version}"), e))?;
        }
        Ok(())
    }

    /// The schema version applied.
    pub async fn schema_version(&self) -> Result<i64> {
        sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db("schema version", e))
    }

    /// Stores a queued job, or returns the owner's job with the same idempotency key; the bool
    /// says whether it is new.
    pub async fn submit(&self, new: NewJob) -> Result<(Job, bool)> {
        if let Some(key) = &new.idempotency_key
            && let Some(job) = self.by_idempotency_key(&new.owner, key).await?
        {
            return Ok((job, false));
        }
        let now = now_us();
        let id = job_id(now);
        let mut tx = self.pool.begin().await.map_err(|e| db("submit", e))?;
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, owner, name, state, resources, labels, spec, idempotency_key, created_at, updated_at)
             VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8, $8)",
        )
        .bind(&id)
        .bind(&new.owner)
        .bind(&new.name)
        .bind(&new.resources)
        .bind(new.labels.to_string())
        .bind(new.spec.to_string())
        .bind(new.idempotency_key.clone())
        .bind(now)
        .execute(&mut *tx)
        .await;
        if let Err(e) = inserted {
            drop(tx);
            // Two submissions with the same key raced: the other one's insert won.
            if let Some(key) = &new.idempotency_key
                && let Some(job) = self.by_idempotency_key(&new.owner, key).await?
            {
                return Ok((job, false));
            }
            return Err(db("submit", e));
        }
        transition(&mut tx, &id, JobState::Queued, now, "submitted").await?;
        // Read inside the transaction: once it commits, the scheduler may claim the job before a
        // second read, and the submitter would be told "running" for the job it just queued.
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| db("submit", e))?;
        tx.commit().await.map_err(|e| db("submit", e))?;
        let job = row.as_ref().map(job_from).transpose()?;
        Ok((job.ok_or_else(|| Error::Internal(format!("job {id} vanished")))?, true))
    }

    async fn by_idempotency_key(&self, owner: &str, key: &str) -> Result<Option<Job>> {
        let row =
            sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE owner = $1 AND idempotency_key = $2"))
                .bind(owner)
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| db("idempotency key", e))?;
        row.as_ref().map(job_from).transpose()
    }

    /// The job `id`.
    pub async fn get(&self, id: &str) -> Result<Option<Job>> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("reading a job", e))?;
        row.as_ref().map(job_from).transpose()
    }

    /// Moves the oldest queued job of `resources` to running and opens its next attempt, in one
    /// transaction that only succeeds from `queued`; None when none is queued.
    pub async fn claim(&self, resources: &str, executor: &str) -> Result<Option<(Job, i64)>> {
        loop {
            let candidate: Option<String> = sqlx::query_scalar(
                "SELECT id FROM jobs WHERE state = 'queued' AND resources = $1 AND not_before <= $2
                 ORDER BY created_at, id LIMIT 1",
            )
            .bind(resources)
            .bind(now_us())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db("claiming a job", e))?;
            let Some(id) = candidate else { return Ok(None) };
            let now = now_us();
            let mut tx = self.pool.begin().await.map_err(|e| db("claiming a job", e))?;
            let moved = sqlx::query(
                "UPDATE jobs SET state = 'running', updated_at = $2 WHERE id = $1 AND state = 'queued'",
            )
            .bind(&id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("claiming a job", e))?
            .rows_affected();
            if moved == 0 {
                // Another replica claimed or a user cancelled it in between: try the next one.
                continue;
            }
            let attempt: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(attempt), 0) + 1 FROM attempts WHERE job_id = $1")
                    .bind(&id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| db("numbering the attempt", e))?;
            sqlx::query(
                "INSERT INTO attempts (job_id, attempt, executor, started_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(attempt)
            .bind(executor)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("opening an attempt", e))?;
            transition(&mut tx, &id, JobState::Running, now, &format!("attempt {attempt} started")).await?;
            tx.commit().await.map_err(|e| db("claiming a job", e))?;
            let job = self.get(&id).await?.ok_or_else(|| Error::Internal(format!("job {id} vanished")))?;
            return Ok(Some((job, attempt)));
        }
    }

    /// Closes a running attempt and moves the job to `next` (queued again for a retry, not
    /// claimed before `end.not_before`, or a final state); false when the job was no longer
    /// running (cancelled meanwhile).
    pub async fn finish(&self, id: &str, attempt: i64, end: &AttemptEnd<'_>, next: JobState) -> Result<bool> {
        let AttemptEnd { exit_code, message, log_path, run_path, result, not_before } = *end;
        let now = now_us();
        let mut tx = self.pool.begin().await.map_err(|e| db("finishing an attempt", e))?;
        sqlx::query(
            "UPDATE attempts SET finished_at = $3, exit_code = $4, message = $5, log_path = COALESCE($6, log_path)
             WHERE job_id = $1 AND attempt = $2 AND finished_at IS NULL",
        )
        .bind(id)
        .bind(attempt)
        .bind(now)
        .bind(exit_code)
        .bind(message)
        .bind(log_path)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("finishing an attempt", e))?;
        let moved = sqlx::query(
            "UPDATE jobs SET state = $2, updated_at = $3, run_path = COALESCE($4, run_path),
             result = COALESCE($5, result), not_before = $6
             WHERE id = $1 AND state = 'running'",
        )
        .bind(id)
        .bind(next.as_str())
        .bind(now)
        .bind(run_path)
        .bind(result.map(|r| r.to_string()))
        .bind(not_before)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("finishing a job", e))?
        .rows_affected();
        if moved == 1 {
            let reason = format!("attempt {attempt} exited {exit_code}");
            transition(&mut tx, id, next, now, &reason).await?;
        }
        tx.commit().await.map_err(|e| db("finishing an attempt", e))?;
        Ok(moved == 1)
    }

    /// Cancels a queued job at once, or marks a running one for its executor to stop; returns
    /// the job's state after the call (None when there is no such job).
    pub async fn cancel(&self, id: &str) -> Result<Option<JobState>> {
        let now = now_us();
        let mut tx = self.pool.begin().await.map_err(|e| db("cancelling", e))?;
        let queued = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', updated_at = $2 WHERE id = $1 AND state = 'queued'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("cancelling", e))?
        .rows_affected();
        if queued == 1 {
            transition(&mut tx, id, JobState::Cancelled, now, "cancelled while queued").await?;
        } else {
            sqlx::query(
                "UPDATE jobs SET cancel_requested = 1, updated_at = $2 WHERE id = $1 AND state = 'running'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("cancelling", e))?;
        }
        tx.commit().await.map_err(|e| db("cancelling", e))?;
        Ok(self.get(id).await?.map(|j| j.state))
    }

    /// Attempts of `executor` still open: what a service that died left running. The caller
    /// closes each with [`Store::finish`] and the retry policy.
    pub async fn open_attempts(&self, executor: &str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT a.job_id, a.attempt FROM attempts a JOIN jobs j ON j.id = a.job_id
             WHERE a.executor = $1 AND a.finished_at IS NULL AND j.state = 'running' ORDER BY a.started_at",
        )
        .bind(executor)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db("reading open attempts", e))?;
        rows.iter().map(|r| Ok((col(r, "job_id")?, col(r, "attempt")?))).collect()
    }

    /// Jobs matching `filter`, newest first, after the cursor (the last id of the previous page).
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs
             WHERE ($1 = '' OR owner = $1) AND ($2 = '' OR name = $2) AND ($3 = '' OR state = $3)
               AND created_at >= $4 AND ($5 = '' OR id < $5)
             ORDER BY id DESC LIMIT $6"
        ))
        .bind(filter.owner.clone().unwrap_or_default())
        .bind(filter.name.clone().unwrap_or_default())
        .bind(filter.state.map_or("", JobState::as_str))
        .bind(filter.since.unwrap_or(0))
        .bind(filter.cursor.clone().unwrap_or_default())
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db("listing jobs", e))?;
        rows.iter().map(job_from).collect()
    }

    /// Jobs per state, for `/metrics`.
    pub async fn counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state ORDER BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db("counting jobs", e))?;
        rows.iter().map(|r| Ok((col(r, "state")?, col(r, "n")?))).collect()
    }

    /// Records the log file of open attempt `attempt` of `id`.
    pub async fn set_log_path(&self, id: &str, attempt: i64, path: &str) -> Result<()> {
        sqlx::query("UPDATE attempts SET log_path = $3 WHERE job_id = $1 AND attempt = $2")
            .bind(id)
            .bind(attempt)
            .bind(path)
            .execute(&self.pool)
            .await
            .map_err(|e| db("recording an attempt's log", e))?;
        Ok(())
    }

    /// Records where the executor runs job `id`.
    pub async fn set_executor_ref(&self, id: &str, value: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE jobs SET executor_ref = $2 WHERE id = $1")
            .bind(id)
            .bind(value)
            .execute(&self.pool)
            .await
            .map_err(|e| db("recording the executor's reference", e))?;
        Ok(())
    }

    /// The running jobs whose attempts `executor` runs, oldest first.
    pub async fn running(&self, executor: &str) -> Result<Vec<Job>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'running'
               AND EXISTS (SELECT 1 FROM attempts a WHERE a.job_id = jobs.id AND a.executor = $1)
             ORDER BY created_at, id"
        ))
        .bind(executor)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db("reading running jobs", e))?;
        rows.iter().map(job_from).collect()
    }

    /// Opens attempt `attempt` of running job `id`, started at `started_at`, when the attempt
    /// before it has ended (an executor that retries by itself, as a Kubernetes Job does);
    /// returns whether it was opened.
    pub async fn open_attempt(
        &self,
        id: &str,
        attempt: i64,
        executor: &str,
        started_at: i64,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(|e| db("opening an attempt", e))?;
        let ready: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs j WHERE j.id = $1 AND j.state = 'running'
               AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.job_id = j.id AND (a.attempt >= $2 OR a.finished_at IS NULL))",
        )
        .bind(id)
        .bind(attempt)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| db("opening an attempt", e))?;
        if ready == 0 {
            return Ok(false);
        }
        sqlx::query("INSERT INTO attempts (job_id, attempt, executor, started_at) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(attempt)
            .bind(executor)
            .bind(started_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| db("opening an attempt", e))?;
        transition(&mut tx, id, JobState::Running, now_us(), &format!("attempt {attempt} started")).await?;
        tx.commit().await.map_err(|e| db("opening an attempt", e))?;
        Ok(true)
    }

    /// Seconds from each job's submission to its first attempt's start, and seconds each ended
    /// attempt ran: the service's queue and run time histograms.
    pub async fn durations(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let rows = sqlx::query(
            "SELECT a.attempt, a.started_at, a.finished_at, j.created_at
             FROM attempts a JOIN jobs j ON j.id = a.job_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db("reading attempt times", e))?;
        let (mut queued, mut ran) = (Vec::new(), Vec::new());
        for r in &rows {
            let (attempt, started): (i64, i64) = (col(r, "attempt")?, col(r, "started_at")?);
            if attempt == 1 {
                queued.push((started - col::<i64>(r, "created_at")?) as f64 / 1e6);
            }
            if let Some(finished) = col::<Option<i64>>(r, "finished_at")? {
                ran.push((finished - started) as f64 / 1e6);
            }
        }
        Ok((queued, ran))
    }

    /// A job's attempts, in order.
    pub async fn attempts(&self, id: &str) -> Result<Vec<Attempt>> {
        let rows = sqlx::query(
            "SELECT attempt, executor, started_at, finished_at, exit_code, message, log_path
             FROM attempts WHERE job_id = $1 ORDER BY attempt",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db("reading attempts", e))?;
        rows.iter()
            .map(|r| {
                Ok(Attempt {
                    attempt: col(r, "attempt")?,
                    executor: col(r, "executor")?,
                    started_at: col(r, "started_at")?,
                    finished_at: col(r, "finished_at")?,
                    exit_code: col(r, "exit_code")?,
                    message: col(r, "message")?,
                    log_path: col(r, "log_path")?,
                })
            })
            .collect()
    }

    /// A job's state changes, in order.
    pub async fn transitions(&self, id: &str) -> Result<Vec<Transition>> {
        let rows =
            sqlx::query("SELECT state, at, reason FROM transitions WHERE job_id = $1 ORDER BY at, state")
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| db("reading transitions", e))?;
        rows.iter()
            .map(|r| {
                let state: String = col(r, "state")?;
                Ok(Transition {
                    state: state.parse().map_err(Error::Internal)?,
                    at: col(r, "at")?,
                    reason: col(r, "reason")?,
                })
            })
            .collect()
    }
}

async fn transition(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    state: JobState,
    at: i64,
    reason: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO transitions (job_id, state, at, reason) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(state.as_str())
        .bind(at)
        .bind(reason)
        .execute(&mut **tx)
        .await
        .map_err(|e| db("recording a transition", e))?;
    Ok(())
}

/// A job id: the submission time and random bits, so ids sort by submission and never collide
/// across replicas.
fn job_id(now_us: i64) -> String {
    let salt = crate::random::mix64(now_us as u64 ^ u64::from(std::process::id()) ^ rand_bits());
    format!("job-{now_us:016x}-{:08x}", salt as u32)
}

/// Bits that differ between calls in one process.
fn rand_bits() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    crate::random::mix64(t ^ COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn new_job(key: Option<&str>) -> NewJob {
        NewJob {
            owner: "risk".into(),
            name: "fraud".into(),
            resources: "cpu-small".into(),
            labels: serde_json::json!({"project": "p"}),
            spec: serde_json::json!({"name": "fraud"}),
            idempotency_key: key.map(str::to_string),
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    /// The state URLs a test body runs against: a fresh SQLite file, and with
    /// `TRAINYARD_POSTGRES_URL` (a server's admin URL, e.g. postgres://postgres@127.0.0.1:55432/postgres)
    /// a fresh database on that server. `TRAINYARD_REQUIRE_POSTGRES=1` (CI) makes its absence a
    /// failure instead of a skip.
    async fn backends(dir: &std::path::Path) -> Vec<String> {
        let mut urls = vec![format!("sqlite://{}", dir.join("state.db").display())];
        match std::env::var("TRAINYARD_POSTGRES_URL") {
            Ok(admin) => {
                sqlx::any::install_default_drivers();
                let name = format!("trainyard_test_{:x}", rand_bits());
                let pool = AnyPool::connect(&admin).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.unwrap();
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                urls.push(format!("{base}/{name}"));
            }
            Err(_) if std::env::var("TRAINYARD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
                panic!("TRAINYARD_REQUIRE_POSTGRES=1 but TRAINYARD_POSTGRES_URL is not set")
            }
            Err(_) => eprintln!("skipped the PostgreSQL backend: set TRAINYARD_POSTGRES_URL"),
        }
        urls
    }

    #[test]
    fn a_job_goes_from_queued_through_a_retry_to_succeeded_with_every_transition_recorded() {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            for url in backends(dir.path()).await {
                let store = Store::open(&url).await.unwrap();
                assert_eq!(store.schema_version().await.unwrap(), MIGRATIONS.len() as i64);
                let (job, new) = store.submit(new_job(Some("k1"))).await.unwrap();
                assert!(new);
                assert_eq!(job.state, JobState::Queued);
                // The same key returns the same job.
                let (again, new) = store.submit(new_job(Some("k1"))).await.unwrap();
                assert!(!new);
                assert_eq!(again.id, job.id);
                assert!(store.claim("gpu", "local").await.unwrap().is_none());
                let (claimed, attempt) = store.claim("cpu-small", "local").await.unwrap().unwrap();
                assert_eq!((claimed.id.as_str(), attempt), (job.id.as_str(), 1));
                assert!(store.claim("cpu-small", "local").await.unwrap().is_none(), "claimed once");
                let crashed = AttemptEnd { exit_code: 1, message: "crashed", ..AttemptEnd::default() };
                assert!(store.finish(&job.id, 1, &crashed, JobState::Queued).await.unwrap());
                let (_, attempt) = store.claim("cpu-small", "local").await.unwrap().unwrap();
                assert_eq!(attempt, 2);
                let result = serde_json::json!({"test": {"roc_auc": 0.9}});
                let ok = AttemptEnd {
                    log_path: Some("/logs/2"),
                    run_path: Some("/runs/x"),
                    result: Some(&result),
                    ..AttemptEnd::default()
                };
                assert!(store.finish(&job.id, 2, &ok, JobState::Succeeded).await.unwrap());
                let done = store.get(&job.id).await.unwrap().unwrap();
                assert_eq!(done.state, JobState::Succeeded);
                assert_eq!(done.run_path.as_deref(), Some("/runs/x"));
                assert_eq!(done.result, Some(result));
                let attempts = store.attempts(&job.id).await.unwrap();
                assert_eq!(attempts.iter().map(|a| a.exit_code).collect::<Vec<_>>(), vec![Some(1), Some(0)]);
                let states: Vec<JobState> =
                    store.transitions(&job.id).await.unwrap().iter().map(|t| t.state).collect();
                use JobState::*;
                assert_eq!(states, vec![Queued, Running, Queued, Running, Succeeded]);
                // A finished job cannot be finished or cancelled again.
                assert!(!store.finish(&job.id, 2, &AttemptEnd::default(), Failed).await.unwrap());
                assert_eq!(store.cancel(&job.id).await.unwrap(), Some(Succeeded));
                // Reopening applies no migration twice.
                drop(store);
                let store = Store::open(&url).await.unwrap();
                assert_eq!(store.schema_version().await.unwrap(), MIGRATIONS.len() as i64);
                assert_eq!(store.get(&job.id).await.unwrap().unwrap().state, Succeeded);
            }
        });
    }

    #[test]
    fn cancel_stops_a_queued_job_at_once_and_marks_a_running_one() {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            for url in backends(dir.path()).await {
                let store = Store::open(&url).await.unwrap();
                let (a, _) = store.submit(new_job(None)).await.unwrap();
                let (b, _) = store.submit(new_job(None)).await.unwrap();
                assert_ne!(a.id, b.id);
                assert_eq!(store.cancel(&b.id).await.unwrap(), Some(JobState::Cancelled));
                let (running, _) = store.claim("cpu-small", "local").await.unwrap().unwrap();
                assert_eq!(running.id, a.id, "the cancelled job is never claimed");
                assert!(store.claim("cpu-small", "local").await.unwrap().is_none());
                assert_eq!(store.cancel(&a.id).await.unwrap(), Some(JobState::Running));
                assert!(store.get(&a.id).await.unwrap().unwrap().cancel_requested);
                assert_eq!(store.cancel("job-none").await.unwrap(), None);
            }
        });
    }
}
