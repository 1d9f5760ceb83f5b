"""Typed configuration of the Best-of-N evaluation job (``jobs/eval_bestofn.py``).

Candidates are sampled by the annotation sampler, so the ``sampler:`` section takes the same
keys as the annotation job's (:class:`~physio_ray.llm.config.SamplerConfig`: engine,
resources, n, temperature, top_p, max_new_tokens, seed, response_prefix, complete_answers).

Example:
    >>> cfg = EvalBestOfNConfig(sampler=SamplerConfig(n=8))
    >>> cfg.candidate_sampler.n, cfg.candidate_sampler.engine.kind
    (8, 'hf')
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from physio_ray.llm.config import SamplerConfig
from physio_ray.llm.engine import EngineConfig
from physio_ray.prm.config import PRMDataConfig, PRMModelConfig, PromptConfig
from physio_ray.prm.metrics import AGGREGATIONS
from physio_ray.runtime import RayConfig, Resources

# deprecated ``candidates.<key>`` -> its key in the ``sampler:`` section
DEPRECATED_CANDIDATE_KEYS = {
    "n": "sampler.n",
    "temperature": "sampler.temperature",
    "max_new_tokens": "sampler.max_new_tokens",
    "engine_model": "sampler.engine.model",
    "batch_size": "sampler.resources.batch_size",
}


@dataclass(frozen=True)
class CandidateConfig:
    """Where Best-of-N candidates come from (how they are sampled: the ``sampler:`` section).

    Attributes:
        solutions_dirs: Parquet of sampled solutions (an annotation run's ``solutions/`` or
            ``annotated/``; several solutions per ``question_id`` with ``is_correct``).
        annotated_dir: annotation run whose ``annotated/`` (else ``solutions/``) is used.
        sample_medprm: also sample solutions with the sampler for the held-out Med-PRM
            questions (the same split as training).
        max_questions: cap on sampled questions (``None``: all held-out ones).
        n: deprecated, use ``sampler.n``.
        temperature: deprecated, use ``sampler.temperature``.
        max_new_tokens: deprecated, use ``sampler.max_new_tokens``.
        engine_model: deprecated, use ``sampler.engine.model``.
        batch_size: deprecated, use ``sampler.resources.batch_size``.
    """

    solutions_dirs: list[str] = field(default_factory=list)
    annotated_dir: str | None = None
    sample_medprm: bool = True
    max_questions: int | None = None
    n: int | None = None
    temperature: float | None = None
    max_new_tokens: int | None = None
    engine_model: str | None = None
    batch_size: int | None = None

    def deprecated_keys(self) -> dict[str, Any]:
        """The deprecated sampling keys this config sets, with their values."""
        return {k: getattr(self, k) for k in DEPRECATED_CANDIDATE_KEYS if getattr(self, k) is not None}


@dataclass(frozen=True)
class EvalBestOfNConfig:
    """``jobs/eval_bestofn.py``: PRM Best-of-N vs majority vs random, and step-label AUC.

    Attributes:
        output_dir: where ``bestofn.json``, ``bestofn.png`` and scored candidates go.
        checkpoint: a trained PRM: ``<train output_dir>/prm`` (written by train_prm) or a
            Ray Train checkpoint folder; ``None`` scores with the untrained PRM.
        ray: how the job starts / joins Ray.
        data: Med-PRM / annotated data and the split (must match training for the AUC to be
            held-out); the AUC is computed on its test split.
        model: PRM architecture (ignored when the checkpoint carries its own).
        prompt: prompt settings (ignored when the checkpoint carries its own).
        candidates: where candidate solutions come from.
        sampler: how Med-PRM candidates are sampled (the annotation sampler's keys; its
            ``resources`` are the sampling actor pool). ``None``: the settings of the
            deprecated ``candidates.*`` keys (see :attr:`candidate_sampler`).
        ns: values of N.
        aggregations: step-score aggregations compared.
        max_subsets: subsets per question and N (enumerated when fewer exist).
        scorer_actors: Ray Data actors scoring candidates.
        scorer_cpus: CPUs per scoring actor.
        scorer_gpus: GPUs per scoring actor.
        scorer_batch_size: solutions per scorer call.
        seed: subset sampling seed.
    """

    output_dir: str = "outputs/eval_bestofn-local"
    checkpoint: str | None = "outputs/train_prm-local/prm"
    ray: RayConfig = field(default_factory=RayConfig)
    data: PRMDataConfig = field(default_factory=PRMDataConfig)
    model: PRMModelConfig = field(default_factory=PRMModelConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    sampler: SamplerConfig | None = None
    ns: list[int] = field(default_factory=lambda: [1, 2, 4])
    aggregations: list[str] = field(default_factory=lambda: list(AGGREGATIONS))
    max_subsets: int = 64
    scorer_actors: int = 1
    scorer_cpus: float = 1.0
    scorer_gpus: float = 0.0
    scorer_batch_size: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [a for a in self.aggregations if a not in AGGREGATIONS]
        if bad or not self.aggregations:
            raise ValueError(f"aggregations {bad or '[]'} must be chosen from min, mean, last, product")
        if not self.ns or min(self.ns) < 1:
            raise ValueError(f"ns={self.ns} must be a non-empty list of N >= 1")
        if self.scorer_actors < 1 or self.scorer_batch_size < 1:
            raise ValueError("scorer_actors and scorer_batch_size must be >= 1")
        old = self.candidates.deprecated_keys()
        if old and self.sampler is not None:
            keys = ", ".join(f"candidates.{k} (-> {DEPRECATED_CANDIDATE_KEYS[k]})" for k in old)
            raise ValueError(f"give the sampling settings once, in sampler:; remove the deprecated {keys}")
        if old:
            moved = ", ".join(f"candidates.{k} -> {DEPRECATED_CANDIDATE_KEYS[k]}" for k in old)
            warnings.warn(
                f"eval_bestofn: deprecated keys ({moved}); move them to the sampler: section, whose "
                "resources (not the scorer's) then place the sampling actors",
                FutureWarning,
                stacklevel=2,
            )
        sampler = self.candidate_sampler
        if self.candidates.sample_medprm and sampler.engine.kind == "vllm":
            raise ValueError(
                "sampler.engine.kind=vllm: Best-of-N samples with an in-process engine (hf or openai); "
                "sample with the annotation job on vLLM and pass its run as candidates.annotated_dir"
            )

    @property
    def candidate_sampler(self) -> SamplerConfig:
        """The sampler settings for Med-PRM candidates.

        The ``sampler:`` section when given; otherwise the behaviour of the deprecated keys:
        the HF engine with ``candidates.engine_model``, ``n`` (4), ``temperature`` (0.8),
        ``max_new_tokens`` (160), no response prefix and no answer completion, seeded with
        ``seed``, on the scorer's actors, CPUs and GPUs with ``candidates.batch_size`` (4).

        Raises:
            ValueError: when a deprecated key holds an invalid value.
        """
        if self.sampler is not None:
            return self.sampler
        c = self.candidates
        return SamplerConfig(
            engine=EngineConfig(model=c.engine_model or EngineConfig().model),
            resources=Resources(
                actors=self.scorer_actors,
                cpus_per_actor=self.scorer_cpus,
                gpus_per_actor=self.scorer_gpus,
                batch_size=4 if c.batch_size is None else c.batch_size,
            ),
            n=4 if c.n is None else c.n,
            temperature=0.8 if c.temperature is None else c.temperature,
            max_new_tokens=160 if c.max_new_tokens is None else c.max_new_tokens,
            seed=self.seed,
            response_prefix="",
            complete_answers=False,
        )
