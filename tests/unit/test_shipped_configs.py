"""Every YAML shipped under configs/ (and cluster.yaml) is loaded and validated."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from physio_ray.config import load_config
from physio_ray.registry import config_class

REPO = Path(__file__).resolve().parents[2]
JOB_YAMLS = sorted(p for p in (REPO / "configs").glob("*/*.yaml") if p.parent.name != "serve")


def test_there_are_configs() -> None:
    assert len(JOB_YAMLS) >= 3


@pytest.mark.parametrize("path", JOB_YAMLS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_job_config_loads(path: Path) -> None:
    cfg = load_config(config_class(path.parent.name), [str(path)])
    assert cfg is not None
    header = path.read_text().splitlines()[:6]
    assert any(f"jobs/{path.parent.name}.py" in line for line in header), "header comment must give the launch command"


def test_cluster_yaml_is_a_complete_launcher_file() -> None:
    spec = yaml.safe_load((REPO / "cluster.yaml").read_text())
    for key in ("cluster_name", "max_workers", "provider", "available_node_types", "head_node_type", "setup_commands"):
        assert key in spec, key
    assert spec["provider"]["type"] in {"aws", "gcp"}
    nodes = spec["available_node_types"]
    assert spec["head_node_type"] in nodes
    workers = {k: v for k, v in nodes.items() if k != spec["head_node_type"]}
    cpu = [v for v in workers.values() if not v["resources"].get("GPU")]
    gpu = [v for v in workers.values() if v["resources"].get("GPU")]
    assert cpu and len(gpu) >= 2, "a CPU group for pose and GPU groups for sampling and training"
    for group in workers.values():
        assert 0 <= group["min_workers"] <= group["max_workers"]
    assert any("pip install" in c and "-e" in c for c in spec["setup_commands"]), "setup installs this project"
