//! `trainyard render`: the Kubernetes ConfigMap + Job for one spec and resource class, as YAML
//! for `kubectl apply -f -`. The objects are the ones `k8s/base` composed with
//! `k8s/classes/<class>` produces (CI compares the two), with the resolved spec embedded. A spec
//! that reads or writes object-store URLs gets what `k8s/examples/object-store` has instead: no
//! volume for what lives in the bucket, and egress to DNS and HTTPS.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    ObjectFieldSelector, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::error::{Error, Result};
use crate::spec::{CheckedSpec, RESOURCE_CLASSES};
use crate::store;

/// Image repository of the CPU build; the `gpu` class uses the `-cuda` one.
pub const IMAGE_REPOSITORY: &str = "ghcr.io/trainyard/trainyard";
/// Node label (and taint key) that selects a class's node pool.
pub const POOL_LABEL: &str = "trainyard.dev/pool";
/// Pod label naming the class.
pub const CLASS_LABEL: &str = "trainyard.dev/class";
const UID: i64 = 65532;

/// Requests (= limits) and extras of one resource class; mirrors `k8s/classes/<class>`.
#[derive(Debug, Clone, Copy)]
pub struct ResourceClass {
    /// Class name.
    pub name: &'static str,
    /// CPU cores.
    pub cpu: &'static str,
    /// Memory.
    pub memory: &'static str,
    /// Ephemeral storage (scratch).
    pub ephemeral_storage: &'static str,
    /// NVIDIA GPUs.
    pub gpus: u32,
}

/// The classes, in the order of [`RESOURCE_CLASSES`].
pub const CLASSES: [ResourceClass; 4] = [
    ResourceClass { name: "cpu-small", cpu: "2", memory: "4Gi", ephemeral_storage: "10Gi", gpus: 0 },
    ResourceClass { name: "cpu-large", cpu: "16", memory: "64Gi", ephemeral_storage: "50Gi", gpus: 0 },
    ResourceClass { name: "highmem", cpu: "16", memory: "256Gi", ephemeral_storage: "100Gi", gpus: 0 },
    ResourceClass { name: "gpu", cpu: "8", memory: "64Gi", ephemeral_storage: "100Gi", gpus: 1 },
];

/// Namespace of the rendered objects unless `--namespace` says otherwise (as `k8s/base`).
pub const DEFAULT_NAMESPACE: &str = "trainyard";

/// Options of [`render`].
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Namespace; default [`DEFAULT_NAMESPACE`].
    pub namespace: Option<String>,
    /// Resource class; overrides the spec's `resources`.
    pub class: Option<String>,
    /// Container image; default `ghcr.io/trainyard/trainyard[-cuda]:<version>`.
    pub image: Option<String>,
    /// Job name; default the spec's name made DNS-safe.
    pub name: Option<String>,
    /// The pod's ServiceAccount (checked as a DNS label); default none.
    pub service_account: Option<String>,
}

/// Where a job's data and run live, as far as the pod's volumes and network are concerned.
#[derive(Debug, Clone)]
struct Storage {
    /// Some input is a local path (under the read-only `/data` volume).
    local_inputs: bool,
    /// The run goes to this object-store prefix's `$(RUN_NAME)` instead of `/runs`.
    remote_runs: Option<String>,
    /// Some path is an object-store URL: the pod needs egress.
    remote: bool,
}

impl Storage {
    fn of(checked: &CheckedSpec) -> Storage {
        let inputs: Vec<&String> = checked.input_entries().collect();
        let output = checked.spec.output_dir();
        // Each Job writes its own run, named after it, as with /runs: the spec's output without
        // its last segment is the runs root (with the default job name, the same run).
        let remote_runs = store::is_url(&output).then(|| {
            let trimmed = output.trim_end_matches('/');
            trimmed.rsplit_once('/').map_or(trimmed, |(root, _)| root).to_string()
        });
        let remote = remote_runs.is_some() || inputs.iter().any(|e| store::is_url(e));
        Storage { local_inputs: inputs.iter().any(|e| !store::is_url(e)), remote_runs, remote }
    }
}

