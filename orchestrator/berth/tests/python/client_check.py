"""The official Kubernetes Python client against a berth API server.

Usage: client_check.py SERVER MARKER

SERVER is the API's URL; MARKER is the argument of the `sleep` the pods run, so that the
test can find (and clean up) their processes. Every object the client reads is turned
into the client's models, which refuse an object that lacks a field they require: each
read below is also a check of berth's answers. Exits non-zero, saying why, on the first
thing that is not as a Kubernetes API server would have it.
"""

import sys

from kubernetes import client, watch

NAMESPACE = "default"
POD = "py-sleeper"
DEPLOYMENT = "py-web"


def check(condition, what):
    if not condition:
        raise SystemExit(f"FAILED: {what}")


def field(obj, *names):
    """A field under whichever name this client version gives it (podIPs was
    `pod_i_ps` in older clients, `pod_ips` in newer ones)."""
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    raise SystemExit(f"FAILED: {type(obj).__name__} has none of {names}")


def sleeper(marker, limits):
    return client.V1Container(
        name="main",
        image="busybox:1.36",
        command=["sleep", marker],
        resources=client.V1ResourceRequirements(limits=limits),
    )


def main(server, marker):
    configuration = client.Configuration()
    configuration.host = server
    api_client = client.ApiClient(configuration)
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)

    # GET /version/: every field of version.Info.
    version = client.VersionApi(api_client).get_code()
    check(version.git_version.startswith("v"), f"a gitVersion: {version}")
    check(version.major and version.minor, f"major and minor: {version}")
    print("version", version.git_version, version.platform)

    nodes = core.list_node().items
    check(len(nodes) == 1, f"one node: {[n.metadata.name for n in nodes]}")
    ready = [c for c in nodes[0].status.conditions if c.type == "Ready"]
    check(ready and ready[0].status == "True", f"a Ready node: {nodes[0].status.conditions}")
    internal_ip = [a.address for a in nodes[0].status.addresses if a.type == "InternalIP"][0]
    namespaces = [n.metadata.name for n in core.list_namespace().items]
    check(NAMESPACE in namespaces, f"the default namespace: {namespaces}")

    # A watch from the list's resourceVersion sees the pod created after the list.
    listed = core.list_namespaced_pod(NAMESPACE)
    check(listed.items == [], f"no pods yet: {listed.items}")
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=POD, labels={"app": "py"}),
        spec=client.V1PodSpec(
            termination_grace_period_seconds=2,
            containers=[sleeper(marker, {"cpu": "100m", "memory": "64Mi"})],
        ),
    )
    created = core.create_namespaced_pod(NAMESPACE, pod)
    check(created.status.phase == "Pending", f"a new pod is Pending: {created.status}")
    check(created.status.qos_class == "Guaranteed", f"limits alone: Guaranteed: {created.status}")

    stream = watch.Watch()
    events = []
    running = None
    for event in stream.stream(
        core.list_namespaced_pod,
        namespace=NAMESPACE,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=90,
    ):
        seen = event["object"]
        events.append((event["type"], seen.metadata.name, seen.status.phase))
        statuses = seen.status.container_statuses or []
        if seen.status.phase == "Running" and statuses and statuses[0].started:
            running = seen
            stream.stop()
    print("events", events)
    check(events and events[0][:2] == ("ADDED", POD), f"the watch saw the pod added first: {events}")
    check(running is not None, f"the pod ran within the watch's 90 s: {events}")

    status = running.status
    check(status.host_ip == internal_ip, f"hostIP is the node's InternalIP {internal_ip}: {status}")
    check(status.pod_ip == internal_ip, f"podIP is the node's (its network): {status}")
    check([ip.ip for ip in field(status, "host_ips", "host_i_ps")] == [internal_ip], f"hostIPs: {status}")
    check([ip.ip for ip in field(status, "pod_ips", "pod_i_ps")] == [internal_ip], f"podIPs: {status}")
    check(status.qos_class == "Guaranteed", f"the class is kept: {status}")
    check(status.start_time is not None, f"a startTime: {status}")
    container = status.container_statuses[0]
    check(container.container_id.startswith("berth-process://"), f"a containerID: {container}")
    check(container.image == "busybox:1.36" and container.image_id, f"image and imageID: {container}")
    check(container.ready and container.started, f"ready and started: {container}")
    check(container.state.running is not None, f"running: {container}")
    types = sorted(c.type for c in status.conditions)
    check("Ready" in types and "PodScheduled" in types, f"Ready and PodScheduled: {types}")

    # The pod reads back the same way, alone and in a list.
    check(core.read_namespaced_pod(POD, NAMESPACE).status.pod_ip == internal_ip, "read back")
    check([p.metadata.name for p in core.list_namespaced_pod(NAMESPACE).items] == [POD], "listed")

    # Deployments and the ReplicaSets and pods they make are the client's models too.
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name=DEPLOYMENT),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels={"app": DEPLOYMENT}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": DEPLOYMENT}),
                spec=client.V1PodSpec(
                    termination_grace_period_seconds=2,
                    containers=[sleeper(marker, {"memory": "64Mi"})],
                ),
            ),
        ),
    )
    apps.create_namespaced_deployment(NAMESPACE, deployment)
    stream = watch.Watch()
    owned = None
    for event in stream.stream(
        core.list_namespaced_pod,
        namespace=NAMESPACE,
        label_selector=f"app={DEPLOYMENT}",
        timeout_seconds=90,
    ):
        owned = event["object"]
        if owned.status.phase == "Running":
            stream.stop()
    check(owned is not None and owned.status.phase == "Running", f"the deployment's pod ran: {owned}")
    check(owned.status.qos_class == "Burstable", f"a memory limit alone: Burstable: {owned.status}")
    owner = owned.metadata.owner_references[0]
    check(owner.kind == "ReplicaSet" and owner.controller, f"owned by its ReplicaSet: {owner}")
    sets = apps.list_namespaced_replica_set(NAMESPACE).items
    check([s.metadata.name for s in sets] == [owner.name], f"its ReplicaSet: {sets}")
    check(sets[0].metadata.owner_references[0].kind == "Deployment", f"owned: {sets[0].metadata}")
    listed_deployments = apps.list_namespaced_deployment(NAMESPACE).items
    check([d.metadata.name for d in listed_deployments] == [DEPLOYMENT], f"listed: {listed_deployments}")
    apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE)
    core.read_namespace(NAMESPACE)

    apps.delete_namespaced_deployment(DEPLOYMENT, NAMESPACE)
    core.delete_namespaced_pod(POD, NAMESPACE)
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
