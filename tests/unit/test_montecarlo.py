"""Selective Monte-Carlo: label rules, the rollout schedule, its simulation on Med-PRM labels,
and the annotator over a scripted engine and over the real SmolLM2 engine."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from physio_ray import schemas as S
from physio_ray.annotate.config import MonteCarloConfig
from physio_ray.annotate.labels import combine_labels, mc_hard_label, needs_mc, reuse_closure
from physio_ray.annotate.montecarlo import MonteCarloAnnotator, rollout_prompt
from physio_ray.annotate.rollouts import RolloutPlan, budget_soft_errors, simulate_adaptive
from physio_ray.labels import zero_after_first_error
from physio_ray.llm.engine import Generation, SamplingParams
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def medprm() -> list[dict]:
    return json.loads(shared_path("medprm-samples", "medprm_samples_80.json").read_text())


# ------------------------------------------------------------------ label rules (hand-computed)


def test_mc_hard_label_rule() -> None:
    assert [mc_hard_label(s) for s in (0.0, 1 / 16, 0.5, 1.0)] == [0, 1, 1, 1]
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="fraction"):
            mc_hard_label(bad)


def test_needs_mc_threshold_is_strict_and_abstentions_always_go() -> None:
    assert needs_mc([1, 0, None, 1], [0.7, 0.69999, 0.99, 0.0], 0.7) == [False, True, True, True]
    with pytest.raises(ValueError, match="2 steps"):
        needs_mc([1, 0], [0.5], 0.7)


def test_combine_labels_every_method() -> None:
    labels, soft, methods = combine_labels(
        [1, 0, 1, 0, None, 1],
        [0.95, 0.92, 0.65, 0.3, 0.0, 0.1],
        [None, 0.9, 13 / 16, 0.0, None, None],
        0.7,
        mc_sources=[None, "mc", "mc", "mc", "mc_reuse", "solution"],
    )
    # a confident judge wins even when an MC score exists (step 1)
    assert labels == [1, 0, 1, 0, 1, 1]
    assert soft == [1.0, 0.0, 0.8125, 0.0, 1.0, 1.0]
    assert methods == ["rag", "rag", "mc_0.81", "mc_0.00", "mc_reuse", "solution"]


def test_combine_labels_without_sources_reads_scores_as_mc() -> None:
    assert combine_labels([0, 1], [0.2, 0.8], [0.0625, None], 0.7) == ([1, 1], [0.0625, 1.0], ["mc_0.06", "rag"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mc_scores": [None, None]}, "step 1 needs Monte-Carlo"),
        ({"mc_scores": [None]}, "length mismatch"),
        ({"mc_scores": [None, 0.5], "mc_sources": [None, "oracle"]}, "unknown MC source"),
        ({"mc_scores": [None, None], "mc_sources": [None, "mc"]}, "no MC score"),
    ],
)
def test_combine_labels_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        combine_labels([1, 1], [0.9, 0.1], threshold=0.7, **kwargs)


def test_zero_after_first_error_and_reuse_closure_by_hand() -> None:
    assert zero_after_first_error([1, 1, 0, 1, 0, 1]) == [1, 1, 0, 0, 0, 0]
    assert zero_after_first_error([1, 1]) == [1, 1]
    assert zero_after_first_error([]) == []
    assert reuse_closure([1, 0, 1, 0, 0]) == [1, 1, 1, 0, 0]
    assert reuse_closure([0, 0]) == [0, 0]


# ------------------------------------------------------------------ rules on real Med-PRM records


def test_medprm_hard_labels_follow_the_soft_rule(medprm: list[dict]) -> None:
    steps = [(s, h) for r in medprm for s, h in zip(r["prm_soft_label"], r["prm_hard_label"], strict=True)]
    assert len(steps) == 482
    assert all(mc_hard_label(s) == h for s, h in steps)


def test_medprm_zero_after_first_error_changes_exactly_the_0_to_1_gemini_labels(medprm: list[dict]) -> None:
    changed = [r["sample_id"] for r in medprm if zero_after_first_error(r["prm_gemini_label"]) != r["prm_gemini_label"]]
    assert changed == [1, 4, 23, 35, 40, 45, 47, 69, 72, 76]
    first = medprm[0]  # sample 1: gemini [1, 1, 1, 0, 1, 0]
    assert zero_after_first_error(first["prm_gemini_label"]) == [1, 1, 1, 0, 0, 0]


def test_medprm_reuse_closure_fixes_exactly_the_0_to_1_mc_labels(medprm: list[dict]) -> None:
    fixed = [r["sample_id"] for r in medprm if reuse_closure(r["prm_hard_label"]) != r["prm_hard_label"]]
    assert fixed == [4, 5, 33, 40, 62]
    s4 = next(r for r in medprm if r["sample_id"] == 4)
    assert s4["prm_soft_label"] == [0.8125, 0.9375, 0.0, 0.0625, 0.0, 0.0, 0.0]
    assert reuse_closure(s4["prm_hard_label"]) == [1, 1, 1, 1, 0, 0, 0]
    # every correct solution has MC hard 1 at every step: the "solution" rule is exact here
    assert all(all(r["prm_hard_label"]) for r in medprm if r["is_correct"])


# ------------------------------------------------------------------ the rollout schedule


def test_plan_reuse_goes_last_to_first_and_labels_earlier_steps_for_free() -> None:
    plan = RolloutPlan([0, 1, 2], max_rollouts=8, batch=4, mode="adaptive", reuse=True)
    assert plan.requests() == [(2, 4)]
    plan.record(2, [False, False, True, False])
    assert plan.done
    assert plan.source == {0: "mc_reuse", 1: "mc_reuse", 2: "mc"}
    assert (plan.score(2), plan.score(1), plan.used) == (0.25, None, {0: 0, 1: 0, 2: 4})


def test_plan_without_reuse_samples_all_targets_together_until_budget() -> None:
    plan = RolloutPlan([1, 3], max_rollouts=6, batch=4, mode="adaptive", reuse=False)
    assert plan.requests() == [(1, 4), (3, 4)]
    plan.record(1, [False] * 4)
    plan.record(3, [False, True, False, False])
    assert plan.requests() == [(1, 2)]  # the remainder of the budget
    plan.record(1, [False, False])
    assert plan.done and plan.source == {1: "mc", 3: "mc"}
    assert (plan.score(1), plan.score(3)) == (0.0, 0.25)


def test_plan_full_mode_spends_the_budget_but_still_reuses() -> None:
    plan = RolloutPlan([0, 1], max_rollouts=8, batch=4, mode="full", reuse=True)
    plan.record(1, [True, False, False, False])
    assert plan.source == {0: "mc_reuse", 1: None}
    assert plan.requests() == [(1, 4)]
    plan.record(1, [True, True, False, False])
    assert plan.done and plan.score(1) == 3 / 8


def test_plan_correct_solution_needs_no_rollouts() -> None:
    plan = RolloutPlan([0, 2], max_rollouts=16, batch=4, reuse=True, solution_correct=True)
    assert plan.done and plan.requests() == [] and set(plan.source.values()) == {"solution"}
    no_rule = RolloutPlan([0], max_rollouts=16, batch=4, reuse=True, solution_correct=True, solution_rule=False)
    assert not no_rule.done


def test_plan_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="mode"):
        RolloutPlan([0], max_rollouts=4, batch=4, mode="exact")
    with pytest.raises(ValueError, match="batch"):
        RolloutPlan([0], max_rollouts=4, batch=5)


# ------------------------------------------------------------------ simulation


def test_simulate_by_hand() -> None:
    rng = np.random.default_rng(0)
    res = simulate_adaptive([1.0, 0.0], 4, 16, False, rng)
    assert (res.rollouts, res.hard, res.soft, res.sources) == ([4, 16], [1, 0], [1.0, 0.0], ["mc", "mc"])
    res = simulate_adaptive([1.0, 0.0], 1, 16, True, rng)
    assert (res.rollouts, res.hard) == ([1, 16], [1, 0])
    res = simulate_adaptive([0.0, 0.0625], 4, 16, True, rng)  # a 0 -> 1 pattern
    assert (res.rollouts[0], res.hard, res.sources[0]) == (0, [1, 1], "mc_reuse")
    res = simulate_adaptive([0.5, 0.0], 4, 16, True, rng, solution_correct=True)
    assert (res.rollouts, res.hard, res.sources) == ([0, 0], [1, 1], ["solution", "solution"])
    with pytest.raises(ValueError, match="multiple of 1/16"):
        simulate_adaptive([0.3], 4, 16, False, rng)
    with pytest.raises(ValueError, match="exceeds"):
        simulate_adaptive([0.5], 4, 32, False, rng)


def _replay(records: list[dict], batch: int, reuse: bool, seed: int = 0) -> tuple[int, list[int], list[int]]:
    rng = np.random.default_rng(seed)
    used, hard, ref = 0, [], []
    for r in records:
        res = simulate_adaptive(r["prm_soft_label"], batch, 16, reuse, rng, solution_correct=r["is_correct"])
        used += sum(res.rollouts)
        hard += res.hard
        ref += r["prm_hard_label"]
    return used, hard, ref


def test_simulation_on_medprm_keeps_every_hard_label_without_reuse(medprm: list[dict]) -> None:
    for batch in (1, 4):
        used, hard, ref = _replay(medprm, batch, reuse=False)
        assert hard == ref
        assert used < 0.40 * 16 * 482
    # step zeros need the full budget whatever the order: 16 * (zero steps) is a floor
    zeros = sum(s == 0 for r in medprm for s in r["prm_soft_label"])
    assert zeros == 67
    assert _replay(medprm, 4, reuse=False)[0] >= 16 * zeros


def test_simulation_on_medprm_with_reuse_matches_the_reuse_closure(medprm: list[dict]) -> None:
    used, hard, ref = _replay(medprm, 4, reuse=True)
    closure = [h for r in medprm for h in reuse_closure(r["prm_hard_label"])]
    assert hard == closure
    assert sum(a != b for a, b in zip(hard, ref, strict=True)) == 5  # the five 0 -> 1 MC quirks
    assert used <= 0.16 * 16 * 482  # ~15% of the 16-rollout budget


def test_budget_soft_errors() -> None:
    rng = np.random.default_rng(1)
    errs = budget_soft_errors([0.5, 1.0, 0.0, 0.25], [1, 16], rng)
    assert errs[16] == [0.0, 0.0, 0.0, 0.0]
    assert errs[1][0] == 0.5 and errs[1][1:3] == [0.0, 0.0] and errs[1][3] in (0.25, 0.75)
    with pytest.raises(ValueError, match="budgets"):
        budget_soft_errors([0.5], [0], rng)


# ------------------------------------------------------------------ the annotator, scripted engine


def test_rollout_prompt_lists_options_prefix_and_answer_format() -> None:
    p = rollout_prompt("Which joint?", ["hip", "knee", "ankle", "spine"], ["Step 1: look. ки", "Step 2: knee. ки"])
    assert "A) hip\nB) knee\nC) ankle\nD) spine" in p
    assert "Step 1: look. ки\nStep 2: knee. ки" in p
    assert '"Answer: X" where X is one of A, B, C, D' in p


class ScriptedEngine:
    """Answers from the last step in the prompt: a step containing 'GOOD' gets correct rollouts
    (answer B), 'HALF' alternates B / 'I think B' (unparseable), anything else answers C."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[list[str], SamplingParams]] = []
        self.fail_on = fail_on

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        self.calls.append((prompts, params))
        out = []
        for p in prompts:
            last = re.findall(r"^Step \d+:.*$", p, flags=re.M)[-1]
            if self.fail_on and self.fail_on in last:
                out.append(Generation(error="server said no"))
                continue
            if "GOOD" in last:
                texts = ["Step 9: so. ки\nAnswer: B"] * params.n
            elif "HALF" in last:
                texts = ["I think B", "Step 9: ok. ки\nAnswer: B"] * params.n
                texts = texts[: params.n]
            else:
                texts = ["Step 9: no. ки\nAnswer: C"] * params.n
            out.append(Generation(texts=texts, tokens_in=10, tokens_out=3 * params.n, seconds=0.5))
        return out