/// What [`render`] writes, as objects (the Kubernetes executor of `trainyard serve` creates them).
#[derive(Debug, Clone)]
pub struct Objects {
    /// The spec, mounted at /spec/job.json.
    pub config_map: ConfigMap,
    /// Isolation for every trainyard pod, then, for a spec with object-store URLs, egress to DNS
    /// and HTTPS for this Job's pods.
    pub network_policies: Vec<NetworkPolicy>,
    /// The Job.
    pub job: Job,
    /// Where the run goes when it goes to an object store (`ROOT/<job name>`); None for /runs.
    pub remote_run: Option<String>,
}

/// The ConfigMap, the NetworkPolicies and the Job as a YAML stream: isolation for every
/// trainyard pod, plus, for a spec with object-store URLs, egress to DNS and HTTPS for this
/// Job's pods.
pub fn render(checked: &CheckedSpec, opts: &RenderOptions) -> Result<String> {
    let objects = objects(checked, opts)?;
    let mut out = format!("{}---\n", to_yaml(&objects.config_map)?);
    for policy in &objects.network_policies {
        out.push_str(&format!("{}---\n", to_yaml(policy)?));
    }
    out.push_str(&to_yaml(&objects.job)?);
    Ok(out)
}

/// The objects [`render`] writes.
pub fn objects(checked: &CheckedSpec, opts: &RenderOptions) -> Result<Objects> {
    // Checked here, not left to the API server: a newline in either would otherwise be written
    // into the YAML, and a bad value would surface only at `kubectl apply`, far from the flag.
    if let Some(namespace) = &opts.namespace {
        checked_namespace(namespace)?;
    }
    if let Some(image) = &opts.image {
        checked_image(image)?;
    }
    let class_name =
        opts.class.clone().or_else(|| checked.resources.map(|c| c.name().to_string())).ok_or_else(|| {
            Error::Usage(format!(
                "no resource class: pass --class or set \"resources\" in the spec; known: {}",
                RESOURCE_CLASSES.join(", ")
            ))
        })?;
    let class = CLASSES.iter().find(|c| c.name == class_name).ok_or_else(|| {
        Error::Usage(format!("unknown resource class {class_name:?}; known: {}", RESOURCE_CLASSES.join(", ")))
    })?;
    let name = match &opts.name {
        Some(n) => checked_name(n)?,
        None => checked_name(&checked.spec.name.to_lowercase().replace(['_', '.'], "-"))?,
    };
    let image = opts.image.clone().unwrap_or_else(|| {
        let suffix = if class.gpus > 0 { "-cuda" } else { "" };
        format!("{IMAGE_REPOSITORY}{suffix}:{}", env!("CARGO_PKG_VERSION"))
    });
    let spec_json = serde_json::to_string_pretty(&checked.spec.resolved_json())
        .map_err(|e| Error::Internal(e.to_string()))?;
    let namespace = opts.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(format!("{name}-spec")),
            namespace: Some(namespace.clone()),
            labels: Some(labels(class, None)),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("job.json".to_string(), spec_json + "\n")])),
        ..Default::default()
    };
    let storage = Storage::of(checked);
    let mut job = job(&name, class, &image, &storage);
    job.metadata.namespace = Some(namespace.clone());
    if let Some(account) = &opts.service_account {
        checked_namespace(account).map_err(|_| {
            Error::Usage(format!(
                "--service-account {account:?} is not a valid name (lower-case letters, digits and '-', at \
                 most 63)"
            ))
        })?;
        if let Some(pod) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            // The token stays unmounted: the IRSA and workload-identity webhooks project their
            // own, and trainyard never calls the Kubernetes API.
            pod.service_account_name = Some(account.clone());
        }
    }
    let mut network_policies = vec![isolation(&name, &namespace)];
    if storage.remote {
        network_policies.push(object_store_egress(&name, &namespace));
    }
    let remote_run = storage.remote_runs.as_ref().map(|root| format!("{root}/{name}"));
    Ok(Objects { config_map, network_policies, job, remote_run })
}

