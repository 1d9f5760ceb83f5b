"""Which config dataclass each job's YAML files are read into (``configs/<job>/*.yaml``).

Kept as import strings so looking up a job does not import heavy modules.
"""

from __future__ import annotations

import importlib
from typing import Any

JOB_CONFIGS: dict[str, str] = {
    "annotate": "physio_ray.annotate.config:AnnotateConfig",
    "build_spatial_dataset": "physio_ray.spatial.config:BuildSpatialDatasetConfig",
    "sweep_annotation": "physio_ray.tune.annotation_threshold:SweepAnnotationConfig",
    "train_prm": "physio_ray.prm.config:TrainPRMConfig",
    "eval_bestofn": "physio_ray.prm.eval_config:EvalBestOfNConfig",
    "train_guidance": "physio_ray.guidance.config:TrainGuidanceConfig",
    "sweep_guidance": "physio_ray.guidance.config:SweepGuidanceConfig",
    "sweep_guidance_views": "physio_ray.guidance.config:SweepGuidanceViewsConfig",
    "train_spatial": "physio_ray.spatial.config:TrainSpatialConfig",
    "train_clinical": "physio_ray.clinical.config:TrainClinicalConfig",
    "report_quality": "physio_ray.quality.config:ReportQualityConfig",
    "plan_annotation": "physio_ray.annotate.plan_config:PlanAnnotationConfig",
    "train_policy": "physio_ray.policy.config:TrainPolicyConfig",
}


def config_class(job: str) -> type[Any]:
    """Returns the config dataclass of ``job``.

    Raises:
        KeyError: naming the known jobs when ``job`` has no registered config.
    """
    if job not in JOB_CONFIGS:
        raise KeyError(f"no config class registered for job {job!r}; known jobs: {sorted(JOB_CONFIGS)}")
    module, _, name = JOB_CONFIGS[job].partition(":")
    return getattr(importlib.import_module(module), name)
