"""Builds the configured :class:`~physio_ray.llm.engine.TextEngine`."""

from __future__ import annotations

from physio_ray.llm.engine import EngineConfig, TextEngine


def build_engine(cfg: EngineConfig) -> TextEngine:
    """Returns an engine for ``cfg.kind``, loading its model once.

    Args:
        cfg: engine settings from YAML.

    Returns:
        ``hf``: :class:`~physio_ray.llm.hf_engine.HFEngine` (local transformers, batched);
        ``openai``: :class:`~physio_ray.llm.openai_engine.OpenAIEngine`.

    Raises:
        ValueError: for ``vllm``, which is not an in-process engine: it runs as a Ray Data
            processor on GPU actors (:func:`physio_ray.llm.vllm_stage.build_vllm_processor`).
    """
    if cfg.kind == "hf":
        from physio_ray.llm.hf_engine import HFEngine

        return HFEngine(cfg)
    if cfg.kind == "openai":
        from physio_ray.llm.openai_engine import OpenAIEngine

        return OpenAIEngine(cfg)
    raise ValueError(
        f"engine.kind={cfg.kind!r} is not an in-process engine; vLLM runs as a Ray Data processor "
        "(sampler.engine.kind=vllm is wired by the pipeline, not by build_engine)"
    )