/// Egress for this Job's pods (the Job controller labels them with its name) to the cluster DNS
/// and to HTTPS anywhere (bucket and STS addresses are not fixed), as
/// `k8s/examples/object-store/networkpolicy.yaml`. An S3-compatible endpoint on another port needs
/// a rule of its own.
fn object_store_egress(name: &str, namespace: &str) -> NetworkPolicy {
    let port = |protocol: &str, port: i32| NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(port)),
        ..Default::default()
    };
    let labels = |pairs: &[(&str, &str)]| {
        Some(LabelSelector {
            match_labels: Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        })
    };
    let anywhere = |cidr: &str| NetworkPolicyPeer {
        ip_block: Some(IPBlock { cidr: cidr.into(), ..Default::default() }),
        ..Default::default()
    };
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(format!("{name}-egress")),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([("app.kubernetes.io/name".to_string(), "trainyard".to_string())])),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: labels(&[
                ("app.kubernetes.io/name", "trainyard"),
                ("batch.kubernetes.io/job-name", name),
            ]),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        namespace_selector: labels(&[("kubernetes.io/metadata.name", "kube-system")]),
                        pod_selector: labels(&[("k8s-app", "kube-dns")]),
                        ..Default::default()
                    }]),
                    ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
                },
                NetworkPolicyEgressRule {
                    to: Some(vec![anywhere("0.0.0.0/0"), anywhere("::/0")]),
                    ports: Some(vec![port("TCP", 443)]),
                },
            ]),
            ..Default::default()
        }),
    }
}

/// No traffic in or out of training pods, as `k8s/base/networkpolicy.yaml`.
fn isolation(name: &str, namespace: &str) -> NetworkPolicy {
    let app = BTreeMap::from([("app.kubernetes.io/name".to_string(), "trainyard".to_string())]);
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(format!("{name}-isolated")),
            namespace: Some(namespace.into()),
            labels: Some(app.clone()),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector { match_labels: Some(app), ..Default::default() }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ..Default::default()
        }),
    }
}

fn to_yaml<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_norway::to_string(value).map_err(|e| Error::Internal(format!("rendering YAML: {e}")))
}

fn checked_name(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 52 // room for Kubernetes' pod-name suffixes
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-');
    if ok {
        Ok(name.to_string())
    } else {
        Err(Error::Usage(format!(
            "job name {name:?} is not a valid Kubernetes name (1-52 lower-case letters, digits and '-', starting with a letter); pass --name"
        )))
    }
}

/// `--namespace`: Kubernetes requires an RFC 1123 label.
fn checked_namespace(namespace: &str) -> Result<()> {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = (1..=63).contains(&namespace.len())
        && namespace.chars().all(|c| alphanumeric(c) || c == '-')
        && namespace.starts_with(alphanumeric)
        && namespace.ends_with(alphanumeric);
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "--namespace {namespace:?} is not a valid Kubernetes namespace (an RFC 1123 label: 1-63 \
             lower-case letters, digits and '-', starting and ending with a letter or digit)"
        )))
    }
}

