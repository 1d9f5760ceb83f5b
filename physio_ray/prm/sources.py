"""Assembling the PRM's examples from every configured source, then splitting them.

Sources: Med-PRM JSON files (:func:`physio_ray.prm.medprm.load_medprm_with_report`) and,
optionally, an annotation run's ``annotated/`` Parquet with keyframe features from its
``keyframes/`` stage as vision input. A missing annotation run is not an error: the PRM then
trains on Med-PRM only (logged). The split is by group (video, else question), so no
question's solutions land in two splits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physio_ray.prm.annotated import load_annotated
from physio_ray.prm.config import PRMDataConfig
from physio_ray.prm.data import LoadReport, PRMExample, split_examples
from physio_ray.prm.medprm import load_medprm_with_report

logger = logging.getLogger(__name__)


@dataclass
class PRMDataset:
    """Examples split by group, with per-source load reports.

    Attributes:
        train: training examples.
        val: validation examples.
        test: held-out examples (step AUC is reported on these).
        reports: source name -> what its loader kept, skipped and repaired.
    """

    train: list[PRMExample]
    val: list[PRMExample]
    test: list[PRMExample]
    reports: dict[str, LoadReport] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Counts per split and per source (JSON-friendly)."""

        def steps(part: list[PRMExample]) -> int:
            return sum(sum(v is not None for v in ex.labels) for ex in part)

        return {
            "examples": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "labelled_steps": {"train": steps(self.train), "val": steps(self.val), "test": steps(self.test)},
            "with_vision": sum(ex.vision is not None for ex in self.train + self.val + self.test),
            "sources": {
                name: {
                    "records": r.records,
                    "examples": r.examples,
                    "skipped": dict(r.skipped),
                    "length_mismatch": r.length_mismatch,
                    "zero_then_one": r.zero_then_one,
                    "zeroed_steps": r.zeroed_steps,
                    "unlabelled_steps": r.unlabelled_steps,
                }
                for name, r in self.reports.items()
            },
        }


def annotated_paths(annotated_dir: str | None) -> tuple[str | None, str | None]:
    """``(annotated Parquet dir, keyframes Parquet dir)`` of an annotation run, where they exist.

    >>> annotated_paths(None)
    (None, None)
    """
    if not annotated_dir:
        return None, None
    root = Path(annotated_dir)
    ann = root / "annotated" if (root / "annotated").is_dir() else None
    if ann is None and root.is_dir() and any(root.glob("*.parquet")) and root.name == "annotated":
        ann, root = root, root.parent
    kf = root / "keyframes"
    has_parquet = ann is not None and any(ann.glob("*.parquet"))
    if not has_parquet:
        return None, None
    return str(ann), str(kf) if kf.is_dir() and any(kf.glob("*.parquet")) else None


def load_examples(cfg: PRMDataConfig) -> tuple[list[PRMExample], dict[str, LoadReport]]:
    """Loads every configured source.

    Args:
        cfg: data settings.

    Returns:
        ``(examples, reports)``: examples from all sources in order; one report per source.

    Raises:
        FileNotFoundError: when a Med-PRM file is missing.
        ValueError: when no source yields any example.
    """
    examples: list[PRMExample] = []
    reports: dict[str, LoadReport] = {}
    for path in cfg.medprm:
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"Med-PRM file {path!r} does not exist (data.medprm); paths are relative to the cwd"
            )
        exs, report = load_medprm_with_report(path, cfg.labels)
        logger.info("Med-PRM %s: %s", path, report.summary())
        reports[f"medprm:{Path(path).name}"] = report
        examples.extend(exs)
    ann, keyframes = annotated_paths(cfg.annotated_dir)
    if cfg.annotated_dir and ann is None:
        logger.warning("no annotated Parquet under %s; training on Med-PRM only", cfg.annotated_dir)
    if ann is not None:
        exs, report = load_annotated(ann, cfg.labels, keyframes)
        reports["annotated"] = report
        examples.extend(exs)
    if cfg.limit is not None:
        examples = examples[: cfg.limit]
    if not examples:
        raise ValueError("no usable PRM examples in any source (see the warnings above)")
    return examples, reports


def load_dataset(cfg: PRMDataConfig) -> PRMDataset:
    """Loads every source and splits by group (no leakage)."""
    examples, reports = load_examples(cfg)
    train, val, test = split_examples(examples, cfg.split)
    if not train:
        raise ValueError(f"the split left no training examples out of {len(examples)}; lower the split fractions")
    ds = PRMDataset(train, val, test, reports)
    logger.info("PRM data: %s", ds.summary()["examples"])
    return ds
