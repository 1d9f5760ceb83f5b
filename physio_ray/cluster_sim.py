"""An autoscaling multi-node Ray cluster simulated on one machine, with ``cluster.yaml``'s node types.

Ray's autoscaler has a fake multi-node provider (``provider.type: fake_multinode``) that
"launches" a worker node by starting another raylet on this machine with the node type's
logical resources. :func:`fake_cluster_config` writes its config from ``cluster.yaml``: the
same node type names and the same logical resources (``CPU: 16`` for ``cpu_pose``,
``GPU: 1`` and ``accelerator_type:L4: 1`` for ``gpu_sampling``, ...), every worker type from 0
nodes, a short idle timeout so that removal shows within a test. Logical resources are what
Ray schedules by, so a stage that asks for ``gpus_per_actor: 1`` makes the autoscaler launch a
``gpu_sampling`` node exactly as on AWS; the work itself runs on this machine's CPUs.

:class:`NodeWatch` records which nodes are alive over time (``ray.nodes()``, public API) and
names each node by its type (the node type whose logical resources it carries), and
:func:`render_timeline` prints it. ``scripts/cluster_sim.py`` drives the whole run (start,
``ray job submit``, timeline, optional node kill, stop); ``tests/cluster/test_autoscaling.py``
runs that script.

Example:
    >>> from physio_ray.cluster import parse_cluster
    >>> spec = parse_cluster({"cluster_name": "c", "head_node_type": "head", "available_node_types": {
    ...     "head": {"resources": {"CPU": 0}},
    ...     "gpu_sampling": {"resources": {"CPU": 8, "GPU": 1}, "max_workers": 24}}})
    >>> cfg = fake_cluster_config(spec)
    >>> cfg["provider"]["type"], sorted(cfg["available_node_types"])
    ('fake_multinode', ['gpu_sampling', 'ray.head.default'])
    >>> cfg["available_node_types"]["gpu_sampling"]["resources"]["GPU"], cfg["available_node_types"]["gpu_sampling"]["min_workers"]
    (1.0, 0)
    >>> node_type_of({"CPU": 8.0, "GPU": 1.0, "memory": 1e9, "node:127.0.0.1": 1.0}, spec)
    'gpu_sampling'
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from physio_ray.cluster import ClusterSpec

__all__ = [
    "HEAD_TYPE",
    "NodeEvent",
    "NodeWatch",
    "fake_cluster_config",
    "job_status",
    "node_type_of",
    "ray_cli",
    "ray_env",
    "render_timeline",
    "submit_job",
]

HEAD_TYPE = "ray.head.default"
"""The fake provider's name for the head node's type."""

_NOT_LOGICAL = ("memory", "object_store_memory")


def fake_cluster_config(
    spec: ClusterSpec,
    max_workers_per_type: int = 2,
    idle_timeout_minutes: float = 0.25,
    object_store_bytes: int = 200_000_000,
) -> dict[str, Any]:
    """The fake multi-node autoscaler config that mirrors ``spec``'s node types.

    Args:
        spec: the cluster (``physio_ray.cluster.load_cluster("cluster.yaml")``).
        max_workers_per_type: cap per worker type (each fake node is a raylet on this machine).
        idle_timeout_minutes: an idle worker node is removed after this long.
        object_store_bytes: object store of each fake worker node.

    Returns:
        A config for ``RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=<file>``.
    """
    if max_workers_per_type < 1:
        raise ValueError(f"max_workers_per_type={max_workers_per_type} must be >= 1")
    head = spec.node_type(spec.head_node_type)
    types: dict[str, Any] = {
        HEAD_TYPE: {"resources": dict(head.resources), "node_config": {}, "max_workers": 0},
    }
    for n in spec.workers:
        types[n.name] = {
            "resources": {**{k: float(v) for k, v in n.resources.items()}, "object_store_memory": object_store_bytes},
            "node_config": {},
            "min_workers": 0,
            "max_workers": min(max_workers_per_type, max(n.max_workers, 1)),
        }
    empty: list[str] = []
    return {
        "cluster_name": f"{spec.name}-sim",
        "max_workers": max_workers_per_type * len(spec.workers),
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "available_node_types": types,
        "head_node_type": HEAD_TYPE,
        "auth": {},
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": idle_timeout_minutes,
        "docker": {},
        "initialization_commands": empty,
        "setup_commands": empty,
        "head_setup_commands": empty,
        "worker_setup_commands": empty,
        "head_start_ray_commands": empty,
        "worker_start_ray_commands": empty,
        "file_mounts": {},
        "cluster_synced_files": empty,
        "file_mounts_sync_continuously": False,
        "rsync_exclude": empty,
        "rsync_filter": empty,
    }


def node_type_of(resources: Mapping[str, float], spec: ClusterSpec) -> str:
    """The node type whose logical resources a node carries (``head`` for the head, ``?`` if none)."""
    logical = {k: float(v) for k, v in resources.items() if k not in _NOT_LOGICAL and not k.startswith("node:") and v}
    for n in spec.node_types:
        mine = {k: float(v) for k, v in n.resources.items() if v}
        if mine == logical:
            return spec.head_node_type if n.is_head else n.name
    return "?"


@dataclass(frozen=True)
class NodeEvent:
    """A node seen alive for the first time, or seen gone.

    Attributes:
        t_s: seconds since the watch started.
        event: ``launched`` or ``removed``.
        node_type: its node type (:func:`node_type_of`).
        node_id: Ray's node id.
    """

    t_s: float
    event: str
    node_type: str
    node_id: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe."""
        return asdict(self)