/// `--image`: an image reference as the container runtime parses it (the grammar of
/// github.com/distribution/reference), `[host[:port]/]path[:tag][@sha256:<64 hex>]`. IPv6
/// registry addresses (`[::1]:5000/...`) are not accepted.
fn checked_image(image: &str) -> Result<()> {
    let bad =
        |rule: &str| Err(Error::Usage(format!("--image {image:?} is not a valid image reference: {rule}")));
    if image.is_empty() {
        return bad("it is empty");
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it contains whitespace or control characters");
    }
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let hex = digest.strip_prefix("sha256:").unwrap_or_default();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
            return bad("the digest after '@' must be sha256: and 64 lower-case hex digits");
        }
    }
    // The tag follows the last ':' after the last '/'; an earlier ':' belongs to a port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let ok = (1..=128).contains(&tag.len())
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            && !tag.starts_with(['.', '-']);
        if !ok {
            return bad(
                "the tag after ':' must be 1-128 letters, digits, '_', '.' and '-', not starting with '.' or '-'",
            );
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // Docker's rule: the first of several components is a registry when it has a '.', a ':' or
    // an upper-case letter, or is `localhost`; otherwise `team/app` is a path on Docker Hub.
    let first = components[0];
    if components.len() > 1
        && (first.contains(['.', ':'])
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase()))
    {
        let (host, port) = first.split_once(':').map_or((first, None), |(h, p)| (h, Some(p)));
        let host_part = |p: &str| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !p.starts_with('-')
                && !p.ends_with('-')
        };
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        if !host.split('.').all(host_part) || !port_ok {
            return bad(&format!(
                "registry {first:?} must be a host name ('.'-separated parts of letters, digits and '-') \
                 with an optional :port"
            ));
        }
        components.remove(0);
    }
    match components.iter().find(|c| !path_component(c)) {
        Some(c) => bad(&format!(
            "path component {c:?} must be lower-case letters and digits, separated by '.', '_', '__' \
             or '-'"
        )),
        None => Ok(()),
    }
}

/// One `/`-separated component of an image path: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn path_component(component: &str) -> bool {
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let mut i = 0;
    loop {
        let run = i;
        while i < bytes.len() && alphanumeric(bytes[i]) {
            i += 1;
        }
        if i == run {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let separator = i;
        while i < bytes.len() && !alphanumeric(bytes[i]) {
            i += 1;
        }
        if !matches!(&bytes[separator..i], b"." | b"_" | b"__")
            && !bytes[separator..i].iter().all(|&b| b == b'-')
        {
            return false;
        }
    }
}

fn labels(class: &ResourceClass, component: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([(CLASS_LABEL.to_string(), class.name.to_string())]);
    if let Some(c) = component {
        l.insert("app.kubernetes.io/name".into(), "trainyard".into());
        l.insert("app.kubernetes.io/component".into(), c.into());
    }
    l
}

fn quantities(class: &ResourceClass) -> BTreeMap<String, Quantity> {
    let mut q = BTreeMap::from([
        ("cpu".to_string(), Quantity(class.cpu.into())),
        ("memory".to_string(), Quantity(class.memory.into())),
        ("ephemeral-storage".to_string(), Quantity(class.ephemeral_storage.into())),
    ]);
    if class.gpus > 0 {
        q.insert("nvidia.com/gpu".into(), Quantity(class.gpus.to_string()));
    }
    q
}

fn exit_codes(action: &str, codes: &[i32]) -> PodFailurePolicyRule {
    PodFailurePolicyRule {
        action: action.into(),
        on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
            container_name: Some("trainyard".into()),
            operator: "In".into(),
            values: codes.to_vec(),
        }),
        ..Default::default()
    }
}

