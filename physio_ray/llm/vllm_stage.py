"""Stage "solutions" on GPU actors: vLLM through ``ray.data.llm`` (the cluster path).

:func:`build_vllm_processor` turns the YAML's :class:`~physio_ray.annotate.config.SamplerConfig`
(``engine.kind: vllm``) into a ``ray.data.llm`` processor (``vLLMEngineProcessorConfig`` +
``build_processor``) that maps question rows to exactly the rows
:class:`~physio_ray.llm.sampler.SolutionSampler` writes: ``n`` rows per question with the same
``solution_id``, steps, strictly parsed answers, cost columns and ``error``.

Each question is first expanded into ``n`` requests (vLLM's Ray Data stage keeps only the
first completion of a request, so ``sampling_params.n`` cannot be used); prefix caching makes
the repeated prompt cheap. The prompt is the sampler's own (:func:`~physio_ray.llm.sampler.
solution_prompt`), sent as chat messages. With ``engine.multimodal`` the keyframe images of the
recording (decoded from its video at the keyframe indices or times) go in the same user message
as JPEG data URLs, for a VLM such as InternVL3-8B; recordings without a video (UI-PRMD, KERAAL
landmarks) get the text prompt only.

Everything here except :func:`build_vllm_processor` is a pure function over rows, testable
without Ray or vLLM. ``build_processor`` itself calls ``ray.init`` and resolves the model, so
it is only called where the graph is wired.
"""

from __future__ import annotations

import base64
import logging
from functools import partial
from typing import Any

import numpy as np

from physio_ray import schemas as S
from physio_ray.batches import as_list
from physio_ray.llm.config import SamplerConfig
from physio_ray.llm.engine import EngineConfig
from physio_ray.llm.sampler import SOLUTION_COLUMNS, batch_seed, solution_columns, solution_id, solution_prompt
from physio_ray.llm.steps import DEFAULT_MAX_STEPS

logger = logging.getLogger(__name__)

QUESTION_COLUMNS_KEY = "physio_question_columns"
"""Internal column: names of the question columns a solution row passes through."""
SAMPLE_INDEX_KEY = "physio_sample_index"
"""Internal column: ``k`` of the ``k``-th solution of its question."""
IMAGES_KEY = "physio_keyframe_images"
"""Internal column: JPEG data URLs of the question's keyframes (multimodal only)."""

INFERENCE_ERROR_KEY = "__inference_error__"  # set by ray.data.llm when should_continue_on_error
MAX_IMAGES = 8
"""Keyframes sent per prompt at most (evenly thinned); also vLLM's ``limit_mm_per_prompt``."""
IMAGE_MAX_SIDE = 448
"""Longest side of a keyframe image in pixels (InternVL's tile size)."""


# ---------------------------------------------------------------- config


def vllm_engine_kwargs(engine: EngineConfig) -> dict[str, Any]:
    """vLLM engine arguments from the engine config.

    Args:
        engine: the sampler's engine settings (``kind: vllm``).

    Returns:
        kwargs for ``vLLMEngineProcessorConfig.engine_kwargs``.
    """
    kwargs: dict[str, Any] = {
        "max_model_len": engine.max_model_len,
        "tensor_parallel_size": engine.tensor_parallel_size,
        "dtype": engine.dtype,
        "enable_prefix_caching": True,  # the n requests of a question share their prompt
    }
    if engine.multimodal:
        kwargs["trust_remote_code"] = True  # InternVL ships its own model code
        kwargs["limit_mm_per_prompt"] = {"image": MAX_IMAGES}
    return kwargs


def model_source(model: str) -> str:
    """The model name or folder vLLM loads: the embedded SmolLM2 resolves to its safetensors cache."""
    from physio_ray.llm.smollm2 import SMOLLM2_NAME, build_smollm2_cache

    return str(build_smollm2_cache()) if model == SMOLLM2_NAME else model