class NodeWatch:
    """Polls ``ray.nodes()`` in a thread and records launches and removals (call in a connected driver).

    Args:
        spec: the cluster, to name node types.
        interval_s: polling interval.
    """

    def __init__(self, spec: ClusterSpec, interval_s: float = 1.0) -> None:
        self.spec = spec
        self.interval_s = interval_s
        self.events: list[NodeEvent] = []
        self.marks: list[tuple[float, str]] = []
        self._alive: dict[str, str] = {}
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-watch", daemon=True)

    def start(self) -> NodeWatch:
        """Starts polling (returns self)."""
        self.poll()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops polling after one last look."""
        self._stop.set()
        self._thread.join(timeout=10 * self.interval_s)
        self.poll()

    def mark(self, what: str) -> None:
        """Adds a line to the timeline (``job submitted``, ``job SUCCEEDED``)."""
        self.marks.append((self.now(), what))

    def now(self) -> float:
        """Seconds since the watch started."""
        return round(time.monotonic() - self._t0, 1)

    def alive(self) -> dict[str, str]:
        """Node id -> node type of the nodes alive at the last poll."""
        return dict(self._alive)

    def poll(self) -> None:
        """One look at the cluster."""
        import ray

        now = {n["NodeID"]: node_type_of(n.get("Resources", {}), self.spec) for n in ray.nodes() if n.get("Alive")}
        t = self.now()
        for nid, kind in now.items():
            if nid not in self._alive:
                self.events.append(NodeEvent(t, "launched", kind, nid))
        for nid, kind in self._alive.items():
            if nid not in now:
                self.events.append(NodeEvent(t, "removed", kind, nid))
        self._alive = now

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - a lost connection ends the watch, recorded
                self.marks.append((self.now(), f"watch stopped: {exc}"))
                return

    def to_dict(self) -> dict[str, Any]:
        """``{"events": [...], "marks": [[t, what], ...]}``."""
        return {"events": [e.as_dict() for e in self.events], "marks": [list(m) for m in self.marks]}


def render_timeline(events: list[dict[str, Any]], marks: list[list[Any]]) -> str:
    """The node timeline as text, one line per launch, removal or mark, in time order.

    >>> print(render_timeline([{"t_s": 3.0, "event": "launched", "node_type": "cpu_pose", "node_id": "ff00001"}],
    ...                       [[1.0, "job submitted"]]))
      t (s)  what
        1.0  job submitted
        3.0  + cpu_pose       ...f00001
    """
    rows: list[tuple[float, str]] = [(float(t), f"{what}") for t, what in marks]
    for e in events:
        sign = "+" if e["event"] == "launched" else "-"
        rows.append((float(e["t_s"]), f"{sign} {e['node_type']:14s} ...{e['node_id'][-6:]}"))
    lines = ["  t (s)  what"] + [f"{t:7.1f}  {what}" for t, what in sorted(rows, key=lambda r: r[0])]
    return "\n".join(lines)


def ray_env() -> dict[str, str]:
    """The environment for this venv's ``ray`` CLI against a local head.

    No ``RAY_ADDRESS`` (the commands name their address), this venv first on ``PATH`` (a job's
    ``python`` is found on the raylet's PATH, inherited from ``ray start``), and
    ``RAY_AUTH_MODE=token``: Ray 2.60's ``ray start`` turns token auth on and the job CLI only
    sends the token it wrote to ``~/.ray/auth_token`` when told the cluster uses tokens.
    """
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_AUTH_MODE"] = "token"
    return env


def ray_cli(
    *args: str, cwd: str | Path, timeout: float = 180, check: bool = True, env: Mapping[str, str] | None = None
) -> str:
    """Runs this venv's ``ray`` CLI in ``cwd``; returns stdout + stderr.

    Raises:
        RuntimeError: with the output's tail, when ``check`` and the command failed.
    """
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ray"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env) if env is not None else ray_env(),
        cwd=cwd,
    )
    if check and run.returncode != 0:
        raise RuntimeError(f"ray {' '.join(args)} failed ({run.returncode}):\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    return run.stdout + run.stderr


def submit_job(address: str, entrypoint: Sequence[str], cwd: str | Path) -> str:
    """``ray job submit --working-dir . --no-wait -- <entrypoint>`` from ``cwd``; returns the submission id."""
    text = ray_cli(
        "job", "submit", f"--address={address}", "--working-dir", ".", "--no-wait", "--", *entrypoint, cwd=cwd
    )
    for word in text.split():
        if word.strip("'").startswith("raysubmit_"):
            return word.strip("'")
    raise RuntimeError(f"no submission id in:\n{text[-2000:]}")


def job_status(address: str, job_id: str, cwd: str | Path) -> str:
    """``PENDING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``STOPPED`` (``UNKNOWN`` if none is named)."""
    text = ray_cli("job", "status", f"--address={address}", job_id, cwd=cwd, timeout=60).upper()
    for status in ("SUCCEEDED", "FAILED", "STOPPED", "RUNNING", "PENDING"):
        if status in text:
            return status
    return "UNKNOWN"