fn job(name: &str, class: &ResourceClass, image: &str, storage: &Storage) -> Job {
    let mut tolerations = vec![Toleration {
        key: Some(POOL_LABEL.into()),
        operator: Some("Equal".into()),
        value: Some(class.name.into()),
        effect: Some("NoSchedule".into()),
        ..Default::default()
    }];
    if class.gpus > 0 {
        tolerations.push(Toleration {
            key: Some("nvidia.com/gpu".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        });
    }
    let seccomp = || Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() });
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    };
    let container = Container {
        name: "trainyard".into(),
        image: Some(image.into()),
        image_pull_policy: Some("Always".into()),
        args: Some({
            let output = match &storage.remote_runs {
                Some(root) => format!("{root}/$(RUN_NAME)"),
                None => "/runs/$(RUN_NAME)".into(),
            };
            ["train", "/spec/job.json", "--output", &output, "--log-format", "json"]
                .map(String::from)
                .to_vec()
        }),
        env: Some(vec![
            EnvVar {
                name: "RUN_NAME".into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.labels['batch.kubernetes.io/job-name']".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            EnvVar { name: "TMPDIR".into(), value: Some("/scratch".into()), ..Default::default() },
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(class)),
            limits: Some(quantities(class)),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(UID),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
            seccomp_profile: seccomp(),
            ..Default::default()
        }),
        termination_message_path: Some("/dev/termination-log".into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(
            [
                Some(mount("spec", "/spec", true)),
                storage.local_inputs.then(|| mount("data", "/data", true)),
                storage.remote_runs.is_none().then(|| mount("runs", "/runs", false)),
                Some(mount("scratch", "/scratch", false)),
            ]
            .into_iter()
            .flatten()
            .collect(),
        ),
        ..Default::default()
    };
    let pvc = |claim: &str, read_only: bool| {
        Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.into(),
            read_only: read_only.then_some(true),
        })
    };
    // A run bound for a bucket is staged in the scratch volume before it is uploaded: it gets
    // the class's ephemeral storage, not 1Gi.
    let scratch = if storage.remote_runs.is_some() { class.ephemeral_storage } else { "1Gi" };
    let volumes = [
        Some(Volume {
            name: "spec".into(),
            config_map: Some(ConfigMapVolumeSource { name: format!("{name}-spec"), ..Default::default() }),
            ..Default::default()
        }),
        storage.local_inputs.then(|| Volume {
            name: "data".into(),
            persistent_volume_claim: pvc("trainyard-data", true),
            ..Default::default()
        }),
        storage.remote_runs.is_none().then(|| Volume {
            name: "runs".into(),
            persistent_volume_claim: pvc("trainyard-runs", false),
            ..Default::default()
        }),
        Some(Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity(scratch.into())),
                ..Default::default()
            }),
            ..Default::default()
        }),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels(class, Some("train"))),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(3),
            active_deadline_seconds: Some(86_400),
            ttl_seconds_after_finished: Some(604_800),
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![
                    exit_codes("FailJob", &[2, 3]),
                    exit_codes("Ignore", &[143]),
                    PodFailurePolicyRule {
                        action: "Ignore".into(),
                        on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                            type_: "DisruptionTarget".into(),
                            status: "True".into(),
                        }]),
                        ..Default::default()
                    },
                ],
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(class, Some("train"))),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(UID),
                        run_as_group: Some(UID),
                        fs_group: Some(UID),
                        seccomp_profile: seccomp(),
                        ..Default::default()
                    }),
                    node_selector: Some(BTreeMap::from([(POOL_LABEL.to_string(), class.name.to_string())])),
                    tolerations: Some(tolerations),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::JobSpec as Spec;

    fn checked(resources: Option<&str>) -> CheckedSpec {
        let mut json = serde_json::json!({"name": "Fraud_global", "data": {"features": ["/data/x.parquet"]},
            "label": "y", "features": {"numeric": ["a"]}});
        if let Some(r) = resources {
            json["resources"] = r.into();
        }
        CheckedSpec::new(serde_json::from_value::<Spec>(json).unwrap(), std::path::Path::new(".")).unwrap()
    }

    #[test]
    fn object_store_specs_get_no_volume_for_the_bucket_and_egress_to_dns_and_https() {
        let render_with = |features: &str, output: &str| {
            let json = serde_json::json!({"name": "fraud-global", "data": {"features": [features]},
                "label": "y", "features": {"numeric": ["a"]}, "output": output});
            let checked =
                CheckedSpec::new(serde_json::from_value::<Spec>(json).unwrap(), std::path::Path::new("."))
                    .unwrap();
            let opts = RenderOptions { class: Some("cpu-small".into()), ..Default::default() };
            let yaml = render(&checked, &opts).unwrap();
            yaml.split("---\n")
                .map(|d| serde_norway::from_str(d).unwrap())
                .collect::<Vec<serde_json::Value>>()
        };
        let volumes = |job: &serde_json::Value| -> Vec<String> {
            let pod = &job["spec"]["template"]["spec"];
            pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap().to_string())
                .collect()
        };

        let docs = render_with("s3://features/exports/", "s3://models/runs/fraud-global");
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["ConfigMap", "NetworkPolicy", "NetworkPolicy", "Job"]);
        let egress = &docs[2];
        assert_eq!(
            egress["spec"]["podSelector"]["matchLabels"]["batch.kubernetes.io/job-name"],
            "fraud-global"
        );
        let ports: Vec<i64> = egress["spec"]["egress"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["ports"].as_array().unwrap().iter().map(|p| p["port"].as_i64().unwrap()))
            .collect();
        assert_eq!(ports, [53, 53, 443]);
        let job = &docs[3];
        assert_eq!(volumes(job), ["spec", "scratch"]);
        let args = &job["spec"]["template"]["spec"]["containers"][0]["args"];
        assert_eq!(args[3], "s3://models/runs/$(RUN_NAME)");
        assert_eq!(job["spec"]["template"]["spec"]["volumes"][1]["emptyDir"]["sizeLimit"], "10Gi");

        // Local data into a bucket keeps the data volume; bucket data into /runs keeps runs.
        let docs = render_with("/data/x.parquet", "s3://models/runs/fraud-global");
        assert_eq!(volumes(&docs[3]), ["spec", "data", "scratch"]);
        let docs = render_with("gs://features/x.parquet", "runs/fraud-global");
        assert_eq!(volumes(&docs[3]), ["spec", "runs", "scratch"]);
        assert_eq!(docs[3]["spec"]["template"]["spec"]["containers"][0]["args"][3], "/runs/$(RUN_NAME)");
        // The pod can run as a ServiceAccount annotated for IRSA or workload identity.
        let opts = RenderOptions {
            class: Some("cpu-small".into()),
            service_account: Some("trainyard-s3".into()),
            ..Default::default()
        };
        let yaml = render(&checked(None), &opts).unwrap();
        assert!(yaml.contains("serviceAccountName: trainyard-s3"), "{yaml}");
        let bad = RenderOptions { service_account: Some("Bad Name".into()), ..opts };
        assert_eq!(render(&checked(None), &bad).unwrap_err().exit_code(), 2);
        // A local-only spec renders exactly base + class: no egress.
        let docs = render_with("/data/x.parquet", "runs/fraud-global");
        assert_eq!(docs.len(), 3);
        assert_eq!(volumes(&docs[2]), ["spec", "data", "runs", "scratch"]);
    }

    #[test]
    fn classes_match_the_spec_list() {
        assert_eq!(CLASSES.map(|c| c.name), RESOURCE_CLASSES);
    }

    #[test]
    fn renders_a_configmap_and_a_job_for_the_class() {
        let yaml = render(&checked(Some("gpu")), &RenderOptions::default()).unwrap();
        let docs: Vec<serde_json::Value> =
            yaml.split("---\n").map(|d| serde_norway::from_str(d).unwrap()).collect();
        assert_eq!(docs[0]["kind"], "ConfigMap");
        assert_eq!(docs[0]["metadata"]["name"], "fraud-global-spec");
        let spec: serde_json::Value =
            serde_json::from_str(docs[0]["data"]["job.json"].as_str().unwrap()).unwrap();
        assert_eq!(spec["resources"], "gpu");
        assert_eq!(spec["model"]["logistic"]["l2"], 1.0, "the resolved spec is embedded");
        let job = &docs[2];
        assert_eq!((job["apiVersion"].as_str(), job["kind"].as_str()), (Some("batch/v1"), Some("Job")));
        let pod = &job["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(c["image"], format!("ghcr.io/trainyard/trainyard-cuda:{}", env!("CARGO_PKG_VERSION")));
        assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "1");
        assert_eq!(c["resources"]["limits"], c["resources"]["requests"]);
        assert_eq!(pod["nodeSelector"][POOL_LABEL], "gpu");
        assert_eq!(pod["volumes"][0]["configMap"]["name"], "fraud-global-spec");
        assert_eq!(
            job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"],
            serde_json::json!([2, 3])
        );
        assert_eq!(docs[1]["kind"], "NetworkPolicy");
        assert!(docs.iter().all(|d| d["metadata"]["namespace"] == DEFAULT_NAMESPACE));
    }

    #[test]
    fn class_flag_overrides_and_unknown_classes_list_the_known_ones() {
        let opts = RenderOptions {
            class: Some("cpu-small".into()),
            name: Some("nightly".into()),
            ..Default::default()
        };
        let yaml = render(&checked(Some("gpu")), &opts).unwrap();
        assert!(yaml.contains("trainyard.dev/pool: cpu-small") && yaml.contains("name: nightly"));
        let err = render(&checked(None), &RenderOptions { class: Some("huge".into()), ..Default::default() })
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string()
                .contains("unknown resource class \"huge\"; known: cpu-small, cpu-large, highmem, gpu")
        );
        let err = render(&checked(None), &RenderOptions::default()).unwrap_err();
        assert!(err.to_string().starts_with("no resource class"), "{err}");
        let bad =
            RenderOptions { class: Some("gpu".into()), name: Some("Bad_Name".into()), ..Default::default() };
        assert_eq!(render(&checked(None), &bad).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn namespaces_are_rfc_1123_labels() {
        for ok in ["trainyard", "a", "team-1", "0ab", &"a".repeat(63)] {
            checked_namespace(ok).unwrap();
        }
        for bad in ["", "Trainyard", "a b", "-a", "a-", "a.b", "a_b", "a\nb", &"a".repeat(64)] {
            let err = checked_namespace(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().starts_with(&format!("--namespace {bad:?} is not a valid")), "{err}");
        }
    }

    #[test]
    fn images_are_checked_against_the_reference_grammar() {
        let digest = "0123456789abcdef".repeat(4);
        for ok in [
            "trainyard".to_string(),
            "ghcr.io/trainyard/trainyard:0.1.0".into(),
            "localhost:5000/team/app:latest".into(),
            "registry.example.com:443/a__b/c-d.e_f--g:V1_2.3-rc".into(),
            format!("ghcr.io/trainyard/trainyard@sha256:{digest}"),
            format!("trainyard:1@sha256:{digest}"),
            "Registry/app".into(),
            format!("app:{}", "t".repeat(128)),
        ] {
            checked_image(&ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, rule) in [
            ("", "it is empty"),
            ("ghcr.io/x/y:tag evil", "whitespace or control"),
            ("ghcr.io/x/y\n", "whitespace or control"),
            ("ghcr.io/Trainyard/x", "path component \"Trainyard\""),
            ("Upper/Case", "path component \"Case\""),
            ("a..b", "path component \"a..b\""),
            ("a/-b", "path component \"-b\""),
            ("a___b", "path component"),
            (":tag", "path component \"\""),
            ("a//b", "path component \"\""),
            ("app:", "the tag"),
            ("app:-x", "the tag"),
            ("app:a+b", "the tag"),
            ("app@sha256:abc", "the digest"),
            ("app@md5:0123", "the digest"),
            ("-host.io/app", "registry \"-host.io\""),
            ("host.io:80a/app", "registry \"host.io:80a\""),
        ] {
            let err = checked_image(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            let err = err.to_string();
            assert!(err.starts_with(&format!("--image {bad:?} is not a valid image reference: ")), "{err}");
            assert!(err.contains(rule), "{bad:?}: {err}");
        }
        let long_tag = format!("app:{}", "t".repeat(129));
        assert!(checked_image(&long_tag).unwrap_err().to_string().contains("the tag"));
    }
}
