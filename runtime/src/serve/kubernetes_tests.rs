//! The Kubernetes executor against recorded Job and Pod status from real clusters
//! (`tests/fixtures/kubernetes`, sources in its SOURCES.md) and against an in-process fake of
//! the API calls it makes (create, list, delete), through a restart of the executor.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use super::*;
use crate::serve::state::NewJob;

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubernetes").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn recorded_job_conditions_map_to_final_states() {
    let outcome = |name: &str| job_outcome(&fixture::<KubeJob>(name));
    assert_eq!(outcome("job-complete.json").map(|o| o.0), Some(JobState::Succeeded));
    let (state, message) = outcome("job-failed-backoff-limit.json").unwrap();
    assert_eq!(
        (state, message.as_str()),
        (JobState::Failed, "BackoffLimitExceeded: Job has reached the specified backoff limit")
    );
    let (state, message) = outcome("job-failed-pod-failure-policy.json").unwrap();
    assert_eq!(state, JobState::Failed);
    assert!(
        message.starts_with("PodFailurePolicy: Container main") && message.contains("exit code 42"),
        "{message}"
    );
    assert_eq!(outcome("job-failed-indexes.json").map(|o| o.0), Some(JobState::Failed));
    // Running and suspended Jobs are not final; neither is FailureTarget alone.
    assert_eq!(outcome("job-running.json"), None);
    assert_eq!(outcome("job-suspended.json"), None);
    let mut target: KubeJob = fixture("job-failed-pod-failure-policy.json");
    target.status.as_mut().unwrap().conditions.as_mut().unwrap().retain(|c| c.type_ == "FailureTarget");
    assert_eq!(job_outcome(&target), None);
}

