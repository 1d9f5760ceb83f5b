"""The vLLM solutions processor for real: SmolLM2 on a GPU through ray.data.llm (skipped without
vLLM or CUDA). Starts its own Ray with the GPU (the shared ``ray_local`` fixture has none)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pandas as pd
import pytest

from physio_ray import schemas as S
from physio_ray.llm.config import SamplerConfig
from physio_ray.llm.engine import EngineConfig
from physio_ray.llm.steps import parse_answer
from physio_ray.runtime import Resources

pytestmark = [pytest.mark.vllm, pytest.mark.gpu]


@pytest.fixture(scope="module")
def ray_gpu() -> Iterator[None]:
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (pip install -e '.[gpu]' on a GPU machine)")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_gpus=torch.cuda.device_count(), include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_smollm2_solutions_on_vllm(ray_gpu: None) -> None:
    import ray

    from physio_ray.llm.vllm_stage import build_vllm_processor

    cfg = SamplerConfig(
        engine=EngineConfig(kind="vllm", model="smollm2-135m", dtype="bfloat16", max_model_len=2048),
        resources=Resources(actors=1, gpus_per_actor=1, batch_size=8),
        n=4,
        max_new_tokens=96,
        seed=0,
    )
    questions = pd.DataFrame(
        [
            {
                S.QUESTION_ID: f"q{i}",
                S.QUESTION: q,
                S.OPTIONS: ["Knee", "Shoulder", "Elbow", "Wrist"],
                S.ANSWER: "A",
                S.FEATURES: '{"knee_flexion": {"min": 71.4, "max": 172.0}}',
                S.ERROR: None,
            }
            for i, q in enumerate(["Which joint bends most in a squat?", "Which joint carries the squat load?"])
        ]
    )
    out = build_vllm_processor(cfg)(ray.data.from_pandas(questions)).to_pandas().sort_values(S.SOLUTION_ID)
    assert out[S.SOLUTION_ID].tolist() == [f"q{i}-s{k}" for i in range(2) for k in range(4)]
    assert out[S.SOLUTION_TEXT].str.startswith("Step 1:").all()
    assert (out[S.COST_TOKENS_OUT] > 0).all() and out[S.COST_CALLS].sum() == 2
    for text, pred, steps in zip(out[S.SOLUTION_TEXT], out[S.PREDICTED_ANSWER], out[S.STEPS], strict=True):
        assert pred == parse_answer(text)
        assert all(s.endswith(" ки") and s.count(" ки") == 1 for s in steps)
    assert out[S.SOLUTION_TEXT].nunique() > 1  # sampled with per-solution seeds
