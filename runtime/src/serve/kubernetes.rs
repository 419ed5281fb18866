//! The Kubernetes executor: each job is the ConfigMap + Job that `trainyard render` builds,
//! labelled with the job's id. The Job retries by itself under its podFailurePolicy (the same
//! policy [`crate::serve::policy`] applies locally), so each of its pods is one attempt: the
//! executor lists the Jobs and Pods it manages every few seconds, opens an attempt for each new
//! pod, closes it from the pod's termination state and message, and ends the job from the Job's
//! `Complete` or `Failed` condition. Cancel deletes the Job with its pods. Everything it needs is
//! in the state store and the labels, so a restarted service re-attaches to its Jobs by label;
//! a Job that disappears from the cluster (deleted by hand) ends its attempt as lost (-1), which
//! the policy retries.
//!
//! It lists rather than watches: one list of Jobs and one of Pods per interval, by label, is
//! cheap at the scale of a training queue and has no watch to resume after a restart.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job as KubeJob;
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStateTerminated, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::render::{Objects, RenderOptions};
use crate::serve::policy;
use crate::serve::state::{AttemptEnd, Job, JobState, Store, now_us};
use crate::spec::{CheckedSpec, JobSpec};

/// The executor's name in the attempts table.
pub const NAME: &str = "kubernetes";
/// Label on every object the service creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "trainyard-serve");
/// Label naming the service's job id.
pub const JOB_ID_LABEL: &str = "trainyard.dev/job-id";
/// Pod label that the service's NetworkPolicy (`k8s/service`) opens egress to HTTPS for: a job
/// whose spec reads or writes an object store.
pub const EGRESS_LABEL: (&str, &str) = ("trainyard.dev/egress", "object-store");

/// The calls the executor makes to the API server, behind a trait so the logic is tested
/// against an in-process fake.
pub trait Cluster: Send + Sync + 'static {
    /// Creates the Job and its ConfigMap, owned by the Job (either existing already is fine).
    fn create(&self, config_map: &ConfigMap, job: &KubeJob) -> impl Future<Output = Result<()>> + Send;
    /// Every Job and Pod with the [`MANAGED_BY`] label.
    fn list(&self) -> impl Future<Output = Result<(Vec<KubeJob>, Vec<Pod>)>> + Send;
    /// Deletes Job `name` with its pods, and its ConfigMap (either missing is fine).
    fn delete(&self, name: &str) -> impl Future<Output = Result<()>> + Send;
}

/// The API server through kube-rs (in-cluster config, else the kubeconfig).
#[derive(Clone)]
pub struct KubeCluster {
    jobs: kube::Api<KubeJob>,
    pods: kube::Api<Pod>,
    config_maps: kube::Api<ConfigMap>,
}

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeCluster")
    }
}

/// An API error: the server refusing the object itself (400, 422: invalid, or denied by an
/// admission webhook) cannot pass by retrying, anything else may (a quota, a timeout).
fn api_error(what: &str, e: kube::Error) -> Error {
    if is_status(&e, 400) || is_status(&e, 422) {
        Error::data(format!("Kubernetes API refused {what}: {e}"))
    } else {
        Error::Store(format!("Kubernetes API: {what}: {e}"))
    }
}

/// Whether `e` is the API server's `code` answer.
fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == code)
}

impl KubeCluster {
    /// A client of `client`'s cluster, in `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> KubeCluster {
        KubeCluster {
            jobs: kube::Api::namespaced(client.clone(), namespace),
            pods: kube::Api::namespaced(client.clone(), namespace),
            config_maps: kube::Api::namespaced(client, namespace),
        }
    }

    /// The cluster the environment names: the pod's service account in a cluster, else
    /// `$KUBECONFIG` or `~/.kube/config`.
    pub async fn infer(namespace: &str) -> Result<KubeCluster> {
        let config = kube::Config::infer()
            .await
            .map_err(|e| Error::Usage(format!("--executor kubernetes: no cluster configuration: {e}")))?;
        let client = kube::Client::try_from(config)
            .map_err(|e| Error::Usage(format!("--executor kubernetes: {e}")))?;
        Ok(KubeCluster::new(client, namespace))
    }
}

