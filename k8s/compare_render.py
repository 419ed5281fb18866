"""Checks that `trainyard render --class C` produces the Job that k8s/base + k8s/classes/C
produce (the kustomize example overlay), up to names, the spec content and the runs volume,
which the example overlay swaps for an emptyDir on purpose."""

import sys

import yaml


def load(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {d["kind"]: d for d in docs}
    return by_kind["ConfigMap"], by_kind["Job"], by_kind["NetworkPolicy"]


def normalize(job):
    job = yaml.safe_load(yaml.safe_dump(job))  # deep copy
    job["metadata"].pop("name")
    pod = job["spec"]["template"]["spec"]
    volumes = sorted(pod["volumes"], key=lambda v: v["name"])
    for v in volumes:
        if "configMap" in v:
            v["configMap"]["name"] = "<spec>"
        if v["name"] == "runs":
            v.clear()
            v["name"] = "runs"
    pod["volumes"] = volumes
    return job


def main(rendered, kustomized):
    r_cm, r_job, r_np = load(rendered)
    k_cm, k_job, k_np = load(kustomized)
    if r_np["spec"] != k_np["spec"] or r_np["metadata"]["namespace"] != k_np["metadata"]["namespace"]:
        sys.exit(f"{rendered}: NetworkPolicy differs from {kustomized}")
    if sorted(r_cm["data"]) != sorted(k_cm["data"]):
        sys.exit(f"{rendered}: ConfigMap keys {sorted(r_cm['data'])} != {sorted(k_cm['data'])}")
    a, b = normalize(r_job), normalize(k_job)
    if a != b:
        import difflib

        diff = difflib.unified_diff(
            yaml.safe_dump(b).splitlines(), yaml.safe_dump(a).splitlines(), kustomized, rendered, lineterm=""
        )
        sys.exit("\n".join(diff))
    print(f"ok: {rendered} matches {kustomized}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
