"""Adaptive Monte-Carlo vs the seed's fixed 16 rollouts, replayed on Med-PRM's real step labels.

Every Med-PRM soft label is k/16 (16 rollouts per step), so each step's rollouts can be
replayed as a random order of k correct and 16-k incorrect outcomes. The same pure schedule
the annotator runs (``RolloutPlan``) then decides how many of them it would have sampled.
Every step of every solution goes to MC here (threshold 1.0), the costliest case.

Run:  python benchmarks/bench_mc_adaptive.py [--repeats 20] [--real]
      --real also runs MonteCarloAnnotator with SmolLM2 on two real questions and times the
      batched schedule against the seed's one-rollout-per-call loop on the same prefixes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from physio_ray.annotate.labels import reuse_closure  # noqa: E402
from physio_ray.annotate.rollouts import budget_soft_errors, simulate_adaptive  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "medprm-samples" / "medprm_samples_80.json"

POLICIES = [
    # name, batch, reuse, solution_rule, steps_in_flight
    ("stop at 1st correct, one at a time", 1, False, False, 1),
    ("stop at 1st correct, batches of 4", 4, False, False, 1),
    ("+ correct-solution rule, batch 1", 1, False, True, 1),
    ("+ correct-solution rule, batch 4", 4, False, True, 1),
    ("+ step reuse (last->first), batch 1", 1, True, True, 1),
    ("+ step reuse (last->first), batch 4", 4, True, True, 1),
    ("+ step reuse, batch 4, 2 steps in flight", 4, True, True, 2),
    ("+ step reuse, batch 8", 8, True, True, 1),
]


def replay(records: list[dict], batch: int, reuse: bool, solution_rule: bool, in_flight: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    used = agree = agree_closure = steps = rounds = 0
    for r in records:
        res = simulate_adaptive(
            r["prm_soft_label"],
            batch,
            16,
            reuse,
            rng,
            solution_correct=r["is_correct"],
            solution_rule=solution_rule,
            steps_in_flight=in_flight,
        )
        used += sum(res.rollouts)
        steps += len(res.hard)
        agree += sum(a == b for a, b in zip(res.hard, r["prm_hard_label"], strict=True))
        agree_closure += sum(a == b for a, b in zip(res.hard, reuse_closure(r["prm_hard_label"]), strict=True))
        rounds = max(rounds, res.rounds)
    return {
        "share": used / (16 * steps),
        "agree": agree / steps,
        "agree_closure": agree_closure / steps,
        "max_rounds": rounds,
    }


SHIPPED = "+ step reuse (last->first), batch 4"
"""The policy configs/annotate/*.yaml run (montecarlo.batch 4, reuse true): its share is the ratio."""


def simulation(records: list[dict], repeats: int) -> float:
    """Prints the policy table; returns the shipped policy's rollouts / (16 x steps)."""
    steps = sum(len(r["steps"]) for r in records)
    print(f"Med-PRM sample: {len(records)} solutions, {steps} steps, {16 * steps} recorded rollouts (16/step)")
    print(f"{'policy':<44}{'rollouts % of 16':>18}{'hard agree':>12}{'vs closure':>12}{'max rounds':>12}")
    shipped = float("nan")
    for name, batch, reuse, sol_rule, in_flight in POLICIES:
        runs = [replay(records, batch, reuse, sol_rule, in_flight, seed) for seed in range(repeats)]
        share = np.array([r["share"] for r in runs]) * 100
        agree = min(r["agree"] for r in runs) * 100
        closure = min(r["agree_closure"] for r in runs) * 100
        rounds = max(r["max_rounds"] for r in runs)
        print(f"{name:<44}{share.mean():>11.1f} ± {share.std():>3.1f}{agree:>11.2f}%{closure:>11.2f}%{rounds:>12}")
        if name == SHIPPED:
            shipped = float(share.mean()) / 100.0
    zeros = sum(s == 0 for r in records for s in r["prm_soft_label"])
    rescued = sum(
        a != b for r in records for a, b in zip(r["prm_hard_label"], reuse_closure(r["prm_hard_label"]), strict=True)
    )
    print(
        f"floor: {zeros} steps with 0/16 correct need the full 16 unless reuse rescues them ({rescued} do): "
        f">= {100 * 16 * (zeros - rescued) / (16 * steps):.1f}% for any exact-hard-label policy with reuse"
    )
    print("hard agree = vs the 16-rollout hard labels; vs closure = vs the labels the 16 rollouts imply once")
    print("a correct rollout from step k also counts for steps < k (the 5 differing steps are 0->1 quirks).")

    budgets = [1, 2, 4, 8, 16]
    errs: dict[int, list[float]] = {b: [] for b in budgets}
    for seed in range(repeats):
        rng = np.random.default_rng(1000 + seed)
        for r in records:
            for b, e in budget_soft_errors(r["prm_soft_label"], budgets, rng).items():
                errs[b] += e
    print("\nsoft-label MAE vs the 16-rollout estimate, fixed budget per step (all steps):")
    print("  " + "".join(f"{f'{b} rollouts':>14}" for b in budgets))
    print("  " + "".join(f"{np.mean(errs[b]):>14.4f}" for b in budgets))
    ad_err = []
    for seed in range(repeats):
        rng = np.random.default_rng(2000 + seed)
        for r in records:
            res = simulate_adaptive(r["prm_soft_label"], 4, 16, False, rng, solution_rule=False)
            ad_err += [abs(s - t) for s, t in zip(res.soft, r["prm_soft_label"], strict=True) if s is not None]
    print(f"  adaptive (batch 4, stop at 1st correct) soft estimate MAE: {np.mean(ad_err):.4f} (hard labels exact)")
    return shipped


def real_run() -> None:
    import re

    from physio_ray import schemas as S
    from physio_ray.annotate.config import MonteCarloConfig
    from physio_ray.annotate.montecarlo import MonteCarloAnnotator, rollout_prompt
    from physio_ray.llm.engine import EngineConfig, SamplingParams
    from physio_ray.llm.factory import build_engine

    records = [r for r in json.loads(DATA.read_text()) if r["sample_id"] in (1, 4)]
    t0 = time.perf_counter()
    engine = build_engine(EngineConfig(max_batch_size=16))
    print(f"\nSmolLM2-135M engine built once in {time.perf_counter() - t0:.1f}s")
    rows = []
    for r in records:
        n = len(r["steps"])
        rows.append(
            {
                S.SOLUTION_ID: f"medprm-{r['question_id']}",
                S.QUESTION: r["question"],
                S.OPTIONS: [re.sub(r"^\s*[A-H]\.\s*", "", o) for o in r["options"].split("\n")],
                S.ANSWER: r["correct_answer"],
                S.STEPS: r["steps"],
                S.IS_CORRECT: r["is_correct"],
                S.JUDGE_LABELS: r["prm_gemini_label"],
                S.JUDGE_CONFIDENCES: [0.9 if k < n - 3 else 0.3 for k in range(n)],
                S.ERROR: None,
            }
        )
    batch = {k: np.array([row[k] for row in rows] + [None], dtype=object)[:-1] for k in rows[0]}
    for mode, reuse in (("full", False), ("adaptive", True)):
        cfg = MonteCarloConfig(max_rollouts=4, batch=4, mode=mode, reuse=reuse, max_new_tokens=48, seed=0)
        ann = MonteCarloAnnotator(cfg, 0.7, engine=engine)
        t0 = time.perf_counter()
        out = ann(batch)
        dt = time.perf_counter() - t0
        print(f"annotator mode={mode} reuse={reuse}: {dt:.1f}s, {int(sum(out[S.COST_ROLLOUTS]))} rollouts")
        for sid, meth, used in zip(out[S.SOLUTION_ID], out[S.ANNOTATION_METHOD], out[S.MC_ROLLOUTS], strict=True):
            print(f"  {sid}: methods {meth} rollouts {used}")
        if mode == "full":
            full_dt, full_rollouts = dt, int(sum(out[S.COST_ROLLOUTS]))
    # the seed's loop: one prompt, one rollout per call, same prefixes and rollout count
    params = SamplingParams(n=1, temperature=1.0, max_new_tokens=48, seed=0)
    t0 = time.perf_counter()
    calls = 0
    for row in rows:
        for k in range(len(row[S.STEPS]) - 3, len(row[S.STEPS])):
            prompt = rollout_prompt(row[S.QUESTION], row[S.OPTIONS], row[S.STEPS][: k + 1])
            for _ in range(4):
                engine.generate([prompt], params)
                calls += 1
    seq_dt = time.perf_counter() - t0
    print(
        f"seed-style loop ({calls} calls x 1 rollout, {calls} rollouts): {seq_dt:.1f}s; "
        f"batched full mode ({full_rollouts} rollouts): {full_dt:.1f}s -> {seq_dt / full_dt:.1f}x faster"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="random rollout orders per policy")
    parser.add_argument("--real", action="store_true", help="also run the annotator with SmolLM2")
    args = parser.parse_args()
    records = json.loads(DATA.read_text())
    shipped = simulation(records, args.repeats)
    if args.real:
        real_run()
    print(f"shipped policy ({SHIPPED}): rollouts / (16 x MC steps) = {shipped:.3f} (goal <= 0.15, exact hard labels)")
    print(f"ratio: {shipped:.3f}")


if __name__ == "__main__":
    main()