#[test]
fn recorded_container_terminations_give_exit_codes_and_messages() {
    let last_terminated = |name: &str| {
        let pod: Pod = fixture(name);
        let status = &pod.status.unwrap().container_statuses.unwrap()[0];
        status.last_state.as_ref().unwrap().terminated.clone().unwrap()
    };
    assert_eq!(
        termination(&last_terminated("pod-terminated-with-message.json")),
        (0, "Sleep expired".to_string())
    );
    assert_eq!(
        termination(&last_terminated("pod-oomkilled-last-state.json")),
        (137, "OOMKilled".to_string())
    );
    // A pod still pulling its image has not ended.
    assert_eq!(pod_end(&fixture::<Pod>("pod-pending-image-pull-backoff.json")), None);
    // The same termination as the state of a pod that ended (restartPolicy Never, as a Job's).
    let mut pod: Pod = fixture("pod-oomkilled-last-state.json");
    let status = pod.status.as_mut().unwrap();
    status.phase = Some("Failed".into());
    let c = &mut status.container_statuses.as_mut().unwrap()[0];
    c.state = c.last_state.take();
    assert_eq!(pod_end(&pod), Some((137, "OOMKilled".to_string())));
    // Evicted before a container ran: lost, with the pod's reason.
    let evicted = Pod {
        status: Some(PodStatus {
            phase: Some("Failed".into()),
            reason: Some("Evicted".into()),
            message: Some("The node was low on resource: memory.".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(pod_end(&evicted), Some((-1, "Evicted: The node was low on resource: memory.".to_string())));
}

/// The API server, in memory: what was created, listed and deleted.
#[derive(Debug, Default)]
struct Fake {
    state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    jobs: BTreeMap<String, KubeJob>,
    config_maps: BTreeMap<String, ConfigMap>,
    pods: Vec<Pod>,
    creates: usize,
    deletes: Vec<String>,
}

impl Cluster for Arc<Fake> {
    async fn create(&self, config_map: &ConfigMap, job: &KubeJob) -> Result<()> {
        let mut s = self.state.lock().unwrap();
        s.creates += 1;
        let name = job.metadata.name.clone().unwrap();
        let mut job = job.clone();
        job.metadata.uid = Some(format!("uid-{}", s.creates));
        s.config_maps.entry(config_map.metadata.name.clone().unwrap()).or_insert_with(|| config_map.clone());
        s.jobs.entry(name).or_insert(job);
        Ok(())
    }

    async fn list(&self) -> Result<(Vec<KubeJob>, Vec<Pod>)> {
        let s = self.state.lock().unwrap();
        Ok((s.jobs.values().cloned().collect(), s.pods.clone()))
    }

    async fn delete(&self, name: &str) -> Result<()> {
        let mut s = self.state.lock().unwrap();
        s.deletes.push(name.to_string());
        s.jobs.remove(name);
        s.config_maps.remove(&format!("{name}-spec"));
        s.pods.retain(|p| label_of(&p.metadata) != Some(name));
        Ok(())
    }
}

impl Fake {
    /// The Job controller's next pod for `id`, `seconds` after the epoch, running.
    fn add_pod(&self, id: &str, n: usize, seconds: i64) {
        let mut s = self.state.lock().unwrap();
        let template = s.jobs[id].spec.as_ref().unwrap().template.metadata.clone().unwrap();
        let owner = OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: id.into(),
            uid: s.jobs[id].metadata.uid.clone().unwrap(),
            controller: Some(true),
            ..Default::default()
        };
        s.pods.push(Pod {
            metadata: ObjectMeta {
                name: Some(format!("{id}-{n}")),
                labels: template.labels,
                owner_references: Some(vec![owner]),
                creation_timestamp: Some(Time(
                    k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + seconds).unwrap(),
                )),
                ..Default::default()
            },
            status: Some(PodStatus { phase: Some("Running".into()), ..Default::default() }),
            ..Default::default()
        });
    }

    /// Pod `n` of `id` ends with `exit_code` and its termination message.
    fn end_pod(&self, id: &str, n: usize, exit_code: i32, message: &str) {
        let mut s = self.state.lock().unwrap();
        let pod =
            s.pods.iter_mut().find(|p| p.metadata.name.as_deref() == Some(&format!("{id}-{n}"))).unwrap();
        pod.status = Some(PodStatus {
            phase: Some(if exit_code == 0 { "Succeeded" } else { "Failed" }.into()),
            container_statuses: Some(vec![ContainerStatus {
                name: "trainyard".into(),
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code,
                        message: Some(message.into()),
                        reason: Some(if exit_code == 0 { "Completed" } else { "Error" }.into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        });
    }

    /// The Job `id` gets the status of a recorded Job.
    fn set_status(&self, id: &str, recorded: &str) {
        let status = fixture::<KubeJob>(recorded).status;
        self.state.lock().unwrap().jobs.get_mut(id).unwrap().status = status;
    }
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

async fn submit(store: &Store, name: &str) -> String {
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(examples().join("quickstart.json")).unwrap()).unwrap();
    spec["name"] = serde_json::json!(name);
    let new = NewJob {
        owner: "risk".into(),
        name: name.into(),
        resources: "cpu-small".into(),
        labels: serde_json::json!({}),
        spec,
        idempotency_key: None,
    };
    store.submit(new).await.unwrap().0.id
}

fn executor(store: &Store, fake: &Arc<Fake>) -> Kubernetes<Arc<Fake>> {
    Kubernetes {
        store: store.clone(),
        cluster: fake.clone(),
        namespace: "training".into(),
        image: Some("registry.example/trainyard:test".into()),
        service_account: None,
        slots: BTreeMap::from([("cpu-small".to_string(), 1)]),
        poll: Duration::from_millis(10),
        base_dir: examples(),
        runs_root: PathBuf::from("/nonexistent/runs"),
        first_delay_us: 0,
    }
}

async fn state_and_exits(store: &Store, id: &str) -> (JobState, Vec<Option<i64>>) {
    let job = store.get(id).await.unwrap().unwrap();
    (job.state, store.attempts(id).await.unwrap().iter().map(|a| a.exit_code).collect())
}

#[test]
fn jobs_run_retry_reattach_after_a_restart_cancel_and_survive_a_deleted_job() {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let store =
            Store::open(&format!("sqlite://{}", dir.path().join("state.db").display())).await.unwrap();
        let fake = Arc::new(Fake::default());
        let first = submit(&store, "first").await;
        let second = submit(&store, "second").await;
        let exec = executor(&store, &fake);
        exec.reconcile().await.unwrap();

        // One slot: the first job's ConfigMap and Job exist, labelled with its id; they are
        // what `render` builds for its spec, class and name.
        {
            let first_spec = store.get(&first).await.unwrap().unwrap().spec.to_string();
            let s = fake.state.lock().unwrap();
            assert_eq!(s.jobs.keys().collect::<Vec<_>>(), [&first]);
            let job = &s.jobs[&first];
            let labels = job.metadata.labels.as_ref().unwrap();
            assert_eq!(labels[JOB_ID_LABEL], first);
            assert_eq!(labels[MANAGED_BY.0], MANAGED_BY.1);
            let pod_labels =
                job.spec.as_ref().unwrap().template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
            assert_eq!(pod_labels[JOB_ID_LABEL], first);
            let spec = JobSpec::from_json(&first_spec, &[]).unwrap();
            let checked = CheckedSpec::new(spec, &examples()).unwrap();
            let opts = RenderOptions {
                namespace: Some("training".into()),
                class: Some("cpu-small".into()),
                image: Some("registry.example/trainyard:test".into()),
                name: Some(first.clone()),
                service_account: None,
            };
            let rendered = crate::render::objects(&checked, &opts).unwrap();
            assert_eq!(
                job.spec.as_ref().unwrap().template.spec,
                rendered.job.spec.as_ref().unwrap().template.spec
            );
            assert_eq!(
                job.spec.as_ref().unwrap().pod_failure_policy,
                rendered.job.spec.as_ref().unwrap().pod_failure_policy
            );
            assert_eq!(
                job.spec.as_ref().unwrap().backoff_limit,
                rendered.job.spec.as_ref().unwrap().backoff_limit
            );
            assert_eq!(s.config_maps[&format!("{first}-spec")].data, rendered.config_map.data);
        }
        assert_eq!(state_and_exits(&store, &second).await, (JobState::Queued, vec![]));

        // Its first pod fails with exit 1; the Job retries it with a second pod.
        fake.add_pod(&first, 1, 0);
        exec.reconcile().await.unwrap();
        assert_eq!(state_and_exits(&store, &first).await, (JobState::Running, vec![None]));
        fake.end_pod(&first, 1, 1, "exit 1: s3://bucket/x: connection reset");
        exec.reconcile().await.unwrap();
        assert_eq!(state_and_exits(&store, &first).await, (JobState::Running, vec![Some(1)]));
        fake.add_pod(&first, 2, 60);
        exec.reconcile().await.unwrap();
        assert_eq!(state_and_exits(&store, &first).await, (JobState::Running, vec![Some(1), None]));

        // The service restarts: a new executor re-attaches by label and creates nothing.
        drop(exec);
        let exec = executor(&store, &fake);
        let creates = fake.state.lock().unwrap().creates;
        exec.reconcile().await.unwrap();
        assert_eq!(fake.state.lock().unwrap().creates, creates, "re-attached, not re-created");
        assert_eq!(state_and_exits(&store, &first).await, (JobState::Running, vec![Some(1), None]));

        // The second pod succeeds and the Job completes (a recorded Complete status): the job
        // succeeded after two attempts, and its slot goes to the second job.
        fake.end_pod(&first, 2, 0, "");
        fake.set_status(&first, "job-complete.json");
        exec.reconcile().await.unwrap();
        assert_eq!(state_and_exits(&store, &first).await, (JobState::Succeeded, vec![Some(1), Some(0)]));
        let attempts = store.attempts(&first).await.unwrap();
        assert_eq!(attempts[0].message.as_deref(), Some("exit 1: s3://bucket/x: connection reset"));
        assert_eq!(attempts[1].started_at, 1_700_000_060_000_000, "the attempt started with its pod");
        let done = store.get(&first).await.unwrap().unwrap();
        assert_eq!(done.run_path.as_deref(), Some(format!("/nonexistent/runs/{first}").as_str()));
        assert!(fake.state.lock().unwrap().jobs.contains_key(&second));

        // Cancel while it runs: the Job is deleted with its pods, the job is cancelled.
        fake.add_pod(&second, 1, 120);
        exec.reconcile().await.unwrap();
        store.cancel(&second).await.unwrap();
        exec.reconcile().await.unwrap();
        assert_eq!(state_and_exits(&store, &second).await, (JobState::Cancelled, vec![Some(143)]));
        assert_eq!(fake.state.lock().unwrap().deletes, std::slice::from_ref(&second));
        assert!(
            !fake.state.lock().unwrap().pods.iter().any(|p| label_of(&p.metadata) == Some(second.as_str()))
        );

        // A Job deleted outside the service: the attempt is lost (-1) and retried with a new Job.
        let third = submit(&store, "third").await;
        exec.reconcile().await.unwrap();
        fake.add_pod(&third, 1, 180);
        exec.reconcile().await.unwrap();
        // Deleted with orphaned pods: the old pod stays, still running, after the new Job exists.
        fake.state.lock().unwrap().jobs.remove(&third);
        let stale = fake.state.lock().unwrap().pods.pop().unwrap();
        // (The retry delay is 0 here, so the same pass claims it again.)
        exec.reconcile().await.unwrap();
        assert_eq!(state_and_exits(&store, &third).await, (JobState::Running, vec![Some(-1), None]));
        let transitions = store.transitions(&third).await.unwrap();
        assert!(
            transitions.iter().any(|t| t.state == JobState::Queued && t.reason == "attempt 1 exited -1"),
            "{transitions:?}"
        );
        assert!(fake.state.lock().unwrap().jobs.contains_key(&third), "created again");
        fake.state.lock().unwrap().pods.push(stale);
        // Its new pod is attempt 2; a data error fails it at once by the podFailurePolicy
        // (a recorded PodFailurePolicy failure).
        fake.add_pod(&third, 2, 240);
        fake.end_pod(&third, 2, 2, "exit 2: data.features[0]: no file matches");
        fake.set_status(&third, "job-failed-pod-failure-policy.json");
        exec.reconcile().await.unwrap();
        assert_eq!(
            state_and_exits(&store, &third).await,
            (JobState::Failed, vec![Some(-1), Some(2)]),
            "the old Job's pod, still running, is not an attempt of the new one"
        );

        // A cancel that comes after the Job completed: recorded as it ended, nothing deleted.
        let fifth = submit(&store, "fifth").await;
        exec.reconcile().await.unwrap();
        fake.add_pod(&fifth, 1, 250);
        fake.end_pod(&fifth, 1, 0, "");
        fake.set_status(&fifth, "job-complete.json");
        store.cancel(&fifth).await.unwrap();
        exec.reconcile().await.unwrap();
        assert_eq!(state_and_exits(&store, &fifth).await, (JobState::Succeeded, vec![Some(0)]));
        assert!(!fake.state.lock().unwrap().deletes.contains(&fifth));

        // Claimed, then the service died before creating the Job: the next pass creates it.
        let fourth = submit(&store, "fourth").await;
        let (claimed, attempt) = store.claim("cpu-small", NAME).await.unwrap().unwrap();
        assert_eq!((claimed.id.as_str(), attempt), (fourth.as_str(), 1));
        exec.reconcile().await.unwrap();
        assert!(fake.state.lock().unwrap().jobs.contains_key(&fourth));
        // A Job that fails by its backoff limit (a recorded status) with its last pod lost.
        fake.add_pod(&fourth, 1, 300);
        let evicted =
            PodStatus { phase: Some("Failed".into()), reason: Some("Evicted".into()), ..Default::default() };
        fake.state.lock().unwrap().pods.last_mut().unwrap().status = Some(evicted);
        fake.set_status(&fourth, "job-failed-backoff-limit.json");
        exec.reconcile().await.unwrap();
        assert_eq!(state_and_exits(&store, &fourth).await, (JobState::Failed, vec![Some(-1)]));
    });
}

/// What the HTTP fake of the API server saw.
#[derive(Debug, Default)]
struct Seen {
    requests: Vec<String>,
    objects: BTreeMap<String, serde_json::Value>,
}

/// An API server on loopback answering the five requests [`KubeCluster`] makes, as the real one
/// does (201 with the object, 409 `AlreadyExists`, lists as `JobList`/`PodList`, 404 `NotFound`).
async fn fake_api_server(seen: Arc<Mutex<Seen>>) -> String {
    use axum::extract::{Path as UrlPath, RawQuery, State};
    use axum::http::{Method, StatusCode};
    use axum::response::IntoResponse;
    type Shared = State<Arc<Mutex<Seen>>>;
    fn status(code: u16, reason: &str) -> axum::response::Response {
        let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": reason, "reason": reason, "code": code});
        (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
    }
    async fn collection(
        State(seen): Shared,
        method: Method,
        UrlPath((ns, kind)): UrlPath<(String, String)>,
        RawQuery(query): RawQuery,
        body: Option<axum::Json<serde_json::Value>>,
    ) -> axum::response::Response {
        let mut s = seen.lock().unwrap();
        s.requests.push(format!("{method} {ns}/{kind}?{}", query.unwrap_or_default()));
        if method == Method::POST {
            let object = body.unwrap().0;
            let key = format!("{kind}/{}", object["metadata"]["name"].as_str().unwrap());
            if s.objects.contains_key(&key) {
                return status(409, "AlreadyExists");
            }
            let mut object = object;
            object["metadata"]["uid"] = serde_json::json!(format!("uid-{}", s.objects.len() + 1));
            s.objects.insert(key, object.clone());
            return (StatusCode::CREATED, axum::Json(object)).into_response();
        }
        let (list_kind, api_version) =
            if kind == "jobs" { ("JobList", "batch/v1") } else { ("PodList", "v1") };
        let items: Vec<serde_json::Value> = s
            .objects
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{kind}/")))
            .map(|(_, v)| v.clone())
            .collect();
        axum::Json(serde_json::json!({"kind": list_kind, "apiVersion": api_version, "metadata": {"resourceVersion": "1"}, "items": items})).into_response()
    }
    async fn get_object(
        State(seen): Shared,
        UrlPath((ns, kind, name)): UrlPath<(String, String, String)>,
    ) -> axum::response::Response {
        let mut s = seen.lock().unwrap();
        s.requests.push(format!("GET {ns}/{kind}/{name}"));
        match s.objects.get(&format!("{kind}/{name}")) {
            Some(o) => axum::Json(o.clone()).into_response(),
            None => status(404, "NotFound"),
        }
    }
    async fn object(
        State(seen): Shared,
        UrlPath((ns, kind, name)): UrlPath<(String, String, String)>,
        body: Option<axum::Json<serde_json::Value>>,
    ) -> axum::response::Response {
        let mut s = seen.lock().unwrap();
        let options = body.map(|b| b.0.to_string()).unwrap_or_default();
        s.requests.push(format!("DELETE {ns}/{kind}/{name} {options}"));
        match s.objects.remove(&format!("{kind}/{name}")) {
            Some(_) => axum::Json(serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200})).into_response(),
            None => status(404, "NotFound"),
        }
    }
    let app = axum::Router::new()
        .route("/api/v1/namespaces/{ns}/{kind}", axum::routing::get(collection).post(collection))
        .route("/apis/batch/v1/namespaces/{ns}/{kind}", axum::routing::get(collection).post(collection))
        .route("/api/v1/namespaces/{ns}/{kind}/{name}", axum::routing::delete(object).get(get_object))
        .route("/apis/batch/v1/namespaces/{ns}/{kind}/{name}", axum::routing::delete(object).get(get_object))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[test]
fn the_kube_client_creates_lists_by_label_and_deletes_with_propagation() {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(
        async {
            let seen = Arc::new(Mutex::new(Seen::default()));
            let url = fake_api_server(seen.clone()).await;
            let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
            let store =
                Store::open(&format!("sqlite://{}", dir.path().join("state.db").display())).await.unwrap();
            let id = submit(&store, "wired").await;
            let mut exec = executor(&store, &Arc::new(Fake::default()));
            let cluster = KubeCluster::new(client, "training");
            let objects = {
                let job = store.get(&id).await.unwrap().unwrap();
                exec.objects(&job).unwrap()
            };
            cluster.create(&objects.config_map, &objects.job).await.unwrap();
            // A second create (a restart between create and record) is not an error.
            cluster.create(&objects.config_map, &objects.job).await.unwrap();
            let (jobs, pods) = cluster.list().await.unwrap();
            assert_eq!((jobs.len(), pods.len()), (1, 0));
            // The ConfigMap is owned by the Job, so the Job's TTL takes it along.
            let config_map = seen.lock().unwrap().objects[&format!("configmaps/{id}-spec")].clone();
            assert_eq!(
                config_map["metadata"]["ownerReferences"][0]["uid"],
                serde_json::json!(jobs[0].metadata.uid)
            );
            assert_eq!(config_map["metadata"]["ownerReferences"][0]["kind"], "Job");
            assert_eq!(label_of(&jobs[0].metadata), Some(id.as_str()));
            assert_eq!(jobs[0].spec, objects.job.spec, "the Job round-trips through the API unchanged");
            cluster.delete(&id).await.unwrap();
            cluster.delete(&id).await.unwrap();
            let requests = seen.lock().unwrap().requests.clone();
            let selector = "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dtrainyard-serve";
            assert!(
                requests.iter().any(|r| r.starts_with("GET training/jobs?") && r.contains(selector)),
                "{requests:?}"
            );
            assert!(
                requests.iter().any(|r| r.starts_with("GET training/pods?") && r.contains(selector)),
                "{requests:?}"
            );
            let delete =
                requests.iter().find(|r| r.starts_with(&format!("DELETE training/jobs/{id}"))).unwrap();
            assert!(delete.contains("\"propagationPolicy\":\"Background\""), "{delete}");
            assert!(
                requests.iter().any(|r| r.starts_with(&format!("DELETE training/configmaps/{id}-spec"))),
                "{requests:?}"
            );
            assert!(seen.lock().unwrap().objects.is_empty());

            // The executor's loop over the real client: it creates the Job for a queued job.
            exec.cluster = Arc::new(Fake::default());
            let wired = Kubernetes {
                store: store.clone(),
                cluster,
                namespace: "training".into(),
                image: exec.image.clone(),
                service_account: None,
                slots: exec.slots.clone(),
                poll: exec.poll,
                base_dir: examples(),
                runs_root: exec.runs_root.clone(),
                first_delay_us: 0,
            };
            wired.reconcile().await.unwrap();
            assert!(seen.lock().unwrap().objects.contains_key(&format!("jobs/{id}")));
            assert_eq!(state_and_exits(&store, &id).await, (JobState::Running, vec![None]));
        },
    );
}