def vllm_processor_config(cfg: SamplerConfig, *, resolve_model: bool = True) -> Any:
    """Builds the ``ray.data.llm.vLLMEngineProcessorConfig`` for the solutions stage.

    Args:
        cfg: sampler settings from YAML (``engine.kind`` must be ``vllm``).
        resolve_model: map ``smollm2-135m`` to its local safetensors folder (converting the
            GGUF on first use); ``False`` keeps the name as written.

    Returns:
        The processor config: ``batch_size`` and the actor pool (``concurrency``, a fixed int
        or ``(min, max)``) from ``cfg.resources``, engine kwargs from ``cfg.engine``, the
        multimodal preparation stage when ``engine.multimodal``, and errors kept per row.

    Raises:
        ValueError: when ``cfg.engine.kind`` is not ``vllm``.
    """
    from ray.data.llm import vLLMEngineProcessorConfig

    if cfg.engine.kind != "vllm":
        raise ValueError(f"sampler.engine.kind={cfg.engine.kind!r}; the vLLM processor needs kind=vllm")
    res = cfg.resources
    concurrency: int | tuple[int, int] = res.actors if res.min_actors is None else (res.min_actors, res.actors)
    return vLLMEngineProcessorConfig(
        model_source=model_source(cfg.engine.model) if resolve_model else cfg.engine.model,
        engine_kwargs=vllm_engine_kwargs(cfg.engine),
        batch_size=res.batch_size,
        concurrency=concurrency,
        should_continue_on_error=True,  # one failed request becomes an error row, not a dead job
        prepare_multimodal_stage={"enabled": True} if cfg.engine.multimodal else False,
        chat_template_stage=True,
        tokenize_stage=True,
        detokenize_stage=True,
    )


# ---------------------------------------------------------------- rows in


def solution_seed(base: int, sid: str) -> int:
    """A per-solution seed that depends only on ``base`` and the solution id."""
    return batch_seed(base, [sid])


def _value(row: dict[str, Any], key: str) -> Any:
    value = row.get(key)
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def keyframe_data_urls(row: dict[str, Any], max_images: int = MAX_IMAGES) -> list[str]:
    """JPEG data URLs of a recording's keyframes, decoded from its video.

    Args:
        row: a row with ``source_path`` and ``keyframe_indices`` (or ``keyframe_times``, turned
            into frame indices with the video's fps); ``source_kind`` other than ``video``
            means there is no video.
        max_images: keep at most this many keyframes, evenly spread, first and last included.

    Returns:
        ``data:image/jpeg;base64,...`` strings in time order; ``[]`` when the row has no video
        or no keyframes, or the frames cannot be read (logged).
    """
    from physio_ray.video.decode import read_keyframe_jpegs, video_info

    path = _value(row, S.SOURCE_PATH)
    kind = _value(row, S.SOURCE_KIND)
    if not path or (kind is not None and kind != "video"):
        return []
    try:
        indices = [int(i) for i in as_list(_value(row, S.KEYFRAME_INDICES))]
        if not indices:
            times = [float(t) for t in as_list(_value(row, S.KEYFRAME_TIMES))]
            if not times:
                return []
            fps = video_info(path).fps
            indices = [max(0, round(t * fps)) for t in times]
        if len(indices) > max_images:
            picks = np.linspace(0, len(indices) - 1, max_images).round().astype(int)
            indices = [indices[p] for p in picks]
        jpegs = read_keyframe_jpegs(path, indices, quality=85, max_side=IMAGE_MAX_SIDE)
    except (OSError, ValueError, IndexError) as exc:
        logger.warning("no keyframe images for %s: %s", path, exc)
        return []
    return ["data:image/jpeg;base64," + base64.b64encode(j).decode("ascii") for j in jpegs]


