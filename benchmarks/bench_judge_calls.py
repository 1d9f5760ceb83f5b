"""Judge calls per solution (goal: exactly 1), counted at the model, not at our own counter.

Runs the RagJudge stage (real MiniLM retrieval + the local SmolLM2 probe judge) over real
solutions (Med-PRM's sample, steps ending in " ки") and counts, side by side:
  * forward passes of the model (a wrapper around the loaded model counts every call),
  * the ``cost_calls`` the stage reports,
and prints calls/solution and steps judged per call, plus seconds per solution. A per-step judge
(the seed's design: one call per step) would need as many calls as steps; that ratio is printed too.

Run: python benchmarks/bench_judge_calls.py [n_solutions=8]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class CountingModel:
    """Forwards to the real model and counts forward passes."""

    def __init__(self, model: Any) -> None:
        self.model, self.config, self.calls = model, model.config, 0

    def parameters(self) -> Any:
        return self.model.parameters()

    def __call__(self, **kwargs: Any) -> Any:
        self.calls += 1
        return self.model(**kwargs)


def main(n: int) -> None:
    import numpy as np

    from physio_ray import schemas as S
    from physio_ray.annotate.config import JudgeConfig
    from physio_ray.annotate.judge import RagJudge
    from physio_ray.annotate.judge_backends import LocalProbeJudge
    from physio_ray.annotate.judge_eval import load_medprm, medprm_batch
    from physio_ray.annotate.retrieval import Retriever
    from physio_ray.llm.smollm2 import load_causal_lm

    path = REPO.parent / "shared" / "data" / "medprm-samples" / "medprm_samples_80.json"
    records = load_medprm(path, limit=n)
    model, tokenizer = load_causal_lm("smollm2-135m", "float32")
    counting = CountingModel(model)
    cfg = JudgeConfig(top_k=3)
    stage = RagJudge(cfg, backend=LocalProbeJudge(cfg, model=counting, tokenizer=tokenizer), retriever=Retriever())
    start = time.perf_counter()
    out = stage(medprm_batch(records))
    seconds = time.perf_counter() - start
    steps = sum(len(r["steps"]) for r in records)
    reported = int(np.sum(out[S.COST_CALLS]))
    print(f"solutions                       {n}")
    print(f"steps                           {steps}")
    print(f"model forward passes            {counting.calls}")
    print(f"reported cost_calls             {reported}")
    print(f"calls / solution (forward)      {counting.calls / n:.2f}   (goal: 1.00)")
    print(f"calls / solution (reported)     {reported / n:.2f}")
    print(f"steps judged per call           {steps / max(1, counting.calls):.2f}")
    print(
        f"per-step judge would need       {steps / n:.2f} calls / solution ({steps / max(1, counting.calls):.1f}x more)"
    )
    print(f"seconds / solution              {seconds / n:.2f}")
    print(f"abstentions                     {sum(v is None for row in out[S.JUDGE_LABELS] for v in row)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
