"""The vLLM solutions processor on a local Ray: built for real (vLLM itself is imported only on
GPU actors, so building needs no vLLM), and its row functions run through Ray Data so the
request rows (chat messages with image parts) survive Arrow. The run on a GPU with vLLM is in
test_llm_vllm_gpu.py."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from physio_ray import schemas as S
from physio_ray.llm.config import SamplerConfig
from physio_ray.llm.engine import EngineConfig, Generation, SamplingParams
from physio_ray.llm.sampler import SolutionSampler
from physio_ray.llm.vllm_stage import (
    IMAGES_KEY,
    build_vllm_processor,
    expand_question,
    finalize_row,
    postprocess_row,
    preprocess_row,
)
from physio_ray.runtime import Resources

pytest.importorskip("ray.data.llm", reason="ray[llm] not importable")

REPLY = " the knee bends to 71 degrees ки\nStep 2: a deep squat ки\nAnswer: B"


def _questions(video: Path) -> pd.DataFrame:
    base = {
        S.QUESTION: "At the bottom of each squat, how deep does the knee bend?",
        S.OPTIONS: ["About 170 degrees", "About 70 degrees", "About 120 degrees", "0 degrees"],
        S.ANSWER: "B",
        S.FEATURES: '{"reps": 2, "knee_flexion": {"min": 71.4}}',
        S.ERROR: None,
    }
    return pd.DataFrame(
        [
            {**base, S.QUESTION_ID: "squat-q0", S.VIDEO_ID: "squat", S.SOURCE_KIND: "video",
             S.SOURCE_PATH: str(video), S.KEYFRAME_TIMES: [0.0, 2.0, 6.8]},
            {**base, S.QUESTION_ID: "uiprmd-q0", S.VIDEO_ID: "uiprmd", S.SOURCE_KIND: "uiprmd",
             S.SOURCE_PATH: "/data/m01.txt", S.KEYFRAME_TIMES: [0.5]},
            {**base, S.QUESTION_ID: "bad-q0", S.VIDEO_ID: "bad", S.SOURCE_KIND: "uiprmd", S.SOURCE_PATH: "/x",
             S.KEYFRAME_TIMES: [], S.ERROR: "keyframes: no movement"},
        ]
    )  # fmt: skip


def _cfg(multimodal: bool) -> SamplerConfig:
    return SamplerConfig(
        engine=EngineConfig(kind="vllm", model="smollm2-135m", multimodal=multimodal, max_model_len=2048),
        resources=Resources(actors=1, batch_size=4),
        n=2,
        max_new_tokens=64,
        complete_answers=False,  # the vLLM stage does not run the sampler's answer completion
    )


def test_processor_is_built_from_config_without_vllm(ray_local: None) -> None:
    from ray.data.llm import Processor

    proc = build_vllm_processor(_cfg(multimodal=False))
    assert isinstance(proc, Processor)
    assert proc.list_stage_names() == ["ChatTemplateStage", "TokenizeStage", "vLLMEngineStage", "DetokenizeStage"]
    assert proc.config.should_continue_on_error and proc.config.batch_size == 4
    assert proc.sampler_cfg.n == 2


def test_request_and_result_rows_survive_ray_data(ray_local: None, squat_video: Path) -> None:
    import ray

    cfg = _cfg(multimodal=True)
    questions = _questions(squat_video)
    ds = ray.data.from_pandas(questions)
    requests = ds.flat_map(partial(expand_question, n=cfg.n, multimodal=True)).map(partial(preprocess_row, cfg=cfg))
    rows = sorted(requests.take_all(), key=lambda r: r[S.SOLUTION_ID])
    assert [r[S.SOLUTION_ID] for r in rows] == ["squat-q0-s0", "squat-q0-s1", "uiprmd-q0-s0", "uiprmd-q0-s1"]
    video_msgs = rows[0]["messages"]
    kinds = [p["type"] for p in video_msgs[0]["content"]]
    assert kinds == ["text", "image_url", "image_url", "image_url", "text"]
    assert video_msgs[0]["content"][1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert [p["type"] for p in rows[2]["messages"][0]["content"]] == ["text"] and len(rows[2][IMAGES_KEY]) == 0
    assert video_msgs[-1]["role"] == "assistant"  # the response prefix as a prefill

    # what the engine stage would add, then postprocess + finalize, all through Arrow
    def fake_engine(row: dict) -> dict:
        return {**row, "generated_text": REPLY, "num_input_tokens": 40, "num_generated_tokens": 9,
                "time_taken_llm": 0.5, "__inference_error__": ""}  # fmt: skip

    out = (
        requests.map(fake_engine)
        .map(partial(postprocess_row, prefix=cfg.response_prefix))
        .map(finalize_row)
        .to_pandas()
        .sort_values(S.SOLUTION_ID)
        .reset_index(drop=True)
    )

    class Canned:
        def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
            # one prompt per sample (n = 1 each: every sample has its own worked-example letter)
            return [
                Generation(texts=[REPLY] * params.n, tokens_in=40, tokens_out=9 * params.n, seconds=1.0)
                for _ in prompts
            ]

    batch = {c: questions[c].to_numpy() for c in questions.columns}
    expected = pd.DataFrame(SolutionSampler(cfg, engine=Canned())(batch))
    assert set(out.columns) == set(expected.columns)
    for col in (S.SOLUTION_ID, S.SOLUTION_TEXT, S.PREDICTED_ANSWER, S.IS_CORRECT, S.ERROR, S.COST_CALLS,
                S.COST_TOKENS_IN, S.COST_TOKENS_OUT):  # fmt: skip
        assert out[col].tolist() == expected[col].tolist(), col
    assert [list(s) for s in out[S.STEPS]] == [list(s) for s in expected[S.STEPS]]
