"""The vLLM solutions stage without Ray or vLLM: its config from YAML, and the row functions
around the engine (question expansion, prompts with keyframe images, sampler-identical rows).

The processor itself runs in tests/cluster/test_llm_vllm_stage.py (built without vLLM; run
on a GPU where vLLM is installed)."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np
import pytest

from physio_ray import schemas as S
from physio_ray.annotate.config import AnnotateConfig
from physio_ray.config import load_config
from physio_ray.llm.config import SamplerConfig
from physio_ray.llm.engine import EngineConfig, Generation, SamplingParams
from physio_ray.llm.sampler import SOLUTION_COLUMNS, SolutionSampler, solution_prompt
from physio_ray.llm.vllm_stage import (
    IMAGES_KEY,
    INFERENCE_ERROR_KEY,
    MAX_IMAGES,
    QUESTION_COLUMNS_KEY,
    SAMPLE_INDEX_KEY,
    expand_question,
    finalize_row,
    keyframe_data_urls,
    postprocess_row,
    preprocess_row,
    solution_seed,
    vllm_engine_kwargs,
    vllm_processor_config,
)
from physio_ray.runtime import Resources

REPO = Path(__file__).resolve().parents[2]
QUESTION = {
    S.QUESTION_ID: "squat-q0",
    S.VIDEO_ID: "squat",
    S.QUESTION: "At the bottom of each squat, how deep does the knee bend?",
    S.OPTIONS: np.array(["About 170 degrees", "About 70 degrees", "About 120 degrees", "0 degrees"], dtype=object),
    S.ANSWER: "B",
    S.FEATURES: '{"reps": 2, "knee_flexion": {"min": 71.4}}',
    S.ERROR: None,
}
TEXTS = [  # continuations of the "Step 1:" prefill
    " the knee reaches 71 degrees ки\nStep 2: that is deep ки\nAnswer: B",
    " straight legs ки\nAnswer: A",
    "no idea",
    "",
]


def _vllm_sampler(**engine: object) -> SamplerConfig:
    return SamplerConfig(
        engine=EngineConfig(kind="vllm", model="OpenGVLab/InternVL3-8B", **engine),  # type: ignore[arg-type]
        resources=Resources(actors=2, batch_size=16),
        n=4,
        temperature=0.9,
        top_p=0.95,
        max_new_tokens=96,
        seed=3,
        complete_answers=False,  # the vLLM stage does not run the sampler's answer completion
    )


# ------------------------------------------------------------------ config from YAML


def test_processor_config_from_cluster_yaml() -> None:
    pytest.importorskip("ray.data.llm", reason="ray[llm] not importable")
    cfg = load_config(AnnotateConfig, [str(REPO / "configs/annotate/cluster.yaml")])
    assert cfg.sampler.engine.kind == "vllm" and cfg.sampler.engine.multimodal
    pc = vllm_processor_config(cfg.sampler)  # a hub name is kept as written
    assert type(pc).__name__ == "vLLMEngineProcessorConfig"
    assert pc.model_source == "OpenGVLab/InternVL3-8B"
    assert pc.batch_size == 64 and pc.concurrency == (1, 8)  # autoscaling pool from sampler.resources
    assert pc.engine_kwargs == {
        "max_model_len": 8192,
        "tensor_parallel_size": 1,
        "dtype": "bfloat16",
        "enable_prefix_caching": True,
        "trust_remote_code": True,
        "limit_mm_per_prompt": {"image": MAX_IMAGES},
        "task_type": "generate",
    }
    assert pc.should_continue_on_error is True
    assert pc.prepare_multimodal_stage == {"enabled": True}
    fixed = load_config(
        AnnotateConfig,
        [
            str(REPO / "configs/annotate/cluster.yaml"),
            "sampler.resources.min_actors=null",
            "sampler.engine.multimodal=false",
        ],
    )
    pc2 = vllm_processor_config(fixed.sampler)
    assert pc2.concurrency == 8 and pc2.prepare_multimodal_stage is False
    assert "trust_remote_code" not in pc2.engine_kwargs and "limit_mm_per_prompt" not in pc2.engine_kwargs


def test_processor_config_rejects_other_engines_and_resolves_smollm2() -> None:
    pytest.importorskip("ray.data.llm", reason="ray[llm] not importable")
    with pytest.raises(ValueError, match="kind=vllm"):
        vllm_processor_config(SamplerConfig())
    pc = vllm_processor_config(SamplerConfig(engine=EngineConfig(kind="vllm", model="smollm2-135m")))
    assert (Path(pc.model_source) / "model.safetensors").is_file()  # the embedded model's local copy
    kw = vllm_engine_kwargs(EngineConfig(kind="vllm", tensor_parallel_size=2, max_model_len=2048))
    assert kw["tensor_parallel_size"] == 2 and kw["max_model_len"] == 2048 and kw["dtype"] == "float32"


# ------------------------------------------------------------------ rows in


def test_expand_question_into_n_requests() -> None:
    rows = expand_question(dict(QUESTION), n=3)
    assert [r[S.SOLUTION_ID] for r in rows] == ["squat-q0-s0", "squat-q0-s1", "squat-q0-s2"]
    assert [r[SAMPLE_INDEX_KEY] for r in rows] == [0, 1, 2]
    assert rows[0][QUESTION_COLUMNS_KEY] == [c for c in QUESTION if c != S.ERROR] and rows[0][IMAGES_KEY] == []
    assert rows[2][S.QUESTION] == QUESTION[S.QUESTION]
    assert expand_question({**QUESTION, S.ERROR: "pose: no person"}, n=3) == []
    assert expand_question({**QUESTION, S.OPTIONS: np.array(["a", "b", "c"], dtype=object)}, n=3) == []
    assert expand_question({**QUESTION, S.QUESTION: float("nan")}, n=3) == []


def test_preprocess_builds_the_sampler_prompt_and_per_solution_seeds() -> None:
    cfg = _vllm_sampler()
    rows = [preprocess_row(r, cfg) for r in expand_question(dict(QUESTION), n=4)]
    sampler = SolutionSampler(SamplerConfig(), engine=object())  # type: ignore[arg-type]
    for k, r in enumerate(rows):
        # sample k gets the in-process sampler's prompt of sample k (its own example letter)
        prompt = solution_prompt(QUESTION[S.QUESTION], list(QUESTION[S.OPTIONS]), QUESTION[S.FEATURES], k)
        assert prompt == sampler.prompt(QUESTION[S.QUESTION], list(QUESTION[S.OPTIONS]), QUESTION[S.FEATURES], k)
        # the sampler's response prefix is an assistant prefill the model continues
        assert r["messages"] == [{"role": "user", "content": prompt}, {"role": "assistant", "content": "Step 1:"}]
        sp = r["sampling_params"]
        assert (sp["n"], sp["temperature"], sp["top_p"], sp["max_tokens"]) == (1, 0.9, 0.95, 96)
        assert sp["seed"] == solution_seed(3, r[S.SOLUTION_ID])
    assert len({r["sampling_params"]["seed"] for r in rows}) == 4
    assert len({r["messages"][0]["content"] for r in rows}) == 4


def _decode_data_url(url: str) -> np.ndarray:
    assert url.startswith("data:image/jpeg;base64,")
    raw = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), dtype=np.uint8)
    img = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_multimodal_prompt_carries_keyframes_from_the_video(squat_video: Path) -> None:
    cfg = _vllm_sampler(multimodal=True)
    row = {**QUESTION, S.SOURCE_KIND: "video", S.SOURCE_PATH: str(squat_video), S.KEYFRAME_TIMES: [0.0, 2.0, 6.8]}
    requests = expand_question(row, n=2, multimodal=True)
    images = requests[0][IMAGES_KEY]
    assert len(images) == 3 and requests[1][IMAGES_KEY] == images  # decoded once per question
    frames = [_decode_data_url(u) for u in images]
    assert all(max(f.shape[:2]) == 448 for f in frames)
    assert float(np.abs(frames[0].astype(int) - frames[1].astype(int)).mean()) > 1.0  # different moments
    user, prefill = preprocess_row(requests[0], cfg)["messages"]
    content = user["content"]
    assert prefill == {"role": "assistant", "content": [{"type": "text", "text": "Step 1:"}]}
    assert [p["type"] for p in content] == ["text", "image_url", "image_url", "image_url", "text"]
    assert content[1]["image_url"]["url"] == images[0] and content[-1]["text"].startswith("You are a physiotherapist")
    # indices win over times; more than MAX_IMAGES keyframes are thinned evenly
    many = keyframe_data_urls({**row, S.KEYFRAME_INDICES: list(range(0, 60, 5))})
    assert len(many) == MAX_IMAGES


def test_multimodal_rows_without_video_are_text_parts_only(squat_video: Path) -> None:
    cfg = _vllm_sampler(multimodal=True)
    landmarks = {**QUESTION, S.SOURCE_KIND: "uiprmd", S.SOURCE_PATH: "/data/m01_s01_e01.txt", S.KEYFRAME_TIMES: [0.5]}
    (req,) = expand_question(landmarks, n=1, multimodal=True)
    assert req[IMAGES_KEY] == []
    content = preprocess_row(req, cfg)["messages"][0]["content"]
    assert [p["type"] for p in content] == ["text"]  # same Arrow shape as rows with images
    no_prefix = SamplerConfig(engine=cfg.engine, response_prefix="")
    assert len(preprocess_row(req, no_prefix)["messages"]) == 1
    missing = {**QUESTION, S.SOURCE_KIND: "video", S.SOURCE_PATH: "/nope/missing.mp4", S.KEYFRAME_TIMES: [0.5]}
    assert keyframe_data_urls(missing) == []  # unreadable video: text only, logged
    past_end = {**QUESTION, S.SOURCE_KIND: "video", S.SOURCE_PATH: str(squat_video), S.KEYFRAME_INDICES: [10**6]}
    assert keyframe_data_urls(past_end) == []


# ------------------------------------------------------------------ rows out: identical to the sampler's


class _Scripted:
    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        # prompt i is sample i of the question (one prompt per sample, n = 1 each)
        return [
            Generation(
                texts=[TEXTS[(i * params.n + k) % len(TEXTS)] for k in range(params.n)],
                tokens_in=50,
                tokens_out=7 * params.n,
                seconds=0.1 * params.n,
            )
            for i in range(len(prompts))
        ]


def _batch(row: dict) -> dict[str, np.ndarray]:
    out = {}
    for k, v in row.items():
        col = np.empty(1, dtype=object)
        col[0] = v
        out[k] = col
    return out


def test_postprocess_gives_exactly_the_sampler_rows() -> None:
    cfg = _vllm_sampler()
    expected = SolutionSampler(cfg, engine=_Scripted())(_batch(QUESTION))
    got = []
    for k, req in enumerate(expand_question(dict(QUESTION), n=4)):
        engine_row = {
            **preprocess_row(req, cfg),
            "generated_text": TEXTS[k],
            "num_input_tokens": 50,
            "num_generated_tokens": 7,
            "time_taken_llm": 0.1,
            "prompt": "...",
            "generated_tokens": [1, 2],
            INFERENCE_ERROR_KEY: "",
        }
        got.append(finalize_row({**postprocess_row(engine_row, prefix=cfg.response_prefix), INFERENCE_ERROR_KEY: ""}))
    assert all(set(r) == set(expected) for r in got)  # no vLLM or internal columns leak
    for col in (
        S.SOLUTION_ID,
        S.SOLUTION_TEXT,
        S.PREDICTED_ANSWER,
        S.IS_CORRECT,
        S.ERROR,
        S.QUESTION_ID,
        S.ANSWER,
        S.VIDEO_ID,
        S.COST_CALLS,
        S.COST_TOKENS_IN,
        S.COST_TOKENS_OUT,
        S.COST_ROLLOUTS,
    ):
        assert [r[col] for r in got] == list(expected[col]), col
    assert [r[S.STEPS] for r in got] == [list(s) for s in expected[S.STEPS]]
    assert [r[S.COST_TOKENS_IN] for r in got] == [50, 50, 50, 50]  # each sample has its own prompt
    assert [r[S.SOLUTION_TEXT][:12] for r in got[:2]] == ["Step 1: the ", "Step 1: stra"]  # prefix kept
    assert [r[S.ERROR] is None for r in got] == [True, True, False, False]


def test_failed_inference_becomes_an_error_row() -> None:
    (req,) = expand_question(dict(QUESTION), n=1)
    failed = {**preprocess_row(req, _vllm_sampler()), INFERENCE_ERROR_KEY: "CUDA error: device-side assert"}
    row = finalize_row(failed)
    assert set(row) == set(QUESTION) | set(SOLUTION_COLUMNS)
    assert row[S.ERROR] == "solution: generation failed: CUDA error: device-side assert"
    assert row[S.STEPS] == [] and row[S.PREDICTED_ANSWER] is None and row[S.IS_CORRECT] is False
    assert row[S.SOLUTION_ID] == "squat-q0-s0" and row[S.COST_CALLS] == 1 and row[S.COST_TOKENS_OUT] == 0