def expand_question(row: dict[str, Any], n: int, multimodal: bool = False) -> list[dict[str, Any]]:
    """Expands one question row into its ``n`` solution requests (before ``preprocess``).

    Rows that failed upstream or that cannot make a prompt produce nothing, exactly as in
    :class:`~physio_ray.llm.sampler.SolutionSampler`.

    Args:
        row: a question row (the "questions" stage's columns, maybe more).
        n: solutions per question.
        multimodal: also attach the keyframe images (decoded once per question).

    Returns:
        ``n`` rows: the question columns plus the internal solution index, the names of the
        question columns, and the keyframe images.
    """
    qid = row.get(S.QUESTION_ID)
    if _value(row, S.ERROR):
        return []
    try:
        solution_prompt(
            str(_value(row, S.QUESTION) or ""),
            [str(o) for o in as_list(_value(row, S.OPTIONS))],
            _value(row, S.FEATURES),
        )
    except (ValueError, TypeError) as exc:
        logger.warning("no solutions for %s: %s", qid, exc)
        return []
    columns = [c for c in row if c not in SOLUTION_COLUMNS]
    images = keyframe_data_urls(row) if multimodal else []
    out = []
    for k in range(n):
        out.append(
            {
                **{c: row[c] for c in columns},
                SAMPLE_INDEX_KEY: k,
                QUESTION_COLUMNS_KEY: columns,
                IMAGES_KEY: images,
                S.SOLUTION_ID: solution_id(str(qid), k),
            }
        )
    return out


def chat_messages(prompt: str, images: list[str], multimodal: bool = False, prefix: str = "") -> list[dict[str, Any]]:
    """OpenAI-format chat messages: the text prompt, preceded by the keyframes when given.

    Args:
        prompt: the solution prompt.
        images: JPEG data URLs in time order.
        multimodal: always use lists of content parts (so every row of a multimodal dataset
            has the same Arrow type, with or without images).
        prefix: the start of the reply (``SamplerConfig.response_prefix``), sent as a final
            assistant message that the model continues (ray.data.llm's chat template stage
            continues a trailing assistant message instead of opening a new one).

    Returns:
        ``[{"role": "user", "content": ...}]`` (+ the assistant prefill): plain strings for
        text-only models, else lists of content parts (a short caption and one ``image_url``
        part per keyframe when there are images, then the prompt).
    """
    as_parts = multimodal or bool(images)

    def content(text: str) -> Any:
        return [{"type": "text", "text": text}] if as_parts else text

    if as_parts:
        parts: list[dict[str, Any]] = []
        if images:
            parts.append({"type": "text", "text": f"{len(images)} keyframes of the exercise, in time order:"})
            parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
        parts.append({"type": "text", "text": prompt})
        messages: list[dict[str, Any]] = [{"role": "user", "content": parts}]
    else:
        messages = [{"role": "user", "content": prompt}]
    if prefix:
        messages.append({"role": "assistant", "content": content(prefix)})
    return messages


def preprocess_row(row: dict[str, Any], cfg: SamplerConfig) -> dict[str, Any]:
    """Adds the processor's input columns (``messages``, ``sampling_params``) to a request row.

    Args:
        row: one output row of :func:`expand_question`.
        cfg: sampler settings (temperature, top_p, max_new_tokens, seed).

    Returns:
        The row with ``messages`` and ``sampling_params`` (one completion, seeded per solution).
    """
    prompt = solution_prompt(
        str(_value(row, S.QUESTION) or ""),
        [str(o) for o in as_list(_value(row, S.OPTIONS))],
        _value(row, S.FEATURES),
        int(row[SAMPLE_INDEX_KEY]),
    )
    images = [str(u) for u in as_list(row.get(IMAGES_KEY))]
    params = {
        "n": 1,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_tokens": cfg.max_new_tokens,
        "seed": solution_seed(cfg.seed, str(row[S.SOLUTION_ID])),
    }
    messages = chat_messages(prompt, images, multimodal=cfg.engine.multimodal, prefix=cfg.response_prefix)
    return {**row, "messages": messages, "sampling_params": params}


# ---------------------------------------------------------------- rows out


