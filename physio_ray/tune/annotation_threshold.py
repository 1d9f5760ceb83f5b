"""The judge-confidence threshold of the hybrid annotation, chosen on labelled data.

Below the threshold a step goes to Monte-Carlo (expensive, close to the reference); above it
the judge's label is kept (cheap, less accurate). On steps that carry BOTH a judge verdict
(label, confidence) and a full-MC hard label, a threshold ``t`` yields:

* ``mc_cost_fraction``: share of steps sent to MC (confidence < t, or the judge abstained);
* ``agreement``: share of hybrid labels equal to the full-MC labels;
* ``objective = agreement - cost_weight * mc_cost_fraction``.

:func:`objective` and :func:`best_threshold` are pure; :func:`run_threshold_sweep` runs the
grid as a Ray Tune experiment (the sweep is the graph, so Ray is used here);
:func:`write_threshold_yaml` writes the winner back into a copy of a run config.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from physio_ray.annotate.config import JudgeConfig
from physio_ray.runtime import RayConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepAnnotationConfig:
    """What ``jobs/sweep_annotation.py`` sweeps and where it writes.

    Attributes:
        output_dir: gets ``sweep.json``, ``sweep.csv``, ``sweep.png`` and the tuned YAML.
        source: ``medprm``: Med-PRM's sample, whose steps all carry 16-rollout MC hard labels;
            ``annotated``: an annotate run's ``annotated/`` stage (only steps that went to MC
            count; run it with ``montecarlo.mode=full judge.confidence_threshold=1.0`` so every
            step gets full MC, otherwise the sample is biased to low-confidence steps).
        medprm_path: the Med-PRM flat-schema JSON.
        medprm_judge: whose verdicts to sweep on Med-PRM: ``local`` runs our judge
            (``judge``); ``gemini_proxy`` takes Med-PRM's Gemini labels with
            :func:`judge_confidence_proxy` as confidence (no model, seconds).
        limit: judge only the first ``limit`` Med-PRM solutions (``None``: all).
        annotated_dir: the annotate ``output_dir`` for ``source=annotated``.
        judge: judge settings for ``medprm_judge=local``.
        thresholds: the grid (one Tune trial each).
        cost_weight: agreement points one full share of MC is worth (see :func:`objective`).
        base_yaml: the annotate config the winner is written into (a copy).
        tuned_yaml: the copy's path (``None``: ``<output_dir>/annotate-tuned.yaml``).
        ray: how to start or join Ray.
    """

    output_dir: str = "outputs/sweep-annotation"
    source: Literal["medprm", "annotated"] = "medprm"
    medprm_path: str = "../shared/data/medprm-samples/medprm_samples_80.json"
    medprm_judge: Literal["local", "gemini_proxy"] = "local"
    limit: int | None = None
    annotated_dir: str | None = None
    judge: JudgeConfig = field(default_factory=lambda: JudgeConfig(backend="local", top_k=0))
    thresholds: list[float] = field(default_factory=lambda: [round(0.05 * k, 2) for k in range(21)])
    cost_weight: float = 0.1
    base_yaml: str = "configs/annotate/local.yaml"
    tuned_yaml: str | None = None
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        problems = []
        if not self.thresholds or any(not 0.0 <= t <= 1.0 for t in self.thresholds):
            problems.append(f"thresholds={self.thresholds} must be a non-empty list of values in [0, 1]")
        if self.cost_weight < 0:
            problems.append(f"cost_weight={self.cost_weight} must be >= 0")
        if self.source == "annotated" and not self.annotated_dir:
            problems.append("source=annotated needs annotated_dir (an annotate run's output_dir)")
        if self.limit is not None and self.limit < 1:
            problems.append(f"limit={self.limit} must be >= 1 or null")
        if problems:
            raise ValueError("; ".join(problems))


__all__ = [
    "StepRecord",
    "SweepAnnotationConfig",
    "best_threshold",
    "judge_confidence_proxy",
    "objective",
    "run_threshold_sweep",
    "steps_from_medprm",
    "write_threshold_yaml",
]


@dataclass(frozen=True)
class StepRecord:
    """One step with both annotations.

    Attributes:
        judge_label: 1, 0, or ``None`` (abstained).
        judge_confidence: in ``[0, 1]``.
        mc_label: full-MC hard label (the reference).
    """

    judge_label: int | None
    judge_confidence: float
    mc_label: int


def objective(t: float, rows: Sequence[StepRecord], cost_weight: float) -> dict[str, float]:
    """Scores threshold ``t`` on steps with both judge and full-MC labels.

    Args:
        t: confidence threshold.
        rows: the labelled steps.
        cost_weight: dollars-to-accuracy exchange rate: agreement points one full-MC share costs.

    Returns:
        ``{"threshold", "mc_cost_fraction", "agreement", "objective", "n_steps"}``.

    Raises:
        ValueError: when ``rows`` is empty.

    >>> rows = [StepRecord(1, 0.9, 1), StepRecord(0, 0.6, 1), StepRecord(1, 0.3, 0), StepRecord(None, 0.0, 0)]
    >>> objective(0.7, rows, 0.1)["agreement"], objective(0.7, rows, 0.1)["mc_cost_fraction"]
    (1.0, 0.75)
    """
    if not rows:
        raise ValueError("no labelled steps to score the threshold on")
    sent = agree = 0
    for r in rows:
        to_mc = r.judge_label is None or r.judge_confidence < t
        sent += to_mc
        label = r.mc_label if to_mc else int(r.judge_label)  # type: ignore[arg-type]
        agree += label == r.mc_label
    n = len(rows)
    frac, acc = sent / n, agree / n
    return {
        "threshold": float(t),
        "mc_cost_fraction": frac,
        "agreement": acc,
        "objective": acc - cost_weight * frac,
        "n_steps": n,
    }


def best_threshold(results: Sequence[Mapping[str, float]] | pd.DataFrame) -> dict[str, float]:
    """The result with the highest objective; ties go to lower MC cost, then lower threshold.

    Args:
        results: :func:`objective` outputs (or a table with those columns).

    Returns:
        The winning result as a dict.

    Raises:
        ValueError: when ``results`` is empty.
    """
    items = results.to_dict(orient="records") if isinstance(results, pd.DataFrame) else [dict(r) for r in results]
    if not items:
        raise ValueError("no sweep results to choose from")
    return min(items, key=lambda r: (-round(r["objective"], 12), r["mc_cost_fraction"], r["threshold"]))


def judge_confidence_proxy(gemini: int, llama: int, step_idx: int, n_steps: int) -> float:
    """A deterministic stand-in for judge confidence on Med-PRM records (which publish none).

    Two independent judges agreeing (Gemini and Llama labels) is read as confidence 0.9,
    disagreement as 0.55; both decay linearly by up to 0.1 towards the last step (later steps
    depend on more context and are harder to verify).

    >>> judge_confidence_proxy(1, 1, 0, 5), judge_confidence_proxy(1, 0, 4, 5)
    (0.9, 0.45)
    """
    base = 0.9 if int(gemini) == int(llama) else 0.55
    return round(base - 0.1 * step_idx / max(1, n_steps - 1), 6)


def steps_from_medprm(records: Sequence[Mapping[str, Any]]) -> tuple[list[StepRecord], int]:
    """Step records from Med-PRM samples: judge = ``prm_gemini_label``, MC = ``prm_hard_label``.

    Args:
        records: Med-PRM sample dicts (flat schema, see the data's SOURCE.txt).

    Returns:
        ``(steps, skipped)``: solutions whose label lists differ in length are skipped whole.
    """
    out: list[StepRecord] = []
    skipped = 0
    for rec in records:
        gem, llama, hard = rec["prm_gemini_label"], rec["prm_llama_label"], rec["prm_hard_label"]
        if not len(gem) == len(llama) == len(hard) == len(rec["steps"]):
            skipped += 1
            continue
        n = len(hard)
        out += [StepRecord(int(gem[k]), judge_confidence_proxy(gem[k], llama[k], k, n), int(hard[k])) for k in range(n)]
    return out, skipped


def _trainable(config: dict[str, Any], rows: Sequence[StepRecord] = (), cost_weight: float = 0.0) -> None:
    from ray import tune

    tune.report(objective(config["threshold"], rows, cost_weight))


def run_threshold_sweep(
    rows: Sequence[StepRecord],
    thresholds: Sequence[float],
    cost_weight: float,
    *,
    storage_path: str | None = None,
    name: str = "annotation_threshold",
) -> pd.DataFrame:
    """Grid-searches the threshold with Ray Tune (one trial per threshold).

    Ray must already be initialised (the job or test does it).

    Args:
        rows: labelled steps (put in the object store once via ``tune.with_parameters``).
        thresholds: candidate thresholds.
        cost_weight: see :func:`objective`.
        storage_path: where Tune keeps trial results (default: a temporary folder).
        name: experiment name.

    Returns:
        One row per threshold, sorted by threshold, with columns ``threshold``,
        ``mc_cost_fraction``, ``agreement``, ``objective``, ``n_steps``.

    Raises:
        RuntimeError: when a trial failed.
    """
    from ray import tune

    storage = storage_path or tempfile.mkdtemp(prefix="physio_ray_sweep_")
    tuner = tune.Tuner(
        tune.with_parameters(_trainable, rows=list(rows), cost_weight=float(cost_weight)),
        param_space={"threshold": tune.grid_search([float(t) for t in thresholds])},
        tune_config=tune.TuneConfig(metric="objective", mode="max"),
        run_config=tune.RunConfig(name=name, storage_path=str(Path(storage).resolve()), verbose=0),
    )
    grid = tuner.fit()
    if grid.errors:
        raise RuntimeError(f"{len(grid.errors)} threshold trials failed; first: {grid.errors[0]}")
    cols = ["threshold", "mc_cost_fraction", "agreement", "objective", "n_steps"]
    trials: list[dict[str, Any]] = []
    for i in range(len(grid)):
        metrics = grid[i].metrics
        if metrics is None:
            raise RuntimeError(f"threshold trial {i} reported no metrics")
        trials.append({c: metrics[c] for c in cols})
    table = pd.DataFrame(trials)
    return table.sort_values("threshold").reset_index(drop=True)


_FLOW = re.compile(r"(confidence_threshold\s*:\s*)([^,}\s]+)")


def _edit_text(text: str, threshold: float) -> str:
    """Sets ``judge.confidence_threshold`` in YAML text by line edits, keeping comments."""
    value = repr(float(threshold))
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        m = re.match(r"judge\s*:(.*)$", line.rstrip("\n"))
        if not m:
            continue
        rest = m.group(1)
        if rest.strip().startswith("{"):  # flow mapping on one line
            if _FLOW.search(rest):
                lines[i] = line[: line.index(":") + 1] + _FLOW.sub(lambda mm: mm.group(1) + value, rest, count=1)
                lines[i] += "" if lines[i].endswith("\n") else "\n"
            else:
                lines[i] = line.replace("{", "{" + f"confidence_threshold: {value}, ", 1)
            return "".join(lines)
        child_indent = None
        for j in range(i + 1, len(lines)):
            body = lines[j]
            if not body.strip() or body.lstrip().startswith("#"):
                continue
            indent = len(body) - len(body.lstrip(" "))
            if indent == 0:
                break
            child_indent = child_indent if child_indent is not None else indent
            km = re.match(r"(\s*confidence_threshold\s*:\s*)([^#\n]*?)(\s*(#.*)?)$", body.rstrip("\n"))
            if km and indent == child_indent:
                lines[j] = km.group(1) + value + km.group(3) + "\n"
                return "".join(lines)
        pad = " " * (child_indent or 2)
        lines.insert(i + 1, f"{pad}confidence_threshold: {value}\n")
        return "".join(lines)
    sep = "" if not text or text.endswith("\n") else "\n"
    return text + sep + f"judge:\n  confidence_threshold: {value}\n"


def write_threshold_yaml(path: str | Path, base_yaml: str | Path, threshold: float) -> Path:
    """Writes a copy of ``base_yaml`` with ``judge.confidence_threshold`` set to ``threshold``.

    The value is edited in place in the text, so comments and layout survive (block or
    one-line flow ``judge:`` mappings; the key is added when missing). The result is re-parsed
    and must equal the original with only that value changed; if a layout defeats the line
    edit, the file is instead re-serialised with ``yaml.safe_dump`` (comments are then lost,
    and a warning is logged).

    Args:
        path: destination YAML.
        base_yaml: the config to copy.
        threshold: the chosen threshold, in ``[0, 1]``.

    Returns:
        The destination path.

    Raises:
        ValueError: when ``threshold`` is outside ``[0, 1]``.
    """
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold={threshold} must be in [0, 1] (judge.confidence_threshold)")
    text = Path(base_yaml).read_text(encoding="utf-8")
    expected = yaml.safe_load(text) or {}
    expected.setdefault("judge", {})
    if expected["judge"] is None:
        expected["judge"] = {}
    expected["judge"]["confidence_threshold"] = float(threshold)
    new_text = _edit_text(text, threshold)
    try:
        ok = yaml.safe_load(new_text) == expected
    except yaml.YAMLError:
        ok = False
    if not ok:
        logger.warning("could not edit %s in place; writing it re-serialised (comments dropped)", base_yaml)
        new_text = yaml.safe_dump(expected, sort_keys=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new_text, encoding="utf-8")
    tmp.replace(path)
    return path