impl Cluster for KubeCluster {
    async fn create(&self, config_map: &ConfigMap, job: &KubeJob) -> Result<()> {
        let params = kube::api::PostParams::default();
        let name = job.metadata.name.clone().unwrap_or_default();
        let created = match self.jobs.create(&params, job).await {
            Ok(created) => created,
            Err(e) if is_status(&e, 409) => {
                self.jobs.get(&name).await.map_err(|e| api_error("reading the existing Job", e))?
            }
            Err(e) => return Err(api_error("creating the Job", e)),
        };
        // Owned by the Job, so the Job's TTL (or any deletion) takes the ConfigMap with it. Its
        // pods wait for the volume until it exists, which is a moment.
        let mut config_map = config_map.clone();
        config_map.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name,
            uid: created.metadata.uid.unwrap_or_default(),
            ..Default::default()
        }]);
        match self.config_maps.create(&params, &config_map).await {
            Err(e) if !is_status(&e, 409) => Err(api_error("creating the ConfigMap", e)),
            _ => Ok(()),
        }
    }

    async fn list(&self) -> Result<(Vec<KubeJob>, Vec<Pod>)> {
        let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
        let params = kube::api::ListParams::default().labels(&selector);
        let jobs = self.jobs.list(&params).await.map_err(|e| api_error("listing Jobs", e))?;
        let pods = self.pods.list(&params).await.map_err(|e| api_error("listing Pods", e))?;
        Ok((jobs.items, pods.items))
    }

    async fn delete(&self, name: &str) -> Result<()> {
        match self.jobs.delete(name, &kube::api::DeleteParams::background()).await {
            Err(e) if !is_status(&e, 404) => return Err(api_error("deleting the Job", e)),
            _ => {}
        }
        match self.config_maps.delete(&format!("{name}-spec"), &kube::api::DeleteParams::default()).await {
            Err(e) if !is_status(&e, 404) => Err(api_error("deleting the ConfigMap", e)),
            _ => Ok(()),
        }
    }
}

/// What the store keeps of a job's Kubernetes Job (`executor_ref`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reference {
    /// The Job's name.
    job: String,
    /// The attempt number of its first pod.
    first_attempt: i64,
}

/// How a pod's attempt ended, from its container's termination state: the exit code and the
/// termination message (trainyard writes `exit N: reason` to /dev/termination-log), else the
/// kubelet's reason. A pod that failed without a container state (evicted before it started,
/// its node lost) is -1 with the pod's own message. None while it runs.
pub fn pod_end(pod: &Pod) -> Option<(i64, String)> {
    let status = pod.status.as_ref()?;
    let terminated = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == "trainyard")
        .or_else(|| status.container_statuses.as_ref()?.first())
        .and_then(|c| c.state.as_ref()?.terminated.as_ref());
    match (terminated, status.phase.as_deref()) {
        (Some(t), _) => Some(termination(t)),
        (None, Some("Failed")) => {
            let disruption = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
                .map(|c| {
                    format!("{}: {}", c.reason.as_deref().unwrap_or(""), c.message.as_deref().unwrap_or(""))
                });
            let message = disruption.unwrap_or_else(|| {
                format!(
                    "{}: {}",
                    status.reason.as_deref().unwrap_or("Failed"),
                    status.message.as_deref().unwrap_or("")
                )
            });
            Some((-1, message))
        }
        _ => None,
    }
}

/// The exit code and message of a terminated container.
pub fn termination(t: &ContainerStateTerminated) -> (i64, String) {
    let message = t
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .or_else(|| t.reason.clone())
        .unwrap_or_default();
    (i64::from(t.exit_code), message.chars().take(2000).collect())
}

/// The job's final state from the Job's conditions (`Complete` or `Failed` true), with the
/// condition's reason and message. None while it runs (`FailureTarget` and
/// `SuccessCriteriaMet` come before the final condition, while pods still terminate).
pub fn job_outcome(job: &KubeJob) -> Option<(JobState, String)> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().filter(|c| c.status == "True").find_map(|c| {
        let state = match c.type_.as_str() {
            "Complete" => JobState::Succeeded,
            "Failed" => JobState::Failed,
            _ => return None,
        };
        let what =
            [c.reason.as_deref(), c.message.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(": ");
        Some((state, what))
    })
}

fn label_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<&str> {
    meta.labels.as_ref()?.get(JOB_ID_LABEL).map(String::as_str)
}