def _solution_row(
    row: dict[str, Any], text: str, tokens_in: int, tokens_out: int, seconds: float, failure: str | None, max_steps: int
) -> dict[str, Any]:
    out = {c: row.get(c) for c in as_list(row.get(QUESTION_COLUMNS_KEY))}
    answer = str(_value(row, S.ANSWER) or "").strip().upper()
    k = int(row[SAMPLE_INDEX_KEY])
    # one call per question, each sample's own prompt tokens, as the in-process sampler counts
    out.update(
        solution_columns(
            str(row[S.SOLUTION_ID]), text, answer, failure, k, tokens_in, tokens_out, max(seconds, 0.0), max_steps
        )
    )
    return out


def postprocess_row(row: dict[str, Any], max_steps: int = DEFAULT_MAX_STEPS, prefix: str = "") -> dict[str, Any]:
    """Turns one vLLM result row into the sampler's solution row.

    Args:
        row: a processor row after the engine (``generated_text``, ``num_input_tokens``,
            ``num_generated_tokens``, ``time_taken_llm``, plus the request row's columns).
        max_steps: most steps kept per solution.
        prefix: the reply prefill (``SamplerConfig.response_prefix``); the stored solution
            text starts with it, as in the in-process sampler.

    Returns:
        The question columns plus :data:`~physio_ray.llm.sampler.SOLUTION_COLUMNS`; nothing
        of vLLM's own columns.
    """
    text = prefix + str(row.get("generated_text") or "")
    return _solution_row(
        row,
        text,
        int(row.get("num_input_tokens") or 0),
        int(row.get("num_generated_tokens") or 0),
        float(row.get("time_taken_llm") or 0.0),
        None,
        max_steps,
    )


def finalize_row(row: dict[str, Any]) -> dict[str, Any]:
    """Drops ray.data.llm's error column; a failed request becomes an ``error`` solution row.

    ray.data.llm lets rows whose inference failed skip ``postprocess``; they arrive here with
    the request row's columns and ``__inference_error__`` set.
    """
    failure = row.get(INFERENCE_ERROR_KEY) or ""
    if not failure:
        return {k: v for k, v in row.items() if k != INFERENCE_ERROR_KEY}
    return _solution_row(row, "", 0, 0, 0.0, str(failure)[:500], 1)


# ---------------------------------------------------------------- the processor


def build_vllm_processor(cfg: SamplerConfig, max_steps: int = DEFAULT_MAX_STEPS) -> Any:
    """Builds the vLLM solutions processor (call it on the questions dataset).

    Calls ``ray.init`` if Ray is not running (``build_processor`` does) and reads the model's
    tokenizer files; vLLM itself is imported on the GPU actors.

    Args:
        cfg: sampler settings (``engine.kind: vllm``).
        max_steps: most steps kept per solution.

    Returns:
        A ``ray.data.llm`` ``Processor``: ``processor(questions_ds)`` returns the solutions
        dataset (``n`` rows per valid question).
    """
    from ray.data.llm import build_processor

    inner = build_processor(
        vllm_processor_config(cfg),
        preprocess=partial(preprocess_row, cfg=cfg),
        postprocess=partial(postprocess_row, max_steps=max_steps, prefix=cfg.response_prefix),
    )
    return _solution_processor(inner, cfg)


def _solution_processor(inner: Any, cfg: SamplerConfig) -> Any:
    """Wraps a built ``Processor`` so it expands questions first and finalises rows last."""
    from ray.llm._internal.batch.processor import Processor

    class SolutionProcessor(Processor):
        """A ``ray.data.llm`` Processor: question rows in, ``n`` solution rows per question out."""

        def __init__(self) -> None:  # adopt the built processor's stages and pre/postprocess
            self.__dict__.update(inner.__dict__)
            self.sampler_cfg = cfg

        def __call__(self, dataset: Any) -> Any:
            expand = partial(expand_question, n=cfg.n, multimodal=cfg.engine.multimodal)
            return super().__call__(dataset.flat_map(expand)).map(finalize_row)

    return SolutionProcessor()
