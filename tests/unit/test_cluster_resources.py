"""Every resource a cluster config asks for exists in some node type of cluster.yaml (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from physio_ray.annotate.config import AnnotateConfig
from physio_ray.cluster import ClusterResourceError, check_resources, load_cluster, parse_cluster, resource_requests
from physio_ray.config import load_config
from physio_ray.registry import config_class

REPO = Path(__file__).resolve().parents[2]
CLUSTER_CONFIGS = sorted((REPO / "configs").glob("*/cluster.yaml"))


def test_cluster_yaml_node_types() -> None:
    spec = load_cluster(REPO / "cluster.yaml")
    assert spec.head_node_type == "head"
    assert {n.name: n.resources for n in spec.workers} == {
        "cpu_pose": {"CPU": 16.0},
        "gpu_sampling": {"CPU": 8.0, "GPU": 1.0, "accelerator_type:L4": 1.0},
        "gpu_training": {"CPU": 96.0, "GPU": 8.0, "accelerator_type:A100": 8.0},
    }
    assert spec.max_workers == 48 and spec.idle_timeout_minutes == 10
    assert spec.node_type("gpu_sampling").slots({"CPU": 4, "GPU": 1}) == 1
    assert spec.node_type("cpu_pose").slots({"CPU": 1}) == 16


def test_annotate_cluster_config_fits_cluster_yaml() -> None:
    cfg = load_config(AnnotateConfig, [str(REPO / "configs/annotate/cluster.yaml")])
    requests = check_resources(cfg, REPO / "cluster.yaml")
    assert {r.where: r.bundle for r in requests} == {
        "pose.resources": {"CPU": 1.0},
        "keyframes.resources": {"CPU": 1.0},
        "questions.resources": {"CPU": 1.0},
        "sampler.resources": {"CPU": 4.0, "GPU": 1.0},
        "judge.resources": {"CPU": 1.0},
        "montecarlo.resources": {"CPU": 1.0},
    }


@pytest.mark.parametrize("path", CLUSTER_CONFIGS, ids=lambda p: p.parent.name)
def test_every_cluster_config_fits_cluster_yaml(path: Path) -> None:
    cfg = load_config(config_class(path.parent.name), [str(path)])
    check_resources(cfg, REPO / "cluster.yaml")


def test_training_scaling_blocks_are_requests() -> None:
    cfg = load_config(config_class("train_prm"), [str(REPO / "configs/train_prm/cluster.yaml")])
    [req] = [r for r in resource_requests(cfg) if r.where == "scaling"]
    assert req.bundle == {"CPU": 8.0, "GPU": 1.0} and req.count == 4


def test_gpu_on_a_cpu_only_cluster_is_refused_naming_resource_and_node_types() -> None:
    spec = parse_cluster(
        {
            "cluster_name": "cpu-only",
            "head_node_type": "head",
            "available_node_types": {"head": {"resources": {"CPU": 0}}, "cpu_pose": {"resources": {"CPU": 16}}},
        }
    )
    cfg = load_config(AnnotateConfig, [str(REPO / "configs/annotate/cluster.yaml")])
    with pytest.raises(ClusterResourceError) as err:
        check_resources(cfg, spec)
    [problem] = err.value.problems
    assert "sampler.resources asks for GPU: 1" in problem
    assert "head {CPU: 0}" in problem and "cpu_pose {CPU: 16}" in problem


def test_custom_resource_no_node_type_has_is_refused() -> None:
    cfg = load_config(
        config_class("train_prm"), [str(REPO / "configs/train_prm/cluster.yaml"), "scaling.resources={tpu_v4: 1}"]
    )
    with pytest.raises(ClusterResourceError) as err:
        check_resources(cfg, REPO / "cluster.yaml")
    text = str(err.value)
    assert "scaling asks for tpu_v4: 1" in text
    for node_type in ("head", "cpu_pose", "gpu_sampling", "gpu_training"):
        assert node_type in text


def test_bundle_larger_than_every_node_type_is_refused() -> None:
    cfg = load_config(
        AnnotateConfig, [str(REPO / "configs/annotate/cluster.yaml"), "sampler.resources.cpus_per_actor=128"]
    )
    with pytest.raises(
        ClusterResourceError,
        match=r"sampler.resources asks for \{CPU: 128, GPU: 1\} per actor, which no single node type holds",
    ):
        check_resources(cfg, REPO / "cluster.yaml")


RAY_JOBS = [p for p in CLUSTER_CONFIGS if "init_ray(cfg.ray)" in (REPO / "jobs" / f"{p.parent.name}.py").read_text()]


@pytest.mark.parametrize("path", RAY_JOBS, ids=lambda p: p.parent.name)
def test_cluster_configs_name_their_cluster_file(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every job that starts Ray checks its cluster config against cluster.yaml first."""
    from physio_ray.cluster import check_job_cluster

    assert len(RAY_JOBS) == 9
    cfg = load_config(config_class(path.parent.name), [str(path)])
    assert cfg.ray.cluster_file == "cluster.yaml"
    monkeypatch.chdir(REPO)  # `ray job submit --working-dir .` runs the job from the checkout root
    check_job_cluster(cfg)  # fits (sweep_guidance has no resources block: nothing to refuse)
    job = (REPO / "jobs" / f"{path.parent.name}.py").read_text()
    assert "check_cluster(cfg)" in job and job.index("check_cluster(cfg)") < job.index("init_ray(cfg.ray)")


def test_the_job_stops_before_ray_when_no_node_can_run_it(tmp_path: Path) -> None:
    """jobs/annotate.py with a sampler that needs 16 GPUs per actor: exit 2 naming it, no Ray started."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "jobs/annotate.py", "configs/annotate/cluster.yaml", "sampler.resources.gpus_per_actor=16",
         f"output_dir={tmp_path}/out"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr[-2000:]
    assert "sampler.resources asks for {CPU: 4, GPU: 16} per actor, which no single node type holds" in run.stderr
    assert "Started a local Ray instance" not in run.stderr + run.stdout
    missing = load_config(AnnotateConfig, [str(REPO / "configs/annotate/cluster.yaml"), "ray.cluster_file=nope.yaml"])
    from physio_ray.cluster import check_job_cluster

    with pytest.raises(FileNotFoundError, match="ray.cluster_file='nope.yaml' does not exist"):
        check_job_cluster(missing)


def test_a_local_ray_starts_its_dashboard_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray Train's placement-group cleaner polls the state API, which the dashboard serves: without it
    a local training job logged "Failed to query Ray Train Controller actor state" every second."""
    import ray

    from physio_ray.runtime import RayConfig, init_ray

    calls: list[dict] = []
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.setattr("ray.data.DataContext.get_current", lambda: type("Ctx", (), {})())
    init_ray(RayConfig(num_cpus=2))
    init_ray(RayConfig(num_cpus=2, dashboard=False))
    assert [c["include_dashboard"] for c in calls] == [None, False] and calls[0]["num_cpus"] == 2
