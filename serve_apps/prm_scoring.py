"""PRM scoring service on Ray Serve: ``POST /score`` -> per-step scores and the solution score.

Request: ``{"question": str, "options": [str], "steps": [str, each ending in " ки"],
"features": [[16 joint angles] per keyframe] (optional)}``. Response:
``{"step_scores": [P(+) per step], "score": aggregate, "aggregation": "min"}``. Malformed
requests (no steps, too many, a step without its marker, too much text, bad features) get
422 with every problem listed. Requests are batched with ``@serve.batch`` into one PRM
forward pass, in which requests that share their prompt up to the solution (Best-of-N
candidates of one question) run that prefix once. ``GET /healthz`` answers when the model is
loaded; Serve's own health check calls :meth:`PRMScoringDeployment.check_health`.

Run: ``serve run configs/serve/prm.yaml`` (autoscaling and resources live in that YAML).
"""

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from physio_ray.config import from_dict
from physio_ray.prm.api import RequestLimits, request_example, request_problems
from physio_ray.prm.config import PRMModelConfig, PromptConfig
from physio_ray.prm.metrics import aggregate

logger = logging.getLogger(__name__)


class PRMAppArgs(BaseModel):
    """Arguments of :func:`build_app` (the ``args`` block of configs/serve/prm.yaml).

    Attributes:
        checkpoint: ``<train output_dir>/prm`` folder; ``None`` serves the untrained PRM.
        model: :class:`PRMModelConfig` fields (ignored when the checkpoint carries its config).
        prompt: :class:`PromptConfig` fields (idem).
        aggregation: solution score from step scores: min, mean, last or product.
        max_batch_size: requests per forward pass (``@serve.batch``); 1 disables batching.
        batch_wait_timeout_s: how long a batch waits to fill.
        max_steps: most steps per request.
        max_chars: most characters of text per request.
        max_body_bytes: larger request bodies are refused before parsing.
        torch_threads: intra-op threads per replica.
        share_prefix: within a batch, run the prompt prefix that requests share (one
            question's Best-of-N candidates: system prompt, question and its evidence,
            options) once per group (:mod:`physio_ray.prm.prefix`); the same scores to float
            rounding (1e-5 in float32).
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    checkpoint: str | None = None
    model: dict[str, Any] = Field(default_factory=dict)
    prompt: dict[str, Any] = Field(default_factory=dict)
    aggregation: str = "min"
    max_batch_size: int = Field(8, ge=1, le=256)
    batch_wait_timeout_s: float = Field(0.01, ge=0.0)
    max_steps: int = Field(16, ge=1)
    max_chars: int = Field(16_000, ge=100)
    max_body_bytes: int = Field(262_144, ge=1024)
    torch_threads: int | None = 1
    share_prefix: bool = True


class ScoreRequest(BaseModel):
    """Body of ``POST /score``."""

    model_config = ConfigDict(extra="forbid")

    question: str
    options: list[str] = Field(default_factory=list)
    steps: list[str]
    features: list[list[float]] | None = None


class ScoreResponse(BaseModel):
    """Answer of ``POST /score``."""

    step_scores: list[float]
    score: float
    aggregation: str


api = FastAPI(title="physio_ray PRM scoring")


# max_ongoing_requests as configs/serve/prm.yaml: Serve's default (5) would cap every batch at 5.
@serve.deployment(ray_actor_options={"num_cpus": 1}, max_ongoing_requests=32)
@serve.ingress(api)
class PRMScoringDeployment:
    """One replica: the PRM loaded once, requests batched into one forward pass."""

    def __init__(self, args: PRMAppArgs) -> None:
        import torch

        from physio_ray.prm.scoring import PRMScorer

        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        model_cfg = from_dict(PRMModelConfig, args.model) if args.model else None
        prompt = from_dict(PromptConfig, args.prompt) if args.prompt else None
        self.scorer = PRMScorer(model_cfg, args.checkpoint, prompt, args.aggregation, args.max_batch_size)
        self.args = args
        pose = self.scorer.model_cfg.vision.pose
        self.limits = RequestLimits(
            max_steps=args.max_steps,
            max_chars=args.max_chars,
            max_keyframes=pose.max_keyframes,
            feature_dim=pose.input_dim if self.scorer.model_cfg.vision.kind == "pose" else None,
        )
        self._score_batch.set_max_batch_size(args.max_batch_size)
        self._score_batch.set_batch_wait_timeout_s(args.batch_wait_timeout_s)
        self._scores(
            [request_example("Warm-up: is a knee angle of 90 degrees a full squat?", [], ["Step 1: no ки"], None)]
        )
        self.ready = True

    def check_health(self) -> None:
        """Serve's replica health check: fails when the model is gone."""
        if not getattr(self, "ready", False) or self.scorer.model is None:
            raise RuntimeError("PRM model is not loaded")

    @api.get("/healthz")
    def healthz(self) -> dict[str, Any]:
        """Liveness plus what is being served."""
        return {
            "status": "ok",
            "checkpoint": self.args.checkpoint,
            "text_model": self.scorer.model_cfg.text.model,
            "vision": self.scorer.model_cfg.vision.kind,
            "max_batch_size": self.args.max_batch_size,
        }

    @api.post("/score", response_model=ScoreResponse)
    async def score(self, request: Request) -> ScoreResponse:
        """Scores one solution; 422 with every problem when the request is malformed."""
        body = await request.body()
        if len(body) > self.args.max_body_bytes:
            raise HTTPException(422, f"request body of {len(body)} bytes exceeds {self.args.max_body_bytes} bytes")
        try:
            req = ScoreRequest.model_validate_json(body)
        except ValueError as exc:
            raise HTTPException(422, f"malformed request: {exc}") from exc
        problems = request_problems(req.question, req.options, req.steps, req.features, self.limits)
        if req.features is not None and self.scorer.model_cfg.vision.kind == "none":
            problems.append("this PRM is text-only (vision.kind=none); leave out features")
        if problems:
            raise HTTPException(422, "; ".join(problems))
        scores = await self._score_batch(request_example(req.question, req.options, req.steps, req.features))
        if scores is None:
            raise HTTPException(422, "the solution does not fit the prompt budget (prompt.max_length)")
        value = aggregate(scores, self.args.aggregation)
        return ScoreResponse(
            step_scores=[float(s) for s in scores],
            score=float(value) if math.isfinite(value) else 0.0,
            aggregation=self.args.aggregation,
        )

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def _score_batch(self, examples: list[Any]) -> list[np.ndarray | None]:
        # The forward pass runs on the event loop. In a worker thread (asyncio.to_thread) the loop
        # could take requests meanwhile, but the model's Python code and the request handling then
        # fight for the GIL: measured 1.5-2.2x vs 2.3-2.7x on the loop (bench_prm_serve.py, A/B).
        return self._scores(examples)

    def _scores(self, examples: list[Any]) -> list[np.ndarray | None]:
        from physio_ray.prm.scoring import score_examples

        return score_examples(
            self.scorer.model,
            self.scorer.prm_tok,
            examples,
            batch_size=len(examples),
            share_prefix=self.args.share_prefix,
        )


def build_app(args: dict[str, Any] | PRMAppArgs) -> serve.Application:
    """The Serve application (``serve run configs/serve/prm.yaml`` calls this with ``args``)."""
    parsed = args if isinstance(args, PRMAppArgs) else PRMAppArgs.model_validate(args or {})
    if parsed.checkpoint and "://" not in parsed.checkpoint:
        path = Path(parsed.checkpoint).resolve()
        if not path.exists():
            raise FileNotFoundError(
                f"PRM checkpoint {parsed.checkpoint!r} does not exist; train one with "
                "`python jobs/train_prm.py configs/train_prm/local.yaml` or set args.checkpoint: null"
            )
        parsed = parsed.model_copy(update={"checkpoint": str(path)})
    return PRMScoringDeployment.bind(parsed)
