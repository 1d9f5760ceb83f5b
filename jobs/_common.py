"""Shared boilerplate of the thin job entry points (argument parsing, logging, exit codes)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python jobs/x.py` from a checkout without an install
    sys.path.insert(0, str(REPO))

from physio_ray.config import ConfigError, load_config  # noqa: E402

T = TypeVar("T")


def parse(cls: type[T], argv: list[str], description: str, epilog: str = "") -> T:
    """Parses ``CONFIG.yaml [key=value ...]`` into ``cls``; exits 2 with every problem listed."""
    parser = argparse.ArgumentParser(
        description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", help="YAML config, e.g. configs/<job>/local.yaml")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. output_dir=outputs/x")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return load_config(cls, [args.config, *args.overrides])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def fail(message: str, code: int = 1) -> Any:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def check_cluster(cfg: Any) -> None:
    """Exits 2 with every problem when ``ray.cluster_file`` names a cluster that cannot run ``cfg``."""
    from physio_ray.cluster import ClusterResourceError, check_job_cluster

    try:
        check_job_cluster(cfg)
    except (ClusterResourceError, FileNotFoundError) as exc:
        fail(str(exc), 2)


def check_resume(cfg: Any, only: str | None = None) -> None:
    """Exits 1 when ``output_dir`` holds stage rows made with other settings (before Ray starts)."""
    from physio_ray.annotate.pipeline import StageSettingsChanged, check_resume_settings, select_stages

    try:
        check_resume_settings(cfg, select_stages(cfg, only))
    except StageSettingsChanged as exc:
        fail(str(exc))


def fail_if_nothing_usable(summary: dict[str, Any]) -> None:
    """Exits 1 when every source failed: a run that labelled nothing is a failed run (e.g. data
    paths that do not exist where a submitted job runs).

    Counted over the stage's whole output, not the rows processed now: a resumed folder keeps
    the error rows of an earlier listing (a subject that does not exist), and those alone must
    not fail a run whose other sources worked.
    """
    first = next((s for s in summary.get("stages_run", []) if s["name"] == "sources"), None)
    if first and first["output_rows"] > 0 and first["errors"] == first["output_rows"]:
        fail(f"every one of {first['output_rows']} sources failed, e.g. {first['first_errors'][0]}")


def stage_main(stage: str, argv: list[str], description: str) -> None:
    """Runs ONE annotation stage with an annotate config (its upstream must be finished).

    The per-stage jobs exist so a cluster run can redo one stage (say, the judge with a new
    backend) without touching the others: ``run_annotation(cfg, only=stage)``.
    """
    from physio_ray.annotate.config import AnnotateConfig
    from physio_ray.annotate.pipeline import UpstreamNotFinished, run_annotation, select_stages
    from physio_ray.annotate.stages import stage as stage_row
    from physio_ray.annotate.summary import render_summary
    from physio_ray.runtime import init_ray

    epilog = f"example:\n  python jobs/{stage_row(stage).job}.py configs/annotate/local.yaml output_dir=outputs/annotate-local\n"
    cfg = parse(AnnotateConfig, argv, description, epilog)
    try:
        select_stages(cfg, only=stage)  # fail before starting Ray
    except UpstreamNotFinished as exc:
        fail(str(exc))
    check_resume(cfg, only=stage)
    check_cluster(cfg)
    init_ray(cfg.ray)
    summary = run_annotation(cfg, only=stage)
    print(render_summary(summary))
    fail_if_nothing_usable(summary)
