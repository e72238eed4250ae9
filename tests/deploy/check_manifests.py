#!/usr/bin/env python3
"""Checks manifests rendered by `kubectl kustomize` offline, with no API server.

Usage: check_manifests.py RENDERED.yaml [--gpu]

The checks a schema cannot make, and the schema's own where it matters: every
object has apiVersion, kind and metadata.name, of a kind and version curvd uses;
the StatefulSet's containers, probes, mounts and security contexts carry only
fields Kubernetes knows (a misspelt field would be dropped silently by a lenient
server); selectors match the pod labels; serviceName, volume, claim, ConfigMap
and port references resolve within the render; $(VAR) arguments are defined;
the pod runs as non-root with a read-only root and no capabilities; resources
are stated; state is a claim per replica and the data is read-only. With --gpu,
the container requests and limits nvidia.com/gpu and the pod selects GPU nodes.
Prints one line per problem and exits 1 if there is any.
"""
import re
import sys

import yaml

API_VERSIONS = {
    "StatefulSet": "apps/v1", "Service": "v1", "ConfigMap": "v1",
    "PersistentVolumeClaim": "v1", "PodDisruptionBudget": "policy/v1",
}
# Fields of the Kubernetes API types (k8s.io/api core/v1, apps/v1) that a
# misspelling would hide in; only the types curvd's manifests fill in.
KNOWN_FIELDS = {
    "statefulset.spec": {"serviceName", "replicas", "podManagementPolicy", "selector", "template",
                         "volumeClaimTemplates", "updateStrategy", "revisionHistoryLimit",
                         "minReadySeconds", "persistentVolumeClaimRetentionPolicy", "ordinals"},
    "pod.spec": {"securityContext", "terminationGracePeriodSeconds", "containers", "volumes",
                 "nodeSelector", "tolerations", "affinity", "initContainers", "serviceAccountName",
                 "priorityClassName", "topologySpreadConstraints", "runtimeClassName",
                 "imagePullSecrets", "automountServiceAccountToken"},
    "pod.securityContext": {"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "seccompProfile",
                            "supplementalGroups", "fsGroupChangePolicy", "seLinuxOptions", "sysctls"},
    "container": {"name", "image", "imagePullPolicy", "command", "args", "env", "envFrom", "ports",
                  "livenessProbe", "readinessProbe", "startupProbe", "resources", "securityContext",
                  "volumeMounts", "workingDir", "lifecycle", "terminationMessagePolicy"},
    "container.securityContext": {"allowPrivilegeEscalation", "readOnlyRootFilesystem",
                                  "capabilities", "runAsNonRoot", "runAsUser", "runAsGroup",
                                  "privileged", "seccompProfile"},
    "probe": {"grpc", "httpGet", "tcpSocket", "exec", "periodSeconds", "failureThreshold",
              "successThreshold", "timeoutSeconds", "initialDelaySeconds",
              "terminationGracePeriodSeconds"},
    "probe.grpc": {"port", "service"},
    "volumeMount": {"name", "mountPath", "readOnly", "subPath", "mountPropagation"},
    "volume": {"name", "persistentVolumeClaim", "secret", "emptyDir", "hostPath", "configMap",
               "projected"},
    "resources": {"requests", "limits"},
    "port": {"name", "containerPort", "protocol"},
}
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")

problems = []


def problem(message):
    problems.append(message)


def known(kind, obj, where):
    if not isinstance(obj, dict):
        problem(f"{where}: expected a mapping, got {type(obj).__name__}")
        return {}
    for key in sorted(set(obj) - KNOWN_FIELDS[kind]):
        problem(f"{where}: unknown field '{key}'")
    return obj


def matches(selector, labels, where):
    if not selector:
        problem(f"{where}: empty selector")
    for key, value in (selector or {}).items():
        if labels.get(key) != value:
            problem(f"{where}: selector {key}={value} does not match the pod labels {labels}")


