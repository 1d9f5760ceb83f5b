"""The node types of a Ray cluster-launcher file (``cluster.yaml``) and the resource check of a job config.

A job on the autoscaled cluster only starts if every actor or Ray Train worker it asks for fits
one node type: an actor that asks for ``GPU: 1`` on a cluster without GPU nodes waits forever
(the autoscaler has nothing to launch). :func:`check_resources` refuses such a config before
Ray starts, naming the resource and the node types.

Pure: reads plain mappings and config dataclasses; no Ray.

Example:
    >>> spec = parse_cluster({"max_workers": 4, "head_node_type": "head", "available_node_types": {
    ...     "head": {"resources": {"CPU": 0}}, "cpu": {"resources": {"CPU": 16}, "max_workers": 4}}})
    >>> [n.name for n in spec.workers]
    ['cpu']
    >>> check_requests([ResourceRequest("pose.resources", {"CPU": 1.0})], spec)
    >>> check_requests([ResourceRequest("sampler.resources", {"CPU": 4.0, "GPU": 1.0})], spec)
    Traceback (most recent call last):
    ...
    physio_ray.cluster.ClusterResourceError: cluster 'cluster' cannot run this config:
      - sampler.resources asks for GPU: 1 per actor, which no node type has (node types: head {CPU: 0}, cpu {CPU: 16})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ClusterResourceError",
    "ClusterSpec",
    "NodeType",
    "ResourceRequest",
    "check_job_cluster",
    "check_requests",
    "check_resources",
    "load_cluster",
    "parse_cluster",
    "resource_requests",
]


class ClusterResourceError(ValueError):
    """A config asks for resources that no node type of the cluster has (one line per problem)."""

    def __init__(self, problems: list[str], cluster: str) -> None:
        self.problems = problems
        super().__init__("\n".join([f"cluster {cluster!r} cannot run this config:", *(f"  - {p}" for p in problems)]))


@dataclass(frozen=True)
class NodeType:
    """One entry of ``available_node_types``.

    Attributes:
        name: the node type's key.
        resources: logical resources of one node (``CPU``, ``GPU``, custom ones).
        min_workers, max_workers: autoscaling bounds of this type.
        instance_type: ``node_config.InstanceType`` (AWS) or ``machineType`` (GCP), if given.
        is_head: whether this is the head node type.
    """

    name: str
    resources: dict[str, float]
    min_workers: int = 0
    max_workers: int = 0
    instance_type: str | None = None
    is_head: bool = False

    def fits(self, bundle: Mapping[str, float]) -> bool:
        """Whether one node of this type can hold ``bundle`` (every amount <= the node's)."""
        return all(self.resources.get(k, 0.0) >= v for k, v in bundle.items() if v > 0)

    def slots(self, bundle: Mapping[str, float]) -> int:
        """How many copies of ``bundle`` one node holds (0 when it does not fit)."""
        need = {k: v for k, v in bundle.items() if v > 0}
        if not need or not self.fits(need):
            return 0
        return int(min(self.resources[k] // v for k, v in need.items()))

    def describe(self) -> str:
        """``name {CPU: 16, GPU: 1}``."""
        return f"{self.name} {_fmt(self.resources)}"


@dataclass(frozen=True)
class ClusterSpec:
    """What the autoscaler of a cluster-launcher file may launch.

    Attributes:
        name: ``cluster_name``.
        node_types: every node type, head included.
        head_node_type: name of the head's type.
        max_workers: cluster-wide cap on worker nodes.
        upscaling_speed: nodes allowed pending, as a multiple of the running nodes.
        idle_timeout_minutes: an idle worker is removed after this long.
    """

    name: str
    node_types: tuple[NodeType, ...]
    head_node_type: str
    max_workers: int
    upscaling_speed: float = 1.0
    idle_timeout_minutes: float = 5.0

    @property
    def workers(self) -> list[NodeType]:
        """The worker node types (head excluded)."""
        return [n for n in self.node_types if not n.is_head]

    def node_type(self, name: str) -> NodeType:
        """The node type called ``name``.

        Raises:
            KeyError: naming the known node types.
        """
        for n in self.node_types:
            if n.name == name:
                return n
        raise KeyError(
            f"cluster {self.name!r} has no node type {name!r}; node types: {[n.name for n in self.node_types]}"
        )


@dataclass(frozen=True)
class ResourceRequest:
    """What one actor (or Ray Train worker) of a config asks for.

    Attributes:
        where: dotted path of the config block, e.g. ``sampler.resources``.
        bundle: resources per actor/worker; zero amounts are not requests.
        count: actors/workers of this shape (the pool's max).
    """

    where: str
    bundle: dict[str, float] = field(default_factory=dict)
    count: int = 1


def parse_cluster(spec: Mapping[str, Any], name: str | None = None) -> ClusterSpec:
    """Reads the node types of a cluster-launcher mapping (the YAML of ``ray up``).

    Args:
        spec: the parsed YAML (``available_node_types``, ``head_node_type``, ``max_workers``...).
        name: label for messages (default ``cluster_name``, else ``"cluster"``).

    Returns:
        The :class:`ClusterSpec`.

    Raises:
        ValueError: when ``available_node_types`` is missing or a node type has no ``resources``.
    """
    types = spec.get("available_node_types")
    if not isinstance(types, Mapping) or not types:
        raise ValueError("cluster file has no available_node_types mapping (Ray cluster-launcher format)")
    head = str(spec.get("head_node_type", ""))
    nodes = []
    for key, body in types.items():
        body = body or {}
        res = body.get("resources")
        if not isinstance(res, Mapping):
            raise ValueError(f"node type {key!r} has no resources mapping; give e.g. resources: {{CPU: 16}}")
        node_cfg = body.get("node_config") or {}
        nodes.append(
            NodeType(
                name=str(key),
                resources={str(k): float(v) for k, v in res.items()},
                min_workers=int(body.get("min_workers", 0)),
                max_workers=int(body.get("max_workers", 0)),
                instance_type=node_cfg.get("InstanceType") or node_cfg.get("machineType"),
                is_head=str(key) == head,
            )
        )
    return ClusterSpec(
        name=name or str(spec.get("cluster_name", "cluster")),
        node_types=tuple(nodes),
        head_node_type=head,
        max_workers=int(spec.get("max_workers", sum(n.max_workers for n in nodes))),
        upscaling_speed=float(spec.get("upscaling_speed", 1.0)),
        idle_timeout_minutes=float(spec.get("idle_timeout_minutes", 5.0)),
    )


def load_cluster(path: str | Path) -> ClusterSpec:
    """Reads ``path`` (a cluster-launcher YAML) into a :class:`ClusterSpec`."""
    path = Path(path)
    return parse_cluster(yaml.safe_load(path.read_text()) or {}, name=None)


def resource_requests(cfg: Any, prefix: str = "") -> list[ResourceRequest]:
    """Every actor-pool and Ray Train resource request in a config dataclass tree.

    Found by shape, so every job's config works without registration:

    * an actor pool (an object with ``cpus_per_actor`` / ``gpus_per_actor``, e.g.
      :class:`physio_ray.runtime.Resources` of pose/keyframes/questions/sampler/judge/montecarlo):
      ``{CPU, GPU}`` per actor plus a custom ``resources`` / ``custom_resources`` mapping if it has one;
    * a Ray Train scaling block (an object with ``resources_per_worker()`` and ``num_workers``):
      its per-worker resources, ``GPU: 1`` added when ``use_gpu`` leaves the count to Ray;
    * a numeric field named ``*_gpus`` (e.g. ``scorer_gpus``): ``{GPU: value}``.

    Args:
        cfg: a config dataclass (e.g. ``AnnotateConfig``, ``TrainPRMConfig``).
        prefix: dotted path of ``cfg`` (for messages).

    Returns:
        The requests in field order.
    """
    out: list[ResourceRequest] = []
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        return out
    where = prefix or "<top level>"
    if hasattr(cfg, "cpus_per_actor") or hasattr(cfg, "gpus_per_actor"):
        bundle = {"CPU": float(getattr(cfg, "cpus_per_actor", 1.0)), "GPU": float(getattr(cfg, "gpus_per_actor", 0.0))}
        for attr in ("resources", "custom_resources"):
            extra = getattr(cfg, attr, None)
            if isinstance(extra, Mapping):
                bundle.update({str(k): float(v) for k, v in extra.items()})
        out.append(ResourceRequest(where, _positive(bundle), int(getattr(cfg, "actors", 1))))
    elif callable(getattr(cfg, "resources_per_worker", None)) and hasattr(cfg, "num_workers"):
        if int(getattr(cfg, "num_workers")) > 0:  # noqa: B009
            bundle = dict(getattr(cfg, "resources_per_worker")())  # noqa: B009
            if getattr(cfg, "use_gpu", False) and "GPU" not in bundle:
                bundle["GPU"] = 1.0
            out.append(ResourceRequest(where, _positive(bundle), int(getattr(cfg, "num_workers"))))  # noqa: B009
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        path = f"{prefix}.{f.name}" if prefix else f.name
        if f.name.endswith("_gpus") and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            out.append(ResourceRequest(path, {"GPU": float(value)}))
        elif dataclasses.is_dataclass(value):
            out.extend(resource_requests(value, path))
    return out


def check_requests(requests: Iterable[ResourceRequest], cluster: ClusterSpec) -> None:
    """Refuses requests that no node type can hold.

    Args:
        requests: from :func:`resource_requests`.
        cluster: the cluster's node types.

    Raises:
        ClusterResourceError: one line per request asking for a resource no node type has
            (naming the resource, the request and every node type), or whose whole bundle fits
            no single node type.
    """
    problems = []
    types = ", ".join(n.describe() for n in cluster.node_types)
    for req in requests:
        missing = [
            k for k, v in req.bundle.items() if v > 0 and not any(n.resources.get(k, 0) > 0 for n in cluster.node_types)
        ]
        if missing:
            what = ", ".join(f"{k}: {_num(req.bundle[k])}" for k in missing)
            problems.append(f"{req.where} asks for {what} per actor, which no node type has (node types: {types})")
        elif req.bundle and not any(n.fits(req.bundle) for n in cluster.node_types):
            problems.append(
                f"{req.where} asks for {_fmt(req.bundle)} per actor, which no single node type holds (node types: {types})"
            )
    if problems:
        raise ClusterResourceError(problems, cluster.name)


def check_resources(cfg: Any, cluster: ClusterSpec | str | Path) -> list[ResourceRequest]:
    """Checks a job config against a cluster before the job starts.

    Jobs call it through :func:`check_job_cluster` before ``init_ray`` when their config names
    ``ray.cluster_file`` (``configs/annotate/cluster.yaml`` does).

    Args:
        cfg: a job config dataclass.
        cluster: a :class:`ClusterSpec` or the path of a cluster-launcher YAML.

    Returns:
        The requests checked.

    Raises:
        ClusterResourceError: see :func:`check_requests`.
    """
    spec = cluster if isinstance(cluster, ClusterSpec) else load_cluster(cluster)
    requests = resource_requests(cfg)
    check_requests(requests, spec)
    return requests


def check_job_cluster(cfg: Any) -> list[ResourceRequest]:
    """:func:`check_resources` against ``cfg.ray.cluster_file`` (nothing to check when unset).

    Jobs call it before ``init_ray``: a config that asks for a resource no node type has fails
    at submit time with the list of problems, not as an actor pending forever.

    Raises:
        ClusterResourceError: see :func:`check_requests`.
        FileNotFoundError: ``cluster_file`` does not exist.
    """
    ray_cfg = getattr(cfg, "ray", None)
    path = getattr(ray_cfg, "cluster_file", None)
    if not path:
        return []
    if not Path(path).is_file():
        raise FileNotFoundError(f"ray.cluster_file={path!r} does not exist (relative paths start at {Path.cwd()})")
    return check_resources(cfg, path)


def _positive(bundle: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in bundle.items() if v > 0}


def _num(v: float) -> str:
    return f"{v:g}"


def _fmt(resources: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {_num(v)}" for k, v in resources.items()) + "}"
