"""Typed configuration of solution sampling (``sampler:`` in the annotation YAML); llm/ owns it."""

from __future__ import annotations

from dataclasses import dataclass, field

from physio_ray.llm.engine import EngineConfig
from physio_ray.runtime import Resources


@dataclass(frozen=True)
class SamplerConfig:
    """Solution sampling: ``n`` solutions per question with " ки" step markers.

    Attributes:
        engine: which engine samples.
        resources: actor pool (GPU actors on the cluster).
        n: solutions per question (seed: 4).
        temperature: sampling temperature.
        top_p: nucleus mass.
        max_new_tokens: budget per solution.
        seed: base seed (per-question seeds derive from it).
        response_prefix: the start of every solution, written for the model (e.g. ``"Step 1:"``
            keeps a 135M model in the step format); kept in the stored solution text.
        complete_answers: when a solution stops without a final answer line (budget spent, or
            a small model drifting), ask the same model for it in one more greedy call that
            continues the solution after ``"Answer:"``; the result is still parsed strictly.
    """

    engine: EngineConfig = field(default_factory=EngineConfig)
    resources: Resources = field(default_factory=Resources)
    n: int = 4
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 192
    seed: int = 0
    response_prefix: str = "Step 1:"
    complete_answers: bool = True

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"sampler.n={self.n} must be >= 1")
        if self.max_new_tokens < 16:
            raise ValueError(f"sampler.max_new_tokens={self.max_new_tokens} is too small for a solution (>= 16)")
