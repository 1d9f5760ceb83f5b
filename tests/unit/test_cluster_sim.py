"""The simulated cluster's config mirrors cluster.yaml (no Ray started)."""

from __future__ import annotations

from physio_ray.cluster import load_cluster
from physio_ray.cluster_sim import HEAD_TYPE, fake_cluster_config, node_type_of, render_timeline
from tests.conftest import REPO


def test_fake_cluster_has_cluster_yamls_node_types_from_zero_nodes() -> None:
    spec = load_cluster(REPO / "cluster.yaml")
    cfg = fake_cluster_config(spec, max_workers_per_type=2, idle_timeout_minutes=0.25)
    types = cfg["available_node_types"]
    assert set(types) == {HEAD_TYPE} | {n.name for n in spec.workers}
    assert types[HEAD_TYPE]["resources"] == {"CPU": 0}  # as cluster.yaml's head: no work there
    for n in spec.workers:
        logical = {k: v for k, v in types[n.name]["resources"].items() if k != "object_store_memory"}
        assert logical == n.resources and types[n.name]["min_workers"] == 0, n.name
        assert types[n.name]["max_workers"] == 2
    assert types["gpu_sampling"]["resources"]["accelerator_type:L4"] == 1
    assert cfg["provider"]["type"] == "fake_multinode" and cfg["idle_timeout_minutes"] == 0.25
    # a node is named by the logical resources it carries
    assert (
        node_type_of({"CPU": 16.0, "memory": 8e9, "object_store_memory": 2e8, "node:10.0.0.1": 1.0}, spec) == "cpu_pose"
    )
    assert node_type_of({"CPU": 96.0, "GPU": 8.0, "accelerator_type:A100": 8.0}, spec) == "gpu_training"
    assert node_type_of({"CPU": 0.0, "memory": 1e9}, spec) == "head"
    assert node_type_of({"CPU": 3.0}, spec) == "?"


def test_timeline_is_in_time_order() -> None:
    text = render_timeline(
        [{"t_s": 9.0, "event": "removed", "node_type": "cpu_pose", "node_id": "x00001"},
         {"t_s": 2.0, "event": "launched", "node_type": "cpu_pose", "node_id": "x00001"}],
        [[5.0, "poses stage writing"]],
    )  # fmt: skip
    assert [line.split()[1] for line in text.splitlines()[1:]] == ["+", "poses", "-"]