def _batch(rows: list[dict]) -> dict[str, np.ndarray]:
    cols = {}
    for key in rows[0]:
        arr = np.empty(len(rows), dtype=object)
        for i, r in enumerate(rows):
            arr[i] = np.asarray(r[key], dtype=object) if isinstance(r[key], list) else r[key]
        cols[key] = arr
    return cols


def _row(sid: str, steps: list[str], labels: list, conf: list[float], correct: bool = False, **kw: object) -> dict:
    row = {
        S.SOLUTION_ID: sid,
        S.QUESTION: "Which joint collapses inward?",
        S.OPTIONS: ["hip", "knee", "ankle", "spine"],
        S.ANSWER: "B",
        S.STEPS: steps,
        S.IS_CORRECT: correct,
        S.JUDGE_LABELS: labels,
        S.JUDGE_CONFIDENCES: conf,
        S.ERROR: None,
    }
    row.update(kw)
    return row


def _annotator(engine: ScriptedEngine, **cfg: object) -> MonteCarloAnnotator:
    base = {"max_rollouts": 8, "batch": 4, "mode": "adaptive", "reuse": True, "seed": 3}
    return MonteCarloAnnotator(MonteCarloConfig(**{**base, **cfg}), 0.7, engine=engine)


def test_annotator_batches_prefixes_of_several_solutions_and_reuses() -> None:
    engine = ScriptedEngine()
    rows = [
        # s1: steps 1 and 2 unsure; step 2 rolls out correctly -> step 1 by reuse
        _row("s1", ["Step 1: a. ки", "Step 2: GOOD. ки", "Step 3: c. ки"], [1, 0, 1], [0.5, 0.4, 0.8]),
        # s2: step 2 goes nowhere (8 rollouts), step 1 half right
        _row("s2", ["Step 1: HALF. ки", "Step 2: bad. ки"], [None, 1], [0.0, 0.3]),
        # s3: a correct solution: no rollouts at all
        _row("s3", ["Step 1: x. ки", "Step 2: y. ки"], [0, 1], [0.2, 0.95], correct=True),
    ]
    out = _annotator(engine)(_batch(rows))
    # round 1: s1 step 2 and s2 step 2 share one call; round 2: s2 step 2 again; round 3: s2 step 1
    assert [len(p) for p, _ in engine.calls] == [2, 1, 1]
    assert all(params.n == 4 and params.max_new_tokens == 128 for _, params in engine.calls)
    assert [params.seed for _, params in engine.calls] == [3, 4, 5]
    assert list(out[S.LABELS]) == [[1, 1, 1], [1, 0], [1, 1]]
    assert list(out[S.ANNOTATION_METHOD]) == [
        ["mc_reuse", "mc_1.00", "rag"],
        ["mc_0.50", "mc_0.00"],
        ["solution", "rag"],
    ]
    assert list(out[S.MC_SCORES]) == [[None, 1.0, None], [0.5, 0.0], [None, None]]
    assert list(out[S.MC_ROLLOUTS]) == [[0, 4, 0], [4, 8], [0, 0]]
    assert list(out[S.SOFT_LABELS]) == [[1.0, 1.0, 1.0], [0.5, 0.0], [1.0, 1.0]]
    assert list(out[S.COST_CALLS]) == [1, 3, 0]
    assert list(out[S.COST_ROLLOUTS]) == [4, 12, 0]
    assert list(out[S.COST_TOKENS_IN]) == [10, 30, 0]
    assert list(out[S.COST_TOKENS_OUT]) == [12, 36, 0]
    assert list(out[S.COST_SECONDS]) == [0.5, 1.5, 0.0]
    assert list(out[S.ERROR]) == [None, None, None]


