"""Typed configuration of the quality report (``jobs/report_quality.py``).

The report reads the output folders of the other jobs; it trains and scores nothing.

Example:
    >>> cfg = ReportQualityConfig(sources=SourcesConfig(annotate_dir="/tmp/base_demo"))
    >>> cfg.sources.annotate_dir, cfg.bootstrap.samples
    ('/tmp/base_demo', 2000)
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BootstrapConfig", "ReportQualityConfig", "SourcesConfig"]


@dataclass(frozen=True)
class SourcesConfig:
    """The output folders the report reads (``null``: not run; its rows say so).

    Attributes:
        annotate_dir: ``jobs/annotate.py`` output (``summary.json``, ``annotated/``, ``keyframes/``).
        train_prm_dir: ``jobs/train_prm.py`` output (``metrics.json``).
        eval_bestofn_dir: ``jobs/eval_bestofn.py`` output (``bestofn.json``).
        spatial_dir: ``jobs/train_spatial.py`` output (``eval/metrics.json``).
        clinical_dir: ``jobs/train_clinical.py`` output (``report.json``).
        policy_dir: ``jobs/train_policy.py`` output (``policy_eval.json``).
    """

    annotate_dir: str | None = "outputs/annotate-local"
    train_prm_dir: str | None = "outputs/train_prm-local"
    eval_bestofn_dir: str | None = "outputs/eval_bestofn-local"
    spatial_dir: str | None = "outputs/train-spatial-local"
    clinical_dir: str | None = "outputs/train-clinical-local"
    policy_dir: str | None = "outputs/train-policy-local"


@dataclass(frozen=True)
class BootstrapConfig:
    """Resampling for the 95% intervals computed from per-item data.

    Attributes:
        samples: bootstrap resamples (>= 100).
        seed: the generator's seed (same seed, same intervals).
    """

    samples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 100:
            raise ValueError(f"bootstrap.samples={self.samples} must be >= 100 for a 95% interval")


@dataclass(frozen=True)
class ReportQualityConfig:
    """The quality report.

    Attributes:
        output_dir: where ``quality.json``, ``quality.md`` and ``quality.png`` go.
        sources: the job output folders to read.
        components: row builders to run, by name (``None``: every registered one, see
            :data:`physio_ray.quality.registry.ROW_BUILDERS`).
        bootstrap: resampling settings.
        plot: also write ``quality.png``.
    """

    output_dir: str = "outputs/report_quality-local"
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    components: list[str] | None = None
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    plot: bool = True

    def __post_init__(self) -> None:
        if not self.output_dir:
            raise ValueError("output_dir must be a folder, e.g. outputs/report_quality-local")
        if self.components is not None and not self.components:
            raise ValueError("components=[] runs nothing; use null for every registered builder")
