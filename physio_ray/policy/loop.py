"""The policy run on Ray Train: one worker runs :func:`~physio_ray.policy.run.run_policy_sft`.

The worker reads the question rows, trains and evaluates, and reports the result folder
(adapter, ``policy_eval.json``, plot) as its checkpoint; the driver copies it into
``output_dir``, so the job works the same when the worker is on another node.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from physio_ray.policy.config import TrainPolicyConfig
from physio_ray.policy.run import ADAPTER_DIR, EVAL_FILE, PolicyEvalSettings, run_policy_sft
from physio_ray.policy.train import PolicySFTSettings
from physio_ray.train_runtime import LoraSettings, ScalingSettings, apply_torch_threads, build_torch_trainer

logger = logging.getLogger(__name__)


def question_files(questions_dir: str) -> list[Path]:
    """The Parquet files of a question-stage output.

    Raises:
        FileNotFoundError: naming the folder and the command that writes it, when it holds no Parquet.
    """
    files = sorted(Path(questions_dir).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(
            f"no question Parquet in {questions_dir!r}; write it with "
            "`python jobs/annotate.py configs/annotate/policy_questions.yaml`"
        )
    return files


def load_question_rows(questions_dir: str) -> list[dict[str, Any]]:
    """The question rows of a question-stage output (every Parquet file under the folder).

    Raises:
        FileNotFoundError: see :func:`question_files`.
    """
    import pandas as pd

    files = question_files(questions_dir)
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return [{k: (list(v) if k == "options" else v) for k, v in row.items()} for row in frame.to_dict("records")]


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train worker: trains and evaluates the policy, reports the folder as a checkpoint."""
    import ray.train

    from physio_ray.policy.data import split_by_subject

    apply_torch_threads(ScalingSettings(**config["scaling"]))
    sft_cfg = dict(config["sft"])
    lora = LoraSettings(**sft_cfg.pop("lora"))
    sft = PolicySFTSettings(**sft_cfg, lora=lora)
    evaluation = PolicyEvalSettings(**config["eval"])
    train, test = split_by_subject(load_question_rows(config["questions_dir"]), config["held_out_subjects"])
    if not test:
        raise ValueError(
            f"no question of the held-out subjects {config['held_out_subjects']} in {config['questions_dir']}"
        )
    with tempfile.TemporaryDirectory(prefix="policy-") as tmp:
        result = run_policy_sft(
            train, test, sft, evaluation, tmp, model_name=config["model"], rotations=config["rotations"], progress=print
        )
        metrics = {
            "accuracy": result["policy"]["accuracy"],
            "mixed": result["policy"]["mixed"],
            "untrained_accuracy": result["baselines"]["untrained"]["accuracy"],
        }
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def run_train_policy(cfg: TrainPolicyConfig) -> dict[str, Any]:
    """Runs the policy job on Ray Train and copies its result into ``cfg.output_dir``.

    Returns:
        The content of ``policy_eval.json`` plus ``"output_dir"``.

    Raises:
        FileNotFoundError: when ``questions_dir`` holds no question Parquet.
        RuntimeError: when the run ends without a checkpoint.
    """
    question_files(cfg.questions_dir)  # fail before Ray Train starts when the data is missing
    loop_config = {
        "questions_dir": str(Path(cfg.questions_dir).resolve()),
        "held_out_subjects": list(cfg.held_out_subjects),
        "model": cfg.model,
        "rotations": cfg.rotations,
        "sft": dataclasses.asdict(cfg.sft),
        "eval": dataclasses.asdict(cfg.eval),
        "scaling": dataclasses.asdict(cfg.scaling),
    }
    trainer = build_torch_trainer(train_loop_per_worker, loop_config, cfg.scaling, cfg.run, output_dir=cfg.output_dir)
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"the policy run ended without a checkpoint: {result.error}")
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with result.checkpoint.as_directory() as folder:
        if (out / ADAPTER_DIR).exists():
            shutil.rmtree(out / ADAPTER_DIR)
        shutil.copytree(folder, out, dirs_exist_ok=True)
    summary = json.loads((out / EVAL_FILE).read_text())
    summary["output_dir"] = str(out)
    return summary


def render_policy_eval(summary: dict[str, Any]) -> str:
    """A short table of the held-out figures beside the baselines."""
    pol, base = summary["policy"], summary["baselines"]
    lines = [
        f"held-out subjects {', '.join(summary['held_out_subjects'])}: {pol['n_questions']} questions, {pol['n_solutions']} solutions",
        f"{'':24s} {'accuracy':>9s} {'95% CI':>16s} {'mixed':>7s}",
    ]
    for name, row in (("trained policy", pol), ("untrained model", base["untrained"])):
        ci = row["accuracy_ci95"]
        lines.append(f"{name:24s} {row['accuracy']:9.3f} [{ci[0]:.3f}, {ci[1]:.3f}] {row['mixed']:7.3f}")
    for name in ("majority_letter", "template_prior"):
        row = base[name]
        ci = row["accuracy_ci95"]
        lines.append(f"{name:24s} {row['accuracy']:9.3f} [{ci[0]:.3f}, {ci[1]:.3f}] {'-':>7s}")
    lines.append("per template (trained / untrained accuracy):")
    for t, row in pol["per_template"].items():
        other = base["untrained"]["per_template"].get(t, {})
        lines.append(f"  {t:16s} n={row['n']:3d}  {row['accuracy']:.3f} / {other.get('accuracy', float('nan')):.3f}")
    train = summary["train"]
    lines.append(
        f"trained {train['steps']} steps on {train['examples']} examples in {train['seconds']} s ({train['device']})"
    )
    return "\n".join(lines)