def test_annotator_full_mode_without_reuse_spends_every_rollout() -> None:
    engine = ScriptedEngine()
    rows = [_row("s1", ["Step 1: GOOD. ки", "Step 2: GOOD. ки"], [1, 1], [0.1, 0.1], correct=True)]
    out = _annotator(engine, mode="full", reuse=False, max_rollouts=6)(_batch(rows))
    assert [(len(p), par.n) for p, par in engine.calls] == [(2, 4), (2, 2)]
    assert list(out[S.MC_ROLLOUTS]) == [[6, 6]] and list(out[S.ANNOTATION_METHOD]) == [["mc_1.00", "mc_1.00"]]


def test_annotator_errors_stay_in_their_rows() -> None:
    engine = ScriptedEngine(fail_on="BROKEN")
    rows = [
        _row("bad-len", ["Step 1: a. ки", "Step 2: b. ки"], [1], [0.9]),
        _row("engine", ["Step 1: BROKEN. ки"], [1], [0.1]),
        _row("upstream", ["Step 1: a. ки"], [1], [0.1], **{S.ERROR: "judge: timeout"}),
        _row("bad-answer", ["Step 1: a. ки"], [1], [0.1], **{S.ANSWER: "F"}),
        _row("fine", ["Step 1: GOOD. ки"], [0], [0.1]),
    ]
    out = _annotator(engine)(_batch(rows))
    errs = list(out[S.ERROR])
    assert "2 steps but 1 judge labels" in errs[0]
    assert "server said no" in errs[1]
    assert errs[2] == "judge: timeout"
    assert "'F' is not one of the 4 option letters" in errs[3]
    assert errs[4] is None and list(out[S.LABELS])[4] == [1]
    assert list(out[S.LABELS])[:4] == [[], [], [], []]
    assert list(out[S.COST_CALLS]) == [0, 1, 0, 0, 1]  # the failed call still cost a call


