"""The annotation stages: one table that the pipeline, the per-stage jobs, finalize and resume read.

Each row names a stage (also its output folder ``<output_dir>/<name>/``), the stage whose
rows feed it, the id columns resume and de-duplication use, the batch transform (a plain
class: ``__init__(**kwargs)`` loads, ``__call__(batch) -> batch`` maps) and where its
settings and Ray resources sit in :class:`~physio_ray.annotate.config.AnnotateConfig`.
Transforms are import strings, so reading the table imports no model code.

>>> [s.name for s in STAGE_TABLE]
['sources', 'poses', 'keyframes', 'questions', 'solutions', 'judged', 'annotated']
>>> stage("judged").upstream, stage("judged").job
('solutions', 'judge_solutions')
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from physio_ray import schemas as S


@dataclass(frozen=True)
class Stage:
    """How one annotation stage is wired.

    Attributes:
        name: stage name, also its output folder under ``output_dir``.
        upstream: stage whose rows feed this one (``None``: the stage lists its own inputs).
        input_key: id column of the input rows (resume skips keys already in the output).
        output_key: id column of the output rows (duplicates dropped on read).
        config_key: attribute of ``AnnotateConfig`` with this stage's settings; its
            ``resources`` size the actor pool.
        job: ``jobs/<job>.py`` runs this stage alone (``annotate``: only the whole chain).
        transform: ``"module:Class"`` of the batch transform (``None``: rows are written as listed).
        config_arg: keyword under which the transform receives its settings.
        extra_args: further keywords, each read from a dotted path of the config.
        compute: ``driver`` runs in the driver without Ray (cheap listing); ``actors`` maps
            the transform over an ``ActorPoolStrategy`` sized by the stage's resources.
        vllm: the stage runs on the ``ray.data.llm`` vLLM processor when its engine kind is ``vllm``.
    """

    name: str
    upstream: str | None
    input_key: str
    output_key: str
    config_key: str
    job: str
    transform: str | None = None
    config_arg: str = "cfg"
    extra_args: tuple[tuple[str, str], ...] = ()
    compute: Literal["driver", "actors"] = "actors"
    vllm: bool = False

    def transform_class(self) -> type:
        """Imports the transform class.

        Raises:
            ValueError: for a stage without a transform.
        """
        if self.transform is None:
            raise ValueError(f"stage {self.name!r} has no transform; its rows are written as listed")
        module, _, name = self.transform.partition(":")
        return getattr(importlib.import_module(module), name)

    def transform_kwargs(self, cfg: Any) -> dict[str, Any]:
        """Constructor keywords of the transform, read from the run config ``cfg``."""
        kwargs = {self.config_arg: getattr(cfg, self.config_key)}
        for arg, path in self.extra_args:
            value = cfg
            for part in path.split("."):
                value = getattr(value, part)
            kwargs[arg] = value
        return kwargs


STAGE_TABLE: tuple[Stage, ...] = (
    Stage("sources", None, S.VIDEO_ID, S.VIDEO_ID, "sources", "annotate", compute="driver"),
    Stage(
        "poses",
        "sources",
        S.VIDEO_ID,
        S.VIDEO_ID,
        "pose",
        "extract_poses",
        "physio_ray.video.pose:PoseExtractor",
        config_arg="pose_cfg",
    ),
    Stage(
        "keyframes",
        "poses",
        S.VIDEO_ID,
        S.VIDEO_ID,
        "keyframes",
        "select_keyframes",
        "physio_ray.video.keyframes:KeyframeSelector",
    ),
    Stage(
        "questions",
        "keyframes",
        S.VIDEO_ID,
        S.QUESTION_ID,
        "questions",
        "generate_questions",
        "physio_ray.annotate.questions:QuestionGenerator",
    ),
    Stage(
        "solutions",
        "questions",
        S.QUESTION_ID,
        S.SOLUTION_ID,
        "sampler",
        "sample_solutions",
        "physio_ray.llm.sampler:SolutionSampler",
        vllm=True,
    ),
    Stage(
        "judged",
        "solutions",
        S.SOLUTION_ID,
        S.SOLUTION_ID,
        "judge",
        "judge_solutions",
        "physio_ray.annotate.judge:RagJudge",
    ),
    Stage(
        "annotated",
        "judged",
        S.SOLUTION_ID,
        S.SOLUTION_ID,
        "montecarlo",
        "run_montecarlo",
        "physio_ray.annotate.montecarlo:MonteCarloAnnotator",
        config_arg="mc_cfg",
        extra_args=(("confidence_threshold", "judge.confidence_threshold"), ("measurement_cfg", "measurement")),
    ),
)

STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGE_TABLE)
"""Stage names in pipeline order."""

_BY_NAME = {s.name: s for s in STAGE_TABLE}


def stage(name: str) -> Stage:
    """The table row of stage ``name``.

    Raises:
        KeyError: naming the valid stages.
    """
    if name not in _BY_NAME:
        raise KeyError(f"no annotation stage {name!r}; valid stages: {list(STAGE_NAMES)}")
    return _BY_NAME[name]
