"""HFEngine on the real embedded SmolLM2-135M-Instruct: batching, n, seeds, costs, errors."""

from __future__ import annotations

import pytest
import torch

from physio_ray.llm.engine import EngineConfig, Generation, SamplingParams, TextEngine
from physio_ray.llm.hf_engine import HFEngine, trim_at_stop

PROMPTS = [
    "Name one muscle that extends the knee.",
    "In one short sentence: why should the knees track over the toes during a squat?",
    "Say yes.",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def engine() -> HFEngine:
    return HFEngine(EngineConfig(max_batch_size=4))


def test_engine_meets_the_protocol(engine: HFEngine) -> None:
    assert isinstance(engine, TextEngine)
    assert engine.device.type in ("cpu", "cuda")
    assert engine.render("hi").startswith("<|im_start|>") and engine.render("hi").rstrip().endswith("assistant")


def test_n_completions_per_prompt_and_costs(engine: HFEngine) -> None:
    params = SamplingParams(n=2, temperature=0.8, top_p=0.95, max_new_tokens=12, seed=0)
    gens = engine.generate(PROMPTS, params)
    assert len(gens) == 3 and all(g.error is None for g in gens)
    assert [len(g.texts) for g in gens] == [2, 2, 2]
    for prompt, gen in zip(PROMPTS, gens, strict=True):
        rendered = engine.tokenizer(engine.render(prompt), add_special_tokens=False)["input_ids"]
        assert gen.tokens_in == len(rendered)  # padding is not counted
        assert 2 <= gen.tokens_out <= 2 * 12
        assert gen.seconds > 0
        assert all(isinstance(t, str) and "<|im_end|>" not in t for t in gen.texts)
    # the three prompts are decoded in one forward pass: they share its wall time equally
    assert gens[0].seconds == gens[1].seconds == gens[2].seconds


def test_seeded_sampling_is_reproducible_and_leaves_global_rng_alone(engine: HFEngine) -> None:
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=123)
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    a = engine.generate(PROMPTS[:2], params)
    after = torch.rand(1)
    assert torch.equal(before, after)  # the caller's RNG stream is untouched
    b = engine.generate(PROMPTS[:2], params)
    assert [g.texts for g in a] == [g.texts for g in b]
    c = engine.generate(PROMPTS[:2], SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=124))
    assert [g.texts for g in a] != [g.texts for g in c]


def test_greedy_batched_equals_one_at_a_time(engine: HFEngine) -> None:
    """Left padding + attention mask: a padded prompt decodes as it would alone."""
    params = SamplingParams(n=3, temperature=0.0, max_new_tokens=10)
    batched = engine.generate(PROMPTS, params)
    single = [engine.generate([p], params)[0] for p in PROMPTS]
    assert [g.texts for g in batched] == [g.texts for g in single]
    for g in batched:
        assert g.texts[0] == g.texts[1] == g.texts[2]  # greedy: n identical completions
        assert g.tokens_out % 3 == 0
    assert [g.tokens_out for g in batched] == [g.tokens_out for g in single]


def test_chunks_of_max_batch_size(engine: HFEngine) -> None:
    small = HFEngine(EngineConfig(max_batch_size=2))  # shares the memoised model
    assert small.model is engine.model
    gens = small.generate(PROMPTS, SamplingParams(n=1, temperature=0.0, max_new_tokens=6))
    ref = engine.generate(PROMPTS, SamplingParams(n=1, temperature=0.0, max_new_tokens=6))
    assert [g.texts for g in gens] == [g.texts for g in ref]
    assert gens[0].seconds == gens[1].seconds != gens[2].seconds  # two chunks: 2 + 1 prompts


def test_stop_strings_cut_the_completion(engine: HFEngine) -> None:
    (gen,) = engine.generate(
        ["List three leg muscles, one per line."],
        SamplingParams(n=2, temperature=0.7, max_new_tokens=24, seed=1, stop=("\n",)),
    )
    assert gen.error is None and all("\n" not in t for t in gen.texts)
    assert trim_at_stop("a\nb", ("\n", "")) == "a" and trim_at_stop("abc", ()) == "abc"


def test_raw_prompts_without_chat_template(engine: HFEngine) -> None:
    raw = HFEngine(EngineConfig(chat_template=False))
    assert raw.render("Knee extension is done by the") == "Knee extension is done by the"
    (gen,) = raw.generate(["Knee extension is done by the"], SamplingParams(n=1, temperature=0.0, max_new_tokens=4))
    assert gen.error is None and 1 <= gen.tokens_out <= 4 and gen.tokens_in >= 6