def test_annotator_takes_pandas_and_null_labels_from_parquet() -> None:
    engine = ScriptedEngine()
    frame = pd.DataFrame([_row("s1", ["Step 1: GOOD. ки", "Step 2: b. ки"], [float("nan"), 1.0], [0.0, 0.9])])
    out = _annotator(engine)(frame)
    assert isinstance(out, pd.DataFrame)
    assert out[S.ANNOTATION_METHOD].tolist() == [["mc_1.00", "rag"]]
    assert out[S.LABELS].tolist() == [[1, 1]]


# ------------------------------------------------------------------ the annotator, real SmolLM2


@pytest.fixture(scope="module")
def smollm_engine():  # noqa: ANN201
    from physio_ray.llm.engine import EngineConfig
    from physio_ray.llm.factory import build_engine

    return build_engine(EngineConfig(max_batch_size=16))


def test_annotator_on_real_medprm_questions_with_smollm2(medprm: list[dict], smollm_engine) -> None:  # noqa: ANN001
    picked = [r for r in medprm if r["sample_id"] in (1, 4)]  # both wrong solutions, answers B and A..D
    rows = []
    for r in picked:
        opts = [re.sub(r"^\s*[A-H]\.\s*", "", o) for o in r["options"].split("\n")]
        n = len(r["steps"])
        conf = [0.9 if k < n - 2 else 0.3 for k in range(n)]  # the last two steps go to MC
        rows.append(
            {
                S.SOLUTION_ID: f"medprm-{r['question_id']}",
                S.QUESTION: r["question"],
                S.OPTIONS: opts,
                S.ANSWER: r["correct_answer"],
                S.STEPS: r["steps"],
                S.IS_CORRECT: r["is_correct"],
                S.JUDGE_LABELS: r["prm_gemini_label"],
                S.JUDGE_CONFIDENCES: conf,
                S.ERROR: None,
            }
        )
    cfg = MonteCarloConfig(max_rollouts=2, batch=2, mode="adaptive", reuse=True, max_new_tokens=24, seed=0)
    out = MonteCarloAnnotator(cfg, 0.7, engine=smollm_engine)(_batch(rows))
    assert list(out[S.ERROR]) == [None, None]
    for k, r in enumerate(picked):
        methods = list(out[S.ANNOTATION_METHOD])[k]
        n = len(r["steps"])
        assert methods[: n - 2] == ["rag"] * (n - 2)
        assert all(m in ("mc_0.00", "mc_0.50", "mc_1.00", "mc_reuse") for m in methods[n - 2 :])
        assert methods[-1] in ("mc_0.00", "mc_0.50", "mc_1.00")  # the last step is always sampled
        assert 2 <= out[S.COST_ROLLOUTS][k] <= 4 and out[S.COST_TOKENS_OUT][k] > 0 and out[S.COST_SECONDS][k] > 0
