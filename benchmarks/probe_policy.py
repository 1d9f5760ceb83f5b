"""Does the local policy read the question at all? A probe of SmolLM2's answer letter.

Issue 12 asks for a policy that answers well above chance. Before tuning prompts, this probe
asks what the answer letter depends on. For every question of an annotation run it builds the
sampler's real prompt (:func:`physio_ray.llm.sampler.solution_prompt`) with the options rotated
four ways (each option appears once at each letter) and the worked example rotated four ways
(its answer letter A..D), and reads the model's distribution over A-D right after
``"Answer:"`` (:func:`physio_ray.llm.choice.letter_probabilities`). Averaged over the grid:

* **position prior**: the mean probability of each letter, whatever it holds (0.25 each
  for a model without a letter preference);
* **example copy**: the mean probability of the worked example's answer letter (0.25 when
  the example's letter does not matter);
* **content**: the mean probability of the letter holding the right option, averaged over
  the option rotations, so position and example cancel (0.25 = no signal), with a 95%
  bootstrap interval over questions, overall and per question template.

Run (after ``make demo`` or any ``jobs/annotate.py`` run):
    python benchmarks/probe_policy.py [outputs/annotate-local] [--quick]
``--quick`` keeps the example's rotation fixed (4 prompts per question instead of 16; the
example-copy figure is then not measured). SmolLM2-135M on 2 cores: ~3 s per prompt of ~700 tokens.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LETTERS = ("A", "B", "C", "D")


def _example_letter(question: str, sample: int) -> str:
    from physio_ray.llm.steps import worked_example

    return worked_example((sum(map(ord, question)) + sample) % 4).splitlines()[-1].split()[-1]


def _interval(values: np.ndarray) -> tuple[float, float]:
    """95% percentile interval of the mean over resampled items (the project's bootstrap)."""
    from physio_ray.stats import bootstrap, percentile_interval

    found = percentile_interval(bootstrap(lambda i: [values[i].mean()], len(values))[:, 0])
    return found if found is not None else (float("nan"), float("nan"))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", default="outputs/annotate-local", help="an annotation output_dir")
    parser.add_argument("--quick", action="store_true", help="one example rotation per question (4 prompts each)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args(argv)

    import pandas as pd
    import torch

    from physio_ray.llm.choice import letter_probabilities
    from physio_ray.llm.engine import EngineConfig
    from physio_ray.llm.hf_engine import HFEngine
    from physio_ray.llm.sampler import solution_prompt

    folder = Path(args.run) / "questions"
    if not folder.is_dir():
        raise SystemExit(f"no questions stage in {args.run}: run `make demo` or jobs/annotate.py first")
    questions = pd.read_parquet(folder)
    questions = questions[questions["error"].isna()] if "error" in questions.columns else questions
    if questions.empty:
        raise SystemExit(f"{folder} holds no usable question")
    torch.set_num_threads(args.threads)
    engine = HFEngine(EngineConfig(max_batch_size=4))
    samples = (0,) if args.quick else (0, 1, 2, 3)

    prior = np.zeros(4)
    copy: list[float] = []
    content: dict[str, list[float]] = defaultdict(list)
    rows = []
    started = time.perf_counter()
    for n, q in enumerate(questions.itertuples(), 1):
        options, right = [str(o) for o in q.options], LETTERS.index(str(q.answer))
        prompts, meta = [], []
        for shift in range(4):  # shown letter j holds canonical option (j + shift) % 4
            order = [(j + shift) % 4 for j in range(4)]
            for sample in samples:
                prompts.append(solution_prompt(q.question, [options[o] for o in order], q.features, sample))
                meta.append((order, sample))
        probs = np.array(letter_probabilities(engine, prompts, ["Answer:"] * len(prompts), LETTERS))
        on_right = []
        for (order, sample), p in zip(meta, probs, strict=True):
            prior += p
            on_right.append(p[order.index(right)])
            if not args.quick:
                copy.append(p[LETTERS.index(_example_letter(q.question, sample))])
        value = float(np.mean(on_right))
        content[str(q.template)].append(value)
        content["all"].append(value)
        rows.append({"question_id": q.question_id, "template": q.template, "p_right": round(value, 4)})
        print(f"  [{n}/{len(questions)}] {q.question_id}: p(right option) {value:.3f}", flush=True)
    prior /= prior.sum()

    print(
        f"\nSmolLM2-135M, {len(questions)} questions, {len(prompts)} prompts each, {time.perf_counter() - started:.0f} s"
    )
    print(
        "position prior (mean p per letter): " + "  ".join(f"{x} {v:.3f}" for x, v in zip(LETTERS, prior, strict=True))
    )
    report: dict[str, Any] = {
        "questions": len(questions),
        "position_prior": dict(zip(LETTERS, prior.tolist(), strict=True)),
        "content": {},
    }
    if copy:
        c = np.array(copy)
        lo, hi = _interval(c)
        print(f"example copy: p(the worked example's letter) {c.mean():.3f} [{lo:.3f}, {hi:.3f}] vs 0.25")
        report["example_copy"] = {"value": float(c.mean()), "ci95": [lo, hi], "n_prompts": len(c)}
    for name, values in sorted(content.items(), key=lambda kv: kv[0] != "all"):
        v = np.array(values)
        lo, hi = _interval(v)
        print(f"content ({name}, n={len(v)} questions): p(right option) {v.mean():.3f} [{lo:.3f}, {hi:.3f}] vs 0.25")
        report["content"][name] = {"value": float(v.mean()), "ci95": [lo, hi], "n": len(v)}
    report["questions_detail"] = rows
    out = Path("outputs/probe_policy.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