def check_container(c, volume_names, configmaps, gpu):
    where = f"container {c.get('name')}"
    known("container", c, where)
    ports = {}
    for p in c.get("ports", []):
        known("port", p, f"{where} port")
        ports[p["name"]] = p["containerPort"]
    defined = {e["name"] for e in c.get("env", [])}
    for source in c.get("envFrom", []):
        name = source.get("configMapRef", {}).get("name")
        if name not in configmaps:
            problem(f"{where}: envFrom names ConfigMap {name}, not in the render")
        else:
            defined |= set(configmaps[name])
    for arg in c.get("args", []):
        for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", arg):
            if var not in defined:
                problem(f"{where}: argument {arg} uses $({var}), defined by no env or ConfigMap")
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(probe_name)
        if probe is None:
            problem(f"{where}: no {probe_name}")
            continue
        known("probe", probe, f"{where} {probe_name}")
        grpc = known("probe.grpc", probe.get("grpc", {}), f"{where} {probe_name}.grpc")
        if grpc.get("port") not in ports.values() and grpc.get("port") not in ports:
            problem(f"{where}: {probe_name} asks port {grpc.get('port')}, no container port")
    if c.get("readinessProbe", {}).get("grpc", {}).get("service") != "curvd.v1.Curvd":
        problem(f"{where}: readiness does not ask grpc.health.v1 about curvd.v1.Curvd")
    resources = known("resources", c.get("resources", {}), f"{where} resources")
    for part in ("requests", "limits"):
        for key in ("cpu", "memory"):
            value = str(resources.get(part, {}).get(key, ""))
            if not QUANTITY.match(value):
                problem(f"{where}: resources.{part}.{key} is '{value}', not a quantity")
    if gpu:
        requests = resources.get("requests", {}).get("nvidia.com/gpu")
        limits = resources.get("limits", {}).get("nvidia.com/gpu")
        if not limits or requests != limits:
            problem(f"{where}: nvidia.com/gpu requests {requests} and limits {limits} must be equal and set")
    sc = known("container.securityContext", c.get("securityContext", {}), f"{where} securityContext")
    if sc.get("readOnlyRootFilesystem") is not True:
        problem(f"{where}: the root filesystem is not read-only")
    if sc.get("allowPrivilegeEscalation") is not False:
        problem(f"{where}: privilege escalation is allowed")
    if sc.get("capabilities", {}).get("drop") != ["ALL"]:
        problem(f"{where}: capabilities are not all dropped")
    mounts = {}
    for m in c.get("volumeMounts", []):
        known("volumeMount", m, f"{where} volumeMount")
        mounts[m["mountPath"]] = m
        if m["name"] not in volume_names:
            problem(f"{where}: mount {m['mountPath']} names volume {m['name']}, which does not exist")
    if not mounts.get("/data", {}).get("readOnly"):
        problem(f"{where}: /data is not mounted read-only")
    return ports


def check_statefulset(s, by_kind, gpu):
    where = f"StatefulSet {s['metadata']['name']}"
    spec = known("statefulset.spec", s.get("spec", {}), f"{where} spec")
    template = spec.get("template", {})
    labels = template.get("metadata", {}).get("labels", {})
    matches(spec.get("selector", {}).get("matchLabels"), labels, f"{where} selector")
    headless = by_kind.get("Service", {}).get(spec.get("serviceName"))
    if not headless or headless["spec"].get("clusterIP") != "None":
        problem(f"{where}: serviceName {spec.get('serviceName')} is not a headless Service in the render")
    pod = known("pod.spec", template.get("spec", {}), f"{where} pod spec")
    psc = known("pod.securityContext", pod.get("securityContext", {}), f"{where} pod securityContext")
    if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
        problem(f"{where}: the pod does not run as a non-root user")
    claims = [t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])]
    volumes = {}
    for v in pod.get("volumes", []):
        known("volume", v, f"{where} volume")
        volumes[v["name"]] = v
        claim = v.get("persistentVolumeClaim", {}).get("claimName")
        if claim and claim not in by_kind.get("PersistentVolumeClaim", {}):
            problem(f"{where}: volume {v['name']} claims {claim}, not in the render")
    if "state" not in claims:
        problem(f"{where}: the state volume is not a claim per replica (volumeClaimTemplates)")
    if gpu:
        if not pod.get("nodeSelector"):
            problem(f"{where}: no nodeSelector for GPU nodes")
    configmaps = {n: o.get("data", {}) for n, o in by_kind.get("ConfigMap", {}).items()}
    ports = {}
    for c in pod.get("containers", []):
        ports.update(check_container(c, set(volumes) | set(claims), configmaps, gpu))
    # The replica count the servers hash runs over must be the set's size.
    counts = {data["CURVD_REPLICAS"] for data in configmaps.values() if "CURVD_REPLICAS" in data}
    if counts != {str(spec.get("replicas", 1))}:
        problem(f"{where}: CURVD_REPLICAS {sorted(counts)} is not spec.replicas {spec.get('replicas', 1)}")
    return labels, ports


def main():
    path, gpu = sys.argv[1], "--gpu" in sys.argv[2:]
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for d in docs:
        kind, name = d.get("kind"), d.get("metadata", {}).get("name")
        if not name:
            problem(f"{kind}: no metadata.name")
        if API_VERSIONS.get(kind) != d.get("apiVersion"):
            problem(f"{kind} {name}: apiVersion {d.get('apiVersion')}, expected {API_VERSIONS.get(kind)}")
        by_kind.setdefault(kind, {})[name] = d
    sets = list(by_kind.get("StatefulSet", {}).values())
    if len(sets) != 1:
        problem(f"expected one StatefulSet, found {len(sets)}")
        return
    labels, ports = check_statefulset(sets[0], by_kind, gpu)
    for name, svc in by_kind.get("Service", {}).items():
        matches(svc["spec"].get("selector"), labels, f"Service {name}")
        for p in svc["spec"].get("ports", []):
            if p.get("targetPort") not in ports:
                problem(f"Service {name}: targetPort {p.get('targetPort')} is no container port")
    pdbs = list(by_kind.get("PodDisruptionBudget", {}).values())
    if not pdbs:
        problem("no PodDisruptionBudget")
    for pdb in pdbs:
        matches(pdb["spec"].get("selector", {}).get("matchLabels"), labels, "PodDisruptionBudget")


main()
for p in problems:
    print(f"check_manifests: {p}")
sys.exit(1 if problems else 0)
