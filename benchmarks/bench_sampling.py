"""Batched HF sampling vs a one-at-a-time loop: same prompts, same token budget (issue 3 goal: >= 6x).

Both sides run the embedded SmolLM2-135M-Instruct through :class:`physio_ray.llm.hf_engine.HFEngine`
on real solution prompts (physio MCQs with measured squat features, as the sampler builds them):

* **batched**: ONE ``generate`` call, ``n`` completions per prompt, all prompts padded into forward
  passes of ``max_batch_size`` prompts (what :class:`~physio_ray.llm.sampler.SolutionSampler` does);
* **loop**: the seed's way, one prompt and one completion per call (``prompts * n`` calls).

By default EOS is suppressed until ``max_new_tokens`` (``min_new_tokens = max_new_tokens``), so both
sides generate exactly the same number of tokens and tokens/s compares equal work; with
``--allow-eos`` each side stops at EOS and tokens/s counts useful tokens only (the batched side
then also pays for rows that finished early). Ratios are printed, never asserted.

The default asks each prompt for ``n`` completions (what the sampler does when a question's ``n``
prompts are equal: Med-PRM); ``--per-sample-prompts`` sends ``n`` prompts of one completion each
(physio questions: each sample's worked example answers with another letter), where only the
instructions before the worked example are shared.

Run:  python benchmarks/bench_sampling.py [--prompts 4 --n 4 --max-new-tokens 48 --repeats 1 --threads 2]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from physio_ray.llm.engine import EngineConfig, SamplingParams
from physio_ray.llm.hf_engine import HFEngine
from physio_ray.llm.sampler import solution_prompt

FEATURES = json.dumps(
    {
        "exercise": "squat",
        "reps": 2,
        "knee_flexion": {"min": 71.4, "max": 172.0},
        "hip_flexion": {"min": 62.0},
        "trunk_lean": {"max": 38.2},
        "knee_valgus": {"max": 9.5},
    }
)
QUESTIONS = [
    (
        "At the bottom of each squat, how deep does the knee bend?",
        ["About 170 degrees", "About 70 degrees", "About 120 degrees", "0 degrees"],
    ),
    (
        "Which compensation is most visible in this squat?",
        ["Forward trunk lean", "Shoulder shrug", "Elbow flexion", "Neck rotation"],
    ),
    ("How many complete repetitions were performed?", ["1", "2", "3", "4"]),
    (
        "Which cue would a physiotherapist give first?",
        ["Keep the chest up", "Lock the elbows", "Look at the ceiling", "Point the toes inward"],
    ),
    ("Is the hip flexion adequate for a deep squat?", ["Yes", "No, too little", "No, too much", "Cannot tell"]),
    (
        "What does a knee valgus of about 10 degrees suggest?",
        ["Weak hip abductors", "Strong quadriceps", "Tight biceps", "Normal pattern only"],
    ),
    ("Which joint limits the depth of this squat most likely?", ["Ankle", "Wrist", "Elbow", "Neck"]),
    ("What is the main risk of the observed trunk lean?", ["Lumbar load", "Wrist strain", "Neck pain", "None"]),
]


def _run(engine: HFEngine, prompts: list[str], params: SamplingParams, batched: bool) -> tuple[int, float, int]:
    """Returns (tokens generated, seconds, engine calls)."""
    started = time.perf_counter()
    if batched:
        gens = engine.generate(prompts, params)
        calls = 1
    else:
        gens = []
        for i, prompt in enumerate(prompts):
            for k in range(params.n):
                one = SamplingParams(
                    n=1,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    max_new_tokens=params.max_new_tokens,
                    seed=(params.seed or 0) + 100 * i + k,
                    prefix=params.prefix,
                )
                gens.extend(engine.generate([prompt], one))
        calls = len(gens)
    seconds = time.perf_counter() - started
    errors = [g.error for g in gens if g.error]
    if errors:
        raise RuntimeError(f"generation failed: {errors[0]}")
    return sum(g.tokens_out for g in gens), seconds, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=4, help=f"distinct questions (max {len(QUESTIONS)})")
    parser.add_argument("--n", type=int, default=4, help="completions per prompt (the seed samples 4)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--max-batch-size", type=int, default=16, help="prompts per forward pass (batched side)")
    parser.add_argument("--repeats", type=int, default=1, help="alternate the two sides this many times; best kept")
    parser.add_argument("--allow-eos", action="store_true", help="stop at EOS (compare useful tokens/s)")
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch intra-op threads, both sides (2: what the sampler actor of configs/annotate/local.yaml "
        "gets from its cpus_per_actor; on a box where another process holds a core, use 1)",
    )
    parser.add_argument(
        "--per-sample-prompts",
        action="store_true",
        help="as the sampler asks physio questions: each of the n samples has its own prompt (the worked "
        "example's letter rotates), so n prompts x 1 completion each instead of 1 prompt x n",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.per_sample_prompts:
        prompts = [
            solution_prompt(q, opts, FEATURES, sample=k) for q, opts in QUESTIONS[: args.prompts] for k in range(args.n)
        ]
        args.n = 1
    else:
        prompts = [solution_prompt(q, opts, FEATURES) for q, opts in QUESTIONS[: args.prompts]]
    engine = HFEngine(EngineConfig(max_batch_size=args.max_batch_size))
    engine.generate(prompts[:1], SamplingParams(n=1, max_new_tokens=2))  # warm-up
    if not args.allow_eos:
        engine.model.generation_config.min_new_tokens = args.max_new_tokens  # equal work on both sides
    params = SamplingParams(
        n=args.n, temperature=0.8, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=0, prefix="Step 1:"
    )
    best: dict[str, tuple[int, float, int]] = {}
    for _ in range(args.repeats):
        for name, batched in (("batched", True), ("loop", False)):
            tokens, seconds, calls = _run(engine, prompts, params, batched)
            if name not in best or tokens / seconds > best[name][0] / best[name][1]:
                best[name] = (tokens, seconds, calls)
    rate = {k: v[0] / v[1] for k, v in best.items()}
    print(
        f"SmolLM2-135M on {engine.device} ({torch.get_num_threads()} threads), {len(prompts)} prompts x n={args.n}, "
        f"max_new_tokens={args.max_new_tokens}, max_batch_size={args.max_batch_size}, "
        f"{'EOS allowed' if args.allow_eos else 'EOS suppressed (equal tokens)'}"
    )
    print(f"{'':8} {'calls':>6} {'tokens':>7} {'seconds':>8} {'tokens/s':>9}")
    for name in ("batched", "loop"):
        tokens, seconds, calls = best[name]
        print(f"{name:8} {calls:6d} {tokens:7d} {seconds:8.2f} {rate[name]:9.1f}")
    print(f"speed-up batched / loop: {rate['batched'] / rate['loop']:.1f}x (goal >= 6x)")
    print(f"ratio: {rate['batched'] / rate['loop']:.2f}")


if __name__ == "__main__":
    main()
