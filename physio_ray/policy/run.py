"""One policy run: evaluate the base model, train the adapter, evaluate again, write everything down.

:func:`run_policy_sft` is what a Ray Train worker calls (:mod:`physio_ray.policy.loop`); it needs
only torch, transformers and peft, so the same code also runs on a bare GPU machine.

Outputs in ``out_dir``:

* ``adapter/``: the LoRA adapter (PEFT format, float16), what ``engine.adapter`` loads;
* ``policy_eval.json``: held-out figures of the trained policy beside the untrained model and
  the constant baselines (:mod:`physio_ray.policy.evaluate`), the training history and settings;
* ``policy_loss.png``: the loss curve.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physio_ray.llm.config import SamplerConfig
from physio_ray.llm.engine import EngineConfig
from physio_ray.llm.sampler import SolutionSampler
from physio_ray.policy.data import sft_examples, subject_of
from physio_ray.policy.evaluate import constant_baselines, sample_correctness, summarise
from physio_ray.policy.train import PolicySFTSettings, fit_policy, save_adapter

logger = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
EVAL_FILE = "policy_eval.json"
LOSS_PLOT = "policy_loss.png"


@dataclass(frozen=True)
class PolicyEvalSettings:
    """How the held-out questions are sampled (the ``eval:`` block).

    Attributes:
        n: solutions per question (the annotation job's ``sampler.n``).
        temperature: sampling temperature (the annotation job's).
        max_new_tokens: budget per solution.
        max_questions: held-out questions evaluated (0: all), a seeded random sample.
        batch_size: prompts per forward pass.
        seed: sampling seed.
    """

    n: int = 4
    temperature: float = 0.8
    max_new_tokens: int = 96
    max_questions: int = 0
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_new_tokens < 16 or self.max_questions < 0 or self.batch_size < 1:
            raise ValueError(
                f"eval: n={self.n} >= 1, max_new_tokens={self.max_new_tokens} >= 16, "
                f"max_questions={self.max_questions} >= 0, batch_size={self.batch_size} >= 1"
            )


def _evaluate(
    model: Any,
    tok: Any,
    rows: Sequence[Mapping[str, Any]],
    s: PolicyEvalSettings,
    progress: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, list[bool]]]:
    from physio_ray.llm.hf_engine import HFEngine

    engine = HFEngine(EngineConfig(max_batch_size=s.batch_size), model=model, tokenizer=tok)
    cfg = SamplerConfig(n=s.n, temperature=s.temperature, max_new_tokens=s.max_new_tokens, seed=s.seed)
    started = time.perf_counter()

    def on_batch(done: int, total: int) -> None:
        progress(f"  sampled {done}/{total} questions ({time.perf_counter() - started:.0f} s)")

    sampler = SolutionSampler(cfg, engine=engine)
    correct = sample_correctness(sampler, rows, batch=max(1, s.batch_size // s.n), on_batch=on_batch)
    summary = summarise(correct, {str(r["question_id"]): str(r["template"]) for r in rows})
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary, correct


def plot_loss(history: Sequence[Mapping[str, float]], path: Path) -> None:
    """Writes the loss curve (per step and a 20-step running mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    steps = np.array([h["step"] for h in history])
    loss = np.array([h["loss"] for h in history])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, loss, lw=0.6, alpha=0.5, label="loss per step")
    if len(loss) >= 20:
        ax.plot(steps[19:], np.convolve(loss, np.ones(20) / 20, mode="valid"), lw=1.5, label="20-step mean")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("target-token cross-entropy")
    ax.set_title("policy SFT (reference solutions)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_policy_sft(
    train_rows: Sequence[Mapping[str, Any]],
    test_rows: Sequence[Mapping[str, Any]],
    sft: PolicySFTSettings,
    evaluation: PolicyEvalSettings,
    out_dir: str | Path,
    *,
    model_name: str = "smollm2-135m",
    rotations: int = 4,
    device: str | None = None,
    progress: Callable[[str], None] = logger.info,
) -> dict[str, Any]:
    """Trains the policy adapter on ``train_rows`` and measures it on ``test_rows``.

    Args:
        train_rows: question rows of the training subjects.
        test_rows: question rows of held-out subjects (every template, rep counts included).
        sft: training settings.
        evaluation: held-out sampling settings.
        out_dir: where the adapter, ``policy_eval.json`` and the plot go.
        model_name: the base model (``load_causal_lm`` name).
        rotations: option rotations per training question.
        device: ``cuda`` / ``cpu``; default: cuda when available.
        progress: receives one line per phase and every 20 steps.

    Returns:
        The content of ``policy_eval.json``.

    Raises:
        ValueError: when no training question has a reference solution, or a subject is in both sets.
    """
    import torch

    from physio_ray.llm.smollm2 import load_causal_lm

    train_subjects = {subject_of(str(r["video_id"])) for r in train_rows}
    overlap = train_subjects & {subject_of(str(r["video_id"])) for r in test_rows}
    if overlap:
        raise ValueError(f"subjects in both the training and the held-out questions: {sorted(overlap)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    examples = sft_examples(train_rows, rotations=rotations, seed=sft.seed)
    if not examples:
        raise ValueError(f"none of {len(train_rows)} training questions has a reference solution")
    test = list(test_rows)
    if evaluation.max_questions:
        ordered = sorted(test, key=lambda r: str(r["question_id"]))
        test = random.Random(evaluation.seed).sample(ordered, min(evaluation.max_questions, len(ordered)))
    progress(f"{len(examples)} examples from {len(train_rows)} training questions; {len(test)} held-out questions")

    model, tok = load_causal_lm(model_name, "float32", memo=False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.to(dev)
    progress("sampling the held-out questions with the untrained model")
    untrained, untrained_correct = _evaluate(model, tok, test, evaluation, progress)
    progress(f"untrained: accuracy {untrained['accuracy']}, mixed {untrained['mixed']}")

    def on_step(record: dict[str, float]) -> None:
        if int(record["step"]) % 20 == 0:
            progress(
                f"step {int(record['step'])}: loss {record['loss']:.3f}, lr {record['lr']:.2e}, {record['seconds']:.0f} s"
            )

    peft_model, history = fit_policy(model, tok, examples, sft, on_step)
    save_adapter(peft_model, out / ADAPTER_DIR, base_model=model_name)
    merged = peft_model.merge_and_unload()
    progress("sampling the held-out questions with the trained policy")
    trained, trained_correct = _evaluate(merged, tok, test, evaluation, progress)
    constants = constant_baselines(train_rows, test)
    hits = constants.pop("hits")
    per_question = {
        str(r["question_id"]): {
            "template": str(r["template"]),
            "trained": trained_correct.get(str(r["question_id"]), []),
            "untrained": untrained_correct.get(str(r["question_id"]), []),
            **hits[str(r["question_id"])],
        }
        for r in test
    }
    progress(f"trained: accuracy {trained['accuracy']}, mixed {trained['mixed']}")
    result = {
        "policy": trained,
        "baselines": {"untrained": untrained, **constants},
        "train": {
            "questions": len(train_rows),
            "examples": len(examples),
            "subjects": sorted(train_subjects),
            "steps": len(history),
            "final_loss_mean20": round(sum(h["loss"] for h in history[-20:]) / min(20, len(history)), 4),
            "seconds": round(history[-1]["seconds"], 1),
            "device": str(dev),
        },
        "held_out_subjects": sorted({subject_of(str(r["video_id"])) for r in test}),
        "settings": {"sft": dataclasses.asdict(sft), "eval": dataclasses.asdict(evaluation), "rotations": rotations},
        "per_question": per_question,
        "history": [{k: round(v, 5) for k, v in h.items()} for h in history],
    }
    (out / EVAL_FILE).write_text(json.dumps(result, indent=1))
    (out / ADAPTER_DIR / "README.md").write_text(adapter_card(result, model_name))
    plot_loss(history, out / LOSS_PLOT)
    return result


def adapter_card(result: Mapping[str, Any], model_name: str) -> str:
    """The adapter folder's README: what it was trained on and how it did on held-out people.

    It replaces PEFT's empty model-card template, so a copied adapter keeps its provenance.
    """
    train, sft = result["train"], result["settings"]["sft"]
    lines = [
        f"# Policy adapter for {model_name} (LoRA, PEFT format)",
        "",
        "Written by `jobs/train_policy.py` (physio_ray): supervised fine-tuning on reference solutions",
        "(`physio_ray/annotate/reference_solutions.py`) of UI-PRMD template questions, with the",
        "annotation sampler's own prompt. Load it with `engine.adapter=<this folder>` (`kind: hf`).",
        "",
        f"- trained on: {train['steps']} steps of {sft['batch_size']} "
        f"({min(train['examples'], train['steps'] * sft['batch_size'])} of {train['examples']} examples, from "
        f"{train['questions']} questions of {', '.join(train['subjects'])}), {train['seconds']:.0f} s on {train['device']}",
        f"- LoRA: r {sft['lora']['r']}, alpha {sft['lora']['alpha']}, modules {', '.join(sft['lora']['target_modules'])}, "
        f"blocks {sft['lora'].get('layers') or 'all'}; learning rate {sft['learning_rate']}",
        f"- held out (never trained on): {', '.join(result['held_out_subjects'])}",
        "",
        "| held-out solutions | accuracy | 95% CI | questions with a right and a wrong solution |",
        "|---|---|---|---|",
    ]
    for name, row in [("this adapter", result["policy"]), *result["baselines"].items()]:
        ci = row.get("accuracy_ci95") or [float("nan"), float("nan")]
        mixed = row.get("mixed")
        lines.append(
            f"| {name} | {row['accuracy']:.3f} | [{ci[0]:.3f}, {ci[1]:.3f}] | {'-' if mixed is None else f'{mixed:.2f}'} |"
        )
    return "\n".join(lines) + "\n"