def test_a_failed_chunk_becomes_error_rows(engine: HFEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    eng = HFEngine(EngineConfig(max_batch_size=1))
    real = eng._generate_chunk

    def flaky(prompts: list[str], params: SamplingParams, seed: int | None) -> list[Generation]:
        if "BOOM" in prompts[0]:
            raise RuntimeError("out of memory (simulated)")
        return real(prompts, params, seed)

    monkeypatch.setattr(eng, "_generate_chunk", flaky)
    gens = eng.generate(["Say yes.", "BOOM", "Say no."], SamplingParams(n=2, temperature=0.0, max_new_tokens=3))
    assert [g.error for g in gens] == [None, "RuntimeError: out of memory (simulated)", None]
    assert gens[1].texts == [] and len(gens[0].texts) == len(gens[2].texts) == 2


def test_generated_length_counts_eos_once_and_no_padding(engine: HFEngine) -> None:
    eos = next(iter(engine.eos_ids))
    assert engine._generated_length([5, 6, eos, engine.pad_id, engine.pad_id]) == 3
    assert engine._generated_length([5, 6, 7]) == 3


@pytest.mark.gpu
def test_cuda_engine_runs_on_the_gpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    eng = HFEngine(EngineConfig(dtype="bfloat16", max_batch_size=8))
    assert eng.device.type == "cuda"
    gens = eng.generate(PROMPTS, SamplingParams(n=4, temperature=0.8, max_new_tokens=16, seed=0))
    assert all(g.error is None and len(g.texts) == 4 for g in gens)


def test_prefix_is_prompted_but_not_returned(engine: HFEngine) -> None:
    plain = SamplingParams(n=1, temperature=0.0, max_new_tokens=4)
    prefixed = SamplingParams(n=1, temperature=0.0, max_new_tokens=4, prefix="Step 1:")
    (a,) = engine.generate([PROMPTS[0]], plain)
    (b,) = engine.generate([PROMPTS[0]], prefixed)
    n_prefix = len(engine.tokenizer("Step 1:", add_special_tokens=False)["input_ids"])
    assert b.tokens_in == a.tokens_in + n_prefix
    assert not b.texts[0].startswith("Step 1:") and a.texts != b.texts


def test_shared_prefix_prompts_decode_as_they_would_alone(engine: HFEngine) -> None:
    """Solution prompts share ~240 tokens; that prefix is prefilled once, the rest after padding."""
    from physio_ray.llm.hf_engine import common_prefix_length
    from physio_ray.llm.sampler import solution_prompt

    features = {"knee_min_deg": 92.4, "rep_count": 3}
    prompts = [
        solution_prompt("How deep was the squat?", ["Deep", "Parallel", "Half", "Quarter"], features),
        solution_prompt("How many repetitions?", ["1", "2", "3", "4"], features),
    ]
    tokens = [engine.tokenizer(engine.render(p))["input_ids"] for p in prompts]
    assert common_prefix_length(tokens) >= 200  # the path under test is really taken
    params = SamplingParams(n=2, temperature=0.0, max_new_tokens=8, prefix="Step 1:")
    batched = engine.generate(prompts, params)
    single = [engine.generate([p], params)[0] for p in prompts]
    assert [g.texts for g in batched] == [g.texts for g in single]
    assert [g.tokens_in for g in batched] == [len(t) + len(engine.tokenizer("Step 1:")["input_ids"]) for t in tokens]


def test_top_k_nucleus_keeps_the_tokens_hf_top_p_keeps(engine: HFEngine) -> None:
    """The candidates-first filter against transformers' full-sort TopPLogitsWarper, real logits."""
    from transformers import TopPLogitsWarper

    from physio_ray.llm.nucleus import TopKNucleus

    enc = engine.tokenizer([engine.render(p) for p in PROMPTS], return_tensors="pt", padding=True, padding_side="left")
    with torch.inference_mode():
        logits = engine.model(**enc).logits[:, -1, :].float()
    flat = torch.randn(2, logits.shape[1]) * 0.01  # nearly uniform: 256 candidates cannot reach p
    rows = torch.cat([logits / 0.8, logits / 2.0, flat])
    for p in (0.5, 0.9, 0.95):
        fast, ref = TopKNucleus(p), TopPLogitsWarper(top_p=p)
        ids = torch.zeros((rows.shape[0], 1), dtype=torch.long)
        differ = (torch.isinf(fast(ids, rows.clone())) != torch.isinf(ref(ids, rows.clone()))).nonzero().tolist()
        # HF's float32 cumulative sum over the whole vocabulary is off by ~1e-6; a token whose
        # more likely neighbours hold p +- that much may fall either way (0.8 / 0.95 has one)
        probs = rows.softmax(dim=-1)
        for r, t in differ:
            assert abs(probs[r][probs[r] > probs[r, t]].sum().item() - p) < 1e-5
        assert len(differ) <= 1
        # at temperature 0.8 the nucleus lies among the candidates; at 2.0 (hundreds of tokens
        # even at p = 0.5) and on the flat rows the full row is sorted
        assert fast.fallback_rows == 5
    kept = (~torch.isinf(TopKNucleus(0.95)(ids, rows.clone()))).sum(dim=1)
    assert kept[:3].max() < 256 < kept[3:].min()
    with pytest.raises(ValueError, match="top_p"):
        TopKNucleus(1.0)


def test_letter_probabilities_and_forced_choice(engine: HFEngine) -> None:
    from physio_ray.llm.choice import choose_letters, letter_probabilities

    prompts = ["Pick a letter.", "Pick a letter."]
    # (the 135M model copies a repeated A or B; after "Answer: D" x3 it still prefers B: p 0.41 vs 0.18)
    prefixes = ["Answer: B\nAnswer: B\nAnswer: B\nAnswer:", "Answer: A\nAnswer: A\nAnswer: A\nAnswer:"]
    probs = letter_probabilities(engine, prompts, prefixes, "ABCD")
    assert [round(sum(p), 6) for p in probs] == [1.0, 1.0]
    assert choose_letters(engine, prompts, prefixes, "ABCD") == ["B", "A"]  # the repeated letter wins
    assert probs[0][1] > 0.5 and probs[1][0] > 0.5
    with pytest.raises(ValueError, match="prefixes"):
        letter_probabilities(engine, prompts, prefixes[:1], "ABCD")