/// Settings of the Kubernetes executor.
#[derive(Debug)]
pub struct Kubernetes<C> {
    /// The state store.
    pub store: Store,
    /// The API server.
    pub cluster: C,
    /// Namespace of the Jobs.
    pub namespace: String,
    /// Container image; default the release's.
    pub image: Option<String>,
    /// The pods' ServiceAccount.
    pub service_account: Option<String>,
    /// Jobs at once per resource class.
    pub slots: BTreeMap<String, usize>,
    /// How often it lists the cluster.
    pub poll: Duration,
    /// Relative spec paths resolve against this directory.
    pub base_dir: PathBuf,
    /// The runs volume as the service mounts it (`/runs` in `k8s/service`): where a Job's run
    /// `/runs/<job id>` is read back for the job's result.
    pub runs_root: PathBuf,
    /// The first retry's delay (microseconds), for a Job that vanished.
    pub first_delay_us: i64,
}

impl<C: Cluster> crate::serve::Executor for Kubernetes<C> {
    const NAME: &'static str = NAME;

    /// Starts the reconcile loop; its first pass re-attaches to the Jobs of running jobs.
    async fn start(self) -> Result<Vec<tokio::task::JoinHandle<()>>> {
        let this = Arc::new(self);
        Ok(vec![tokio::spawn(async move {
            loop {
                if let Err(e) = this.reconcile().await {
                    tracing::warn!("kubernetes executor: {e}");
                }
                tokio::time::sleep(this.poll).await;
            }
        })])
    }
}

