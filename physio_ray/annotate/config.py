"""Typed configuration of the annotation pipeline (``jobs/annotate.py`` and its stages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from physio_ray.annotate.measurement import Tolerances
from physio_ray.annotate.stages import STAGE_NAMES
from physio_ray.llm.config import SamplerConfig
from physio_ray.llm.engine import EngineConfig
from physio_ray.runtime import RayConfig, Resources
from physio_ray.video.config import KeyframeConfig, PoseConfig

__all__ = [
    "AnnotateConfig",
    "ExportConfig",
    "JudgeConfig",
    "KeyframeConfig",
    "MeasurementConfig",
    "MonteCarloConfig",
    "PoseConfig",
    "QuestionConfig",
    "Resources",
    "SamplerConfig",
    "SourcesConfig",
]


@dataclass(frozen=True)
class SourcesConfig:
    """Which recordings enter the pipeline.

    Attributes:
        videos: video files (decoded with OpenCV, pose by MediaPipe).
        tfjs_pose: tfjs-models pose JSON files (ready BlazePose landmarks in pixels).
        uiprmd_dir: root of UI-PRMD (``Segmented_Movements/`` and ``Incorrect_Segmented_Movements/``).
        uiprmd_movements: movement ids to take, e.g. ``["m01", "m05"]``.
        uiprmd_subjects: subject ids to take, e.g. ``["s01", "s03"]``.
        uiprmd_episodes: repetition numbers to take per subject (1..10).
        uiprmd_incorrect: also take the deliberately incorrect executions.
        keraal_dir: folder with KERAAL ``G3-BP-*.json`` BlazePose files.
        limit: cap on the number of recordings (``None``: all).
    """

    videos: list[str] = field(default_factory=list)
    tfjs_pose: list[str] = field(default_factory=list)
    uiprmd_dir: str | None = None
    uiprmd_movements: list[str] = field(default_factory=lambda: ["m01"])
    uiprmd_subjects: list[str] = field(default_factory=lambda: ["s01"])
    uiprmd_episodes: list[int] = field(default_factory=lambda: [1])
    uiprmd_incorrect: bool = True
    keraal_dir: str | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        for ep in self.uiprmd_episodes:
            if not 1 <= ep <= 10:
                raise ValueError(f"sources.uiprmd_episodes has {ep}; UI-PRMD episodes are 1..10")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"sources.limit={self.limit} must be >= 1 or null")


@dataclass(frozen=True)
class QuestionConfig:
    """Question generation.

    Attributes:
        writer: ``template`` fills seed 000 §4.2 templates from measured features;
            ``llm`` also asks the engine to rephrase each stem (validated; template kept on failure).
        engine: engine for the ``llm`` writer.
        max_per_recording: questions per recording at most.
        seed: option shuffling seed.
        resources: actor pool (the ``llm`` writer loads its engine once per actor).
    """

    writer: Literal["template", "llm"] = "template"
    engine: EngineConfig = field(default_factory=EngineConfig)
    max_per_recording: int = 2
    seed: int = 0
    resources: Resources = field(default_factory=lambda: Resources(batch_size=16))

    def __post_init__(self) -> None:
        if self.max_per_recording < 1:
            raise ValueError(f"questions.max_per_recording={self.max_per_recording} must be >= 1")


@dataclass(frozen=True)
class JudgeConfig:
    """RAG judge: one call per solution, per-step label + confidence.

    Attributes:
        backend: ``local`` (SmolLM2 token probabilities), ``gemini`` (google-genai, key in
            ``api_key_env``), ``openai`` (OpenAI-compatible server).
        model: model name for API backends; the local backend uses ``engine.model``.
        engine: engine settings for the local backend (and ``base_url`` for openai).
        api_key_env: environment variable with the API key.
        corpus: path of the retrieval corpus (``None``: the bundled physio corpus).
        top_k: passages retrieved per question.
        confidence_threshold: steps judged below this confidence go to Monte-Carlo.
        max_retries: API retries with exponential backoff before abstaining.
        backoff_s: first backoff delay.
        resources: actor pool.
    """

    backend: Literal["local", "gemini", "openai"] = "local"
    model: str = "gemini-2.5-flash"
    engine: EngineConfig = field(default_factory=EngineConfig)
    api_key_env: str = "GEMINI_API_KEY"
    corpus: str | None = None
    top_k: int = 3
    confidence_threshold: float = 0.7
    max_retries: int = 4
    backoff_s: float = 1.0
    resources: Resources = field(default_factory=Resources)

    def __post_init__(self) -> None:
        if not 0 <= self.confidence_threshold <= 1:
            raise ValueError(f"judge.confidence_threshold={self.confidence_threshold} must be in 0..1")
        if self.top_k < 0:
            raise ValueError(f"judge.top_k={self.top_k} must be >= 0")
        if self.backend == "openai" and not self.engine.base_url:
            raise ValueError("judge.backend=openai needs judge.engine.base_url")


@dataclass(frozen=True)
class MonteCarloConfig:
    """Selective Monte-Carlo on low-confidence steps.

    Attributes:
        max_rollouts: rollouts per step at most (seed: 16).
        batch: rollouts sampled together in one engine call.
        mode: ``adaptive`` stops once the hard label is settled (a correct rollout, or
            the budget); ``full`` always samples ``max_rollouts`` (exact soft labels).
        reuse: OmegaPRM-style reuse: a correct rollout from step k also labels every earlier
            step of that solution correct; a correct solution labels all its own steps.
        temperature: rollout temperature.
        max_new_tokens: budget per rollout.
        engine: engine for rollouts.
        resources: actor pool (GPU actors on the cluster).
        seed: base seed.
    """

    max_rollouts: int = 16
    batch: int = 4
    mode: Literal["adaptive", "full"] = "adaptive"
    reuse: bool = True
    temperature: float = 1.0
    max_new_tokens: int = 128
    engine: EngineConfig = field(default_factory=EngineConfig)
    resources: Resources = field(default_factory=Resources)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= self.max_rollouts:
            raise ValueError(f"montecarlo.batch={self.batch} must be in 1..max_rollouts ({self.max_rollouts})")


@dataclass(frozen=True)
class MeasurementConfig:
    """Measurement-grounded step checks in the hybrid label (``measurement:`` in the YAML).

    Each step's stated measurements are checked against its recording's features
    (:func:`physio_ray.annotate.measurement.check_step`); a contradicted step is labelled 0
    whatever the judge said, a supported one confirms the judge's 1, and a supported step the
    judge called 0 goes to Monte-Carlo (:mod:`physio_ray.annotate.labels`).

    Attributes:
        enabled: run the check (``False``: judge + MC only, the verdict columns stay empty).
        tolerances: how far a measured value may be from a claimed one.
        bands_on_ground_truth: also check band claims ("below 80 degrees") on questions
            answered by a dataset label. Off by default: there an incorrect row's keyed answer
            is the movement's typical deviation by convention, so a step restating it may
            contradict the measurement while the key calls it right.
    """

    enabled: bool = True
    tolerances: Tolerances = field(default_factory=Tolerances)
    bands_on_ground_truth: bool = False


@dataclass(frozen=True)
class ExportConfig:
    """Exports, cost ledger and clinician review sample.

    Attributes:
        review_fraction: share of questions exported for clinician review (seed: 10%).
        review_seed: sampling seed for the review set.
        price_per_mtok_in: $ per million prompt tokens, per stage name (``questions``,
            ``solutions``, ``judged``, ``annotated``); missing stages cost 0.
        price_per_mtok_out: $ per million generated tokens, per stage name.
        price_per_gpu_hour: $ per GPU hour for self-hosted stages on the cluster projection.
        projection_solutions: size of the cluster run to project costs for.
        review_verdicts: a ``review.csv`` filled in by clinicians; when set, the run reports
            their agreement with our step labels (``summary.json`` ``review_agreement``).
        medprm_reference: Med-PRM's Gemini-labelled sample (``None``: skip); the run reports our
            judge's agreement with those labels (``summary.json`` ``judge_vs_medprm``).
        medprm_reference_limit: judge only the first N solutions of that sample (``None``: all).
    """

    review_fraction: float = 0.1
    review_seed: int = 0
    price_per_mtok_in: dict[str, float] = field(default_factory=dict)
    price_per_mtok_out: dict[str, float] = field(default_factory=dict)
    price_per_gpu_hour: float = 2.5
    projection_solutions: int = 40_000
    review_verdicts: str | None = None
    medprm_reference: str | None = None
    medprm_reference_limit: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.review_fraction <= 1:
            raise ValueError(f"export.review_fraction={self.review_fraction} must be in 0..1")


@dataclass(frozen=True)
class AnnotateConfig:
    """The whole annotation run (``jobs/annotate.py``).

    Attributes:
        output_dir: where every stage writes ``<stage>/`` Parquet and the exports.
        stages: which stages to run (see :mod:`physio_ray.annotate.stages`); they run in
            pipeline order and rows already done are skipped on rerun.
    """

    output_dir: str = "outputs/annotate"
    stages: list[str] = field(default_factory=lambda: list(STAGE_NAMES))
    ray: RayConfig = field(default_factory=RayConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    questions: QuestionConfig = field(default_factory=QuestionConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    montecarlo: MonteCarloConfig = field(default_factory=MonteCarloConfig)
    measurement: MeasurementConfig = field(default_factory=MeasurementConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def __post_init__(self) -> None:
        for stage in self.stages:
            if stage not in STAGE_NAMES:
                raise ValueError(f"stages has {stage!r}; valid stages: {list(STAGE_NAMES)}")