impl<C: Cluster> Kubernetes<C> {
    /// One pass: follow every running job, then start queued ones while slots are free.
    pub async fn reconcile(&self) -> Result<()> {
        let (jobs, pods) = self.cluster.list().await?;
        let jobs: BTreeMap<&str, &KubeJob> =
            jobs.iter().filter_map(|j| Some((label_of(&j.metadata)?, j))).collect();
        let mut pods_of: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
        for pod in &pods {
            if let Some(id) = label_of(&pod.metadata) {
                pods_of.entry(id).or_default().push(pod);
            }
        }
        let mut running: BTreeMap<String, usize> = BTreeMap::new();
        for job in self.store.running(NAME).await? {
            let kube_job = jobs.get(job.id.as_str()).copied();
            let uid = kube_job.and_then(|j| j.metadata.uid.as_deref());
            // Only the pods of this Job: a Job of the same name deleted earlier (and retried)
            // may still have pods terminating.
            let mut pods: Vec<&Pod> = pods_of
                .remove(job.id.as_str())
                .unwrap_or_default()
                .into_iter()
                .filter(|p| {
                    p.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.kind == "Job" && Some(o.uid.as_str()) == uid)
                })
                .collect();
            // Pods in the order the Job made them: attempt 1, 2, ...
            pods.sort_by_key(|p| {
                (
                    p.metadata.creation_timestamp.as_ref().map(|t| t.0.as_microsecond()),
                    p.metadata.name.clone(),
                )
            });
            // One job the API refuses must not stop the others: it keeps its slot and is
            // tried again on the next pass.
            let still_running = match self.follow(&job, kube_job, &pods).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(job = %job.id, "kubernetes executor: {e}");
                    true
                }
            };
            if still_running {
                *running.entry(job.resources.clone()).or_default() += 1;
            }
        }
        for (class, &slots) in &self.slots {
            let mut busy = running.get(class).copied().unwrap_or(0);
            while busy < slots {
                let Some((job, attempt)) = self.store.claim(class, NAME).await? else { break };
                if let Err(e) = self.launch(&job, attempt).await {
                    // Left running without a Job: the next pass creates it (see `follow`).
                    tracing::warn!(job = %job.id, "kubernetes executor: creating the Job: {e}");
                }
                busy += 1;
            }
        }
        Ok(())
    }

    /// The objects of `job`, labelled as the service's.
    fn objects(&self, job: &Job) -> Result<Objects> {
        let spec = JobSpec::from_json(&job.spec.to_string(), &[])?;
        let checked = CheckedSpec::new(spec, &self.base_dir)?;
        let opts = RenderOptions {
            namespace: Some(self.namespace.clone()),
            class: Some(job.resources.clone()),
            image: self.image.clone(),
            name: Some(job.id.clone()),
            service_account: self.service_account.clone(),
        };
        let mut objects = crate::render::objects(&checked, &opts)?;
        let egress = objects.network_policies.len() > 1;
        let label = |labels: &mut Option<BTreeMap<String, String>>, pod: bool| {
            let l = labels.get_or_insert_with(BTreeMap::new);
            l.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
            l.insert(JOB_ID_LABEL.into(), job.id.clone());
            if pod && egress {
                l.insert(EGRESS_LABEL.0.into(), EGRESS_LABEL.1.into());
            }
        };
        label(&mut objects.config_map.metadata.labels, false);
        label(&mut objects.job.metadata.labels, false);
        if let Some(spec) = objects.job.spec.as_mut() {
            let template = spec.template.metadata.get_or_insert_with(Default::default);
            label(&mut template.labels, true);
            // Finished Jobs stay until the service has recorded them; it deletes none itself,
            // so `kubectl` still shows them, and the TTL keeps the namespace from filling.
            spec.ttl_seconds_after_finished = Some(7 * 24 * 3600);
        }
        Ok(objects)
    }

    /// Records which Job runs `id`.
    async fn remember(&self, id: &str, reference: &Reference) -> Result<()> {
        let text = serde_json::to_string(reference).map_err(|e| Error::Internal(e.to_string()))?;
        self.store.set_executor_ref(id, Some(&text)).await
    }

    /// Creates the objects of a claimed job; a spec that no longer renders fails the job.
    async fn launch(&self, job: &Job, attempt: i64) -> Result<()> {
        let objects = match self.objects(job) {
            Ok(o) => o,
            Err(e) => {
                let message = e.to_string();
                let end = AttemptEnd {
                    exit_code: i64::from(e.exit_code()),
                    message: &message,
                    ..AttemptEnd::default()
                };
                self.store.finish(&job.id, attempt, &end, JobState::Failed).await?;
                return Ok(());
            }
        };
        self.create(job, &objects, attempt).await?;
        tracing::info!(job = %job.id, attempt, namespace = %self.namespace, "created the Kubernetes Job");
        Ok(())
    }

    /// Creates the objects and records the Job as attempt `first` on; an API server that
    /// refuses the objects themselves fails the job (exit 2) rather than being asked forever.
    async fn create(&self, job: &Job, objects: &Objects, first: i64) -> Result<()> {
        match self.cluster.create(&objects.config_map, &objects.job).await {
            Ok(()) => self.remember(&job.id, &Reference { job: job.id.clone(), first_attempt: first }).await,
            Err(e @ Error::Data(_)) => {
                let message = e.to_string();
                let end = AttemptEnd { exit_code: 2, message: &message, ..AttemptEnd::default() };
                self.store.finish(&job.id, first, &end, JobState::Failed).await?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Brings running `job` up to date with its Kubernetes Job and pods; returns whether it is
    /// still running (it holds a slot).
    async fn follow(&self, job: &Job, kube_job: Option<&KubeJob>, pods: &[&Pod]) -> Result<bool> {
        let reference: Option<Reference> =
            job.executor_ref.as_deref().and_then(|r| serde_json::from_str(r).ok());
        let attempts = self.store.attempts(&job.id).await?;
        let last = attempts.last().map_or(1, |a| a.attempt);
        // A Job that ended since the last pass is recorded as it ended, even if a cancel came
        // in the meantime.
        let ended = kube_job.and_then(job_outcome).is_some();
        if job.cancel_requested && !ended {
            if kube_job.is_some() {
                self.cluster.delete(&job.id).await?;
            }
            let end = AttemptEnd {
                exit_code: 143,
                message: "cancelled: the Job and its pods were deleted",
                ..AttemptEnd::default()
            };
            self.store.finish(&job.id, last, &end, JobState::Cancelled).await?;
            return Ok(false);
        }
        let Some(kube_job) = kube_job else {
            match reference {
                // Claimed, but the service stopped before the Job was created.
                None => {
                    let objects = self.objects(job)?;
                    self.create(job, &objects, last).await?;
                    return Ok(true);
                }
                Some(r) => {
                    // Its last pod succeeded before the Job went: the job did.
                    if attempts.last().and_then(|a| a.exit_code) == Some(0) {
                        let end = AttemptEnd { exit_code: 0, message: "", ..AttemptEnd::default() };
                        self.store.finish(&job.id, last, &end, JobState::Succeeded).await?;
                        return Ok(false);
                    }
                    let mut exits: Vec<i64> = attempts.iter().map(|a| a.exit_code.unwrap_or(-1)).collect();
                    match attempts.last() {
                        Some(a) if a.finished_at.is_none() => {
                            if let Some(open) = exits.last_mut() {
                                *open = -1;
                            }
                        }
                        // Gone between two pods: the loss counts as one more failure.
                        _ => exits.push(-1),
                    }
                    let (next, delay) = policy::next(&exits, self.first_delay_us);
                    let message =
                        format!("the Kubernetes Job {} is gone (deleted outside the service)", r.job);
                    let end = AttemptEnd {
                        exit_code: -1,
                        message: &message,
                        not_before: now_us() + delay,
                        ..AttemptEnd::default()
                    };
                    self.store.finish(&job.id, last, &end, next).await?;
                    // A retry creates the Job afresh.
                    self.store.set_executor_ref(&job.id, None).await?;
                    return Ok(false);
                }
            }
        };
        let first = match reference {
            Some(r) => r.first_attempt,
            None => {
                // Created, but the service stopped before recording it: adopt it.
                let r = Reference { job: job.id.clone(), first_attempt: last };
                self.remember(&job.id, &r).await?;
                last
            }
        };
        let outcome = job_outcome(kube_job);
        // Where the run is (the bucket prefix, or the runs volume the service mounts too) and
        // its test metrics: read only once the Job has succeeded, not on every pass.
        let (run_path, result) = match &outcome {
            Some((JobState::Succeeded, _)) => {
                let path = self
                    .objects(job)
                    .ok()
                    .and_then(|o| o.remote_run)
                    .unwrap_or_else(|| self.runs_root.join(&job.id).display().to_string());
                let result = crate::serve::local::summary(std::path::Path::new(&path));
                (Some(path), result)
            }
            _ => (None, None),
        };
        for (i, pod) in pods.iter().enumerate() {
            let number = first + i as i64;
            let known = self.store.attempts(&job.id).await?;
            if !known.iter().any(|a| a.attempt == number) {
                let started =
                    pod.metadata.creation_timestamp.as_ref().map_or_else(now_us, |t| t.0.as_microsecond());
                if !self.store.open_attempt(&job.id, number, NAME, started).await? {
                    // The attempt before it has not ended in the store yet; the next pass.
                    break;
                }
            }
            let open = self
                .store
                .attempts(&job.id)
                .await?
                .iter()
                .any(|a| a.attempt == number && a.finished_at.is_none());
            if let (true, Some((exit_code, message))) = (open, pod_end(pod)) {
                let last_pod = i + 1 == pods.len();
                let next = match (&outcome, last_pod) {
                    (Some((state, _)), true) => *state,
                    _ => JobState::Running,
                };
                let end = AttemptEnd {
                    exit_code,
                    message: &message,
                    run_path: run_path.as_deref().filter(|_| next == JobState::Succeeded),
                    result: result.as_ref().filter(|_| next == JobState::Succeeded),
                    ..AttemptEnd::default()
                };
                self.store.finish(&job.id, number, &end, next).await?;
            }
        }
        // A final Job whose pods are all recorded (or that ended with none, e.g. its deadline).
        if let Some((state, message)) = outcome {
            let attempts = self.store.attempts(&job.id).await?;
            let recorded = attempts.iter().filter(|a| a.attempt >= first).count();
            if recorded >= pods.len() {
                let last = attempts.last();
                let exit_code = last.and_then(|a| a.exit_code).unwrap_or(-1);
                let end = AttemptEnd {
                    exit_code,
                    message: last
                        .and_then(|a| a.message.as_deref())
                        .filter(|m| !m.is_empty())
                        .unwrap_or(&message),
                    run_path: run_path.as_deref().filter(|_| state == JobState::Succeeded),
                    result: result.as_ref().filter(|_| state == JobState::Succeeded),
                    ..AttemptEnd::default()
                };
                self.store.finish(&job.id, last.map_or(first, |a| a.attempt), &end, state).await?;
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
#[path = "kubernetes_tests.rs"]
mod tests;
