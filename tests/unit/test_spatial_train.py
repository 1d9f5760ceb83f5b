"""Spatial training pieces without Ray: tiny Qwen2-VL + offline processor, TRL rows, eval scoring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from physio_ray.config import ConfigError, from_dict, to_dict
from physio_ray.spatial.config import RenderedConfig, TrainSpatialConfig
from physio_ray.spatial.dataset import rendered_records
from physio_ray.spatial.evaluate import SpatialPredictor, attach_baselines, eval_rows, score_predictions, write_report
from physio_ray.spatial.records import write_records
from physio_ray.spatial.tiny_qwen2vl import (
    SPECIAL_TOKENS,
    TinyQwen2VLSpec,
    build_processor,
    build_tiny_model,
    build_tokenizer,
)
from physio_ray.spatial.train_data import grpo_dataset, load_records, sft_dataset, strip_image_tag

ANSWER = "<point x='79.2' y='20.8'>ring curette</point> in the top-right region."


@pytest.fixture(scope="module")
def processor():
    return build_processor()


@pytest.fixture(scope="module")
def tiny_model(processor):
    return build_tiny_model(processor)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six rendered frames (one val), written like the dataset builder does."""
    root = tmp_path_factory.mktemp("rendered")
    recs = rendered_records(root, RenderedConfig(count=6, seed=3, val_fraction=0.2))
    for kind, rows in recs.items():
        for split in ("train", "val"):
            write_records([r for r in rows if r["split"] == split], kind, root, split, ["parquet"])
    return root


def test_tokenizer_round_trips_and_spells_digits() -> None:
    tok = build_tokenizer(400)
    assert len(tok) == 400
    ids = tok(ANSWER).input_ids
    assert tok.decode(ids) == ANSWER
    digits = [tok.convert_ids_to_tokens(i) for i in tok("79.2").input_ids]
    assert digits == ["7", "9", ".", "2"]
    assert tok("never seen: zebra ✓").input_ids  # byte-level: any text encodes
    assert tok.decode(tok("never seen: zebra ✓").input_ids) == "never seen: zebra ✓"
    assert len({tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}) == len(SPECIAL_TOKENS)
    # deterministic: a second build gives the same ids
    assert build_tokenizer(400)(ANSWER).input_ids == ids


def test_processor_expands_the_image_and_masks_the_answer(processor, rendered: Path) -> None:
    from PIL import Image

    img = Image.open(rendered / "frames" / "frame_000000.jpg")
    msgs = [
        [
            {"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "Point."}]},
            {"role": "assistant", "content": [{"type": "text", "text": ANSWER}]},
        ]
    ]
    out = processor.apply_chat_template(
        msgs, tokenize=True, return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True
    )
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    # 256x144 -> 252x140 pixels -> 18x10 patches of 14 -> merged 2x2 -> 45 tokens
    assert out["image_grid_thw"].tolist() == [[1, 10, 18]]
    assert int((out["input_ids"] == image_id).sum()) == 45
    assert int(out["assistant_masks"].sum()) == len(processor.tokenizer(ANSWER).input_ids) + 1  # + <|im_end|>


def test_tiny_model_is_seeded_and_trains(processor, tiny_model, rendered: Path) -> None:
    import torch

    twin = build_tiny_model(processor, TinyQwen2VLSpec())
    other = build_tiny_model(processor, TinyQwen2VLSpec(seed=1))
    a, b, c = (dict(m.named_parameters()) for m in (tiny_model, twin, other))
    name = next(n for n in a if n.endswith("q_proj.weight"))
    assert torch.equal(a[name], b[name]) and not torch.equal(a[name], c[name])
    assert 150_000 < sum(p.numel() for p in tiny_model.parameters()) < 300_000
    ds = sft_dataset(load_records(rendered, "sft_stage1", "train"), rendered, ["primary"], 2)
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    batch = DataCollatorForVisionLanguageModeling(processor, assistant_only_loss=True)([ds[0], ds[1]])
    loss = twin(**batch).loss
    assert math.isfinite(loss.item()) and 4.0 < loss.item() < 8.0  # ~ln(400) = 6.0 at random init
    loss.backward()
    assert twin.lm_head.weight.grad.abs().sum() > 0


def test_trl_rows(rendered: Path) -> None:
    assert strip_image_tag("<image>\nPoint to the suction.") == "Point to the suction."
    assert strip_image_tag("no tag") == "no tag"
    recs = load_records(rendered, "sft_stage1", "train")
    ds = sft_dataset(recs, rendered, ["primary", "named"])
    assert len(ds) == len(recs)
    row = ds[0]
    assert row["messages"][0]["content"].startswith("Point to") and "<image>" not in row["messages"][0]["content"]
    assert row["images"][0].size == (256, 144)
    only_primary = sft_dataset(recs, rendered, ["primary"])
    assert len(only_primary) == sum(r["task"] == "primary" for r in recs) == 5
    g = grpo_dataset(load_records(rendered, "grpo", "train"), rendered)
    assert set(g.column_names) == {"prompt", "images", "instrument", "position_class"}
    assert len(g) == 5 and g[0]["prompt"][0]["role"] == "user"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sft_dataset(recs, rendered / "nowhere", ["primary"])
    with pytest.raises(FileNotFoundError, match="build_spatial_dataset"):
        load_records(rendered, "sft_stage2", "train")


def _targets_and_answers() -> tuple[list[dict], list[str]]:
    rows = [
        {"id": "a", "instrument": "suction", "position_class": 2, "data_origin": "rendered"},
        {"id": "b", "instrument": "ring_curette", "position_class": 3, "data_origin": "rendered"},
        {"id": "c", "instrument": "no_visible_instrument", "position_class": -1, "data_origin": "rendered"},
        {"id": "d", "instrument": "suction", "position_class": 4, "data_origin": "rendered"},
    ]
    answers = [
        "<point x='80' y='10'>suction</point> in the top-right region.",  # right class, inside, right name
        "<point x='10' y='10'>suction</point>",  # wrong class (1), wrong name
        "No surgical instrument is visible in this frame.",  # right
        "garbage",  # unparsed
    ]
    return rows, answers


def test_score_predictions_hand_computed(tmp_path: Path) -> None:
    rows, answers = _targets_and_answers()
    scored = score_predictions([{**r, "prediction": p} for r, p in zip(rows, answers, strict=True)], "sft")
    assert scored["data_origin"] == "rendered" and "rendered data" in scored["data_label"]
    assert scored["n_instrument_targets"] == 3 and scored["n_none_targets"] == 1
    assert scored["quadrant_accuracy"] == pytest.approx(1 / 3)
    assert scored["parse_rate"] == pytest.approx(2 / 3)
    assert scored["none_accuracy"] == 1.0
    # rewards: a = 1.0; b: distance (10,10) to centre box = hypot(15, 15) = 21.21 -> 0.5*(1-21.21/50) = 0.2879
    assert scored["mean_reward"] == pytest.approx((1.0 + 0.5 * (1 - math.hypot(15, 15) / 50) + 1.0 + 0.0) / 4)
    # F1: suction p=1/2 r=1/2; ring_curette 0; none 1 -> macro (0.5 + 0 + 1) / 3
    assert scored["instrument_macro_f1"] == pytest.approx(0.5)
    paths = write_report({"base": scored, "sft": scored}, tmp_path / "eval")
    assert json.loads(Path(paths["json"]).read_text())["sft"]["quadrant_accuracy"] == pytest.approx(1 / 3)
    md = Path(paths["markdown"]).read_text()
    assert "rendered data" in md and "| sft |" in md and "top-right" in md
    assert Path(paths["png"]).stat().st_size > 1000


def test_score_predictions_headline_figures_and_baselines(tmp_path: Path) -> None:
    rows, answers = _targets_and_answers()
    points = {"a": (80.0, 12.0), "b": (50.0, 50.0), "d": (20.0, 80.0)}
    predicted = [{**r, "prediction": p} for r, p in zip(rows, answers, strict=True)]
    scored = score_predictions(predicted, "sft", points)
    assert scored["quadrant_accuracy"] == pytest.approx(1 / 3) and scored["n_quadrant"] == 3
    lo, hi = scored["quadrant_accuracy_ci"]
    assert lo < 1 / 3 < hi
    # a: (80,10) vs (80,12) -> 1; b: (10,10) vs (50,50) -> 40; d: unparsed -> centre (50,50) vs (20,80) -> 30
    assert scored["coord_mae"] == pytest.approx((1 + 40 + 30) / 3) and scored["n_coord"] == 3
    assert scored["instrument_f1"] == pytest.approx(scored["instrument_macro_f1"])
    assert scored["mean_reward_ci"][0] <= scored["mean_reward"] <= scored["mean_reward_ci"][1]
    base = score_predictions([{**r, "prediction": "garbage"} for r in rows], "base", points)
    train = [{"instrument": "suction", "position_class": 4, "point": (20.0, 80.0)}] * 2
    targets = [
        {**t, "point": points.get(r["id"])}
        for r, t in zip(rows, [dict(e["target"]) for e in scored["examples"]], strict=True)
    ]
    reports = attach_baselines({"base": base, "sft": scored}, train, targets)
    b = reports["sft"]["baselines"]
    assert b["majority_prediction"]["position_class"] == 4 and b["quadrant_accuracy"] == pytest.approx(1 / 3)
    assert b["untrained"]["quadrant_accuracy"] == 0.0 and "untrained" not in reports["base"]["baselines"]
    assert set(b) >= {"quadrant_accuracy", "coord_mae", "instrument_f1"}
    none_only = attach_baselines(
        {"sft": scored}, [{"instrument": "no_visible_instrument", "position_class": None}], targets
    )
    assert "missing" in none_only["sft"]["baselines"]
    paths = write_report(reports, tmp_path / "eval")
    saved = json.loads(Path(paths["json"]).read_text())
    assert set(saved["sft"]["baselines"]) >= {"quadrant_accuracy", "coord_mae", "instrument_f1"}
    assert "most common region" in Path(paths["markdown"]).read_text()


def test_predictor_answers_and_flags_missing_images(rendered: Path) -> None:
    rows = eval_rows(load_records(rendered, "grpo", "val"), rendered, None)
    assert len(rows) == 1 and rows[0]["data_origin"] == "rendered"
    rows.append({**rows[0], "id": "missing", "image_path": str(rendered / "nope.jpg")})
    batch = {k: np.array([r[k] for r in rows], dtype=object) for k in rows[0]}
    pred = SpatialPredictor("tiny-qwen2vl", tiny=None, max_new_tokens=6)
    out = pred(batch)
    assert isinstance(out["prediction"][0], str) and out["error"][0] is None
    assert out["prediction"][1] == "" and "nope.jpg" in out["error"][1]
    # the same random-init model answers the same (greedy)
    assert pred(batch)["prediction"][0] == out["prediction"][0]


def test_train_config_validation() -> None:
    cfg = from_dict(TrainSpatialConfig, {"dataset_dir": "d", "output_dir": "o"})
    assert cfg.lora.r == 16 and cfg.lora.alpha == 32 and cfg.sft.lr == 2e-5 and cfg.sft.epochs == 3
    assert cfg.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    with pytest.raises(ConfigError, match="num_generations"):
        from_dict(TrainSpatialConfig, {"dataset_dir": "d", "output_dir": "o", "grpo": {"batch_size": 6}})
    with pytest.raises(ConfigError, match="stages"):
        from_dict(TrainSpatialConfig, {"dataset_dir": "d", "output_dir": "o", "stages": ["train"]})
    with pytest.raises(ConfigError, match="tasks"):
        from_dict(TrainSpatialConfig, {"dataset_dir": "d", "output_dir": "o", "sft": {"tasks": ["stage2"]}})


def test_lora_config_maps_the_yaml() -> None:
    cfg = from_dict(
        TrainSpatialConfig,
        {"dataset_dir": "d", "output_dir": "o", "lora": {"r": 8, "alpha": 16, "modules_to_save": ["lm_head"]}},
    )
    lc = cfg.lora.to_peft()
    assert (lc.r, lc.lora_alpha) == (8, 16)
    assert set(lc.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert set(lc.modules_to_save) == {"lm_head"}


def test_old_run_name_key_still_works_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="physio_ray.train_runtime"):
        cfg = from_dict(TrainSpatialConfig, {"dataset_dir": "d", "output_dir": "o", "run_name": "old"})
    assert cfg.run.name == "old" and cfg.run_name is None
    assert "'run_name' is deprecated" in caplog.text and "'run.name'" in caplog.text
    assert from_dict(TrainSpatialConfig, to_dict(cfg)) == cfg  # the worker's round trip
    new = from_dict(TrainSpatialConfig, {"dataset_dir": "d", "output_dir": "o", "run": {"name": "old"}})
    assert new == cfg and new.run.storage("o").endswith("o/ray_results")


def test_stage_trainer_args(tmp_path: Path) -> None:
    from physio_ray.spatial.train import _common_args

    cfg = from_dict(TrainSpatialConfig, {"dataset_dir": "d", "output_dir": "o"})
    assert _common_args(cfg, tmp_path, 1e-3, 5, 2) == {
        "output_dir": str(tmp_path),
        "learning_rate": 1e-3,
        "save_strategy": "steps",
        "save_steps": 5,
        "logging_steps": 2,
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "fp16": False,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "save_only_model": False,
    }


def test_vision_lr_multiplier_splits_the_optimiser_groups(processor, tmp_path: Path) -> None:
    from transformers import Trainer, TrainingArguments

    from physio_ray.spatial.train import scale_vision_lr

    model = build_tiny_model(processor)
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, use_cpu=True, report_to=[])
    trainer = Trainer(model=model, args=args)
    assert scale_vision_lr(trainer, 1.0) == 0 and trainer.optimizer is None  # 1.0: the trainer's own optimiser
    n_vision = sum(1 for n, _ in model.named_parameters() if ".visual." in f".{n}.")
    assert scale_vision_lr(trainer, 10.0) == n_vision > 0
    seen: dict[int, float] = {}
    for group in trainer.optimizer.param_groups:
        for p in group["params"]:
            assert id(p) not in seen, "a parameter sits in two groups"
            seen[id(p)] = group["lr"]
    assert len(seen) == sum(1 for _ in model.parameters())
    for name, p in model.named_parameters():
        assert seen[id(p)] == pytest.approx(1e-2 if ".visual." in f".{name}." else 1e-3), name
    # the optimiser the trainer reuses keeps the ratio through its scheduler
    trainer.create_scheduler(num_training_steps=10, optimizer=trainer.optimizer)
    lrs = sorted({round(g["initial_lr"], 9) for g in trainer.optimizer.param_groups})
    assert lrs == [1e-3, 1e-2]


def test_finetune_mode_selects_lora_or_every_weight(tmp_path: Path) -> None:
    from physio_ray.spatial.train import _peft_config

    base = {"dataset_dir": str(tmp_path), "output_dir": str(tmp_path / "o")}
    assert _peft_config(from_dict(TrainSpatialConfig, base)) is not None  # seed 001: LoRA
    assert _peft_config(from_dict(TrainSpatialConfig, {**base, "finetune": "full"})) is None
    with pytest.raises(ConfigError):
        from_dict(TrainSpatialConfig, {**base, "finetune": "partial"})
    with pytest.raises((ConfigError, ValueError), match="vision_lr_multiplier"):
        from_dict(TrainSpatialConfig, {**base, "sft": {"vision_lr_multiplier": 0}})


def test_holdout_curve_scores_and_plots(processor, rendered: Path, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from physio_ray.spatial.curve import CURVE_KEYS, HoldoutCurve, curve_points, plot_curve
    from physio_ray.spatial.train_data import record_targets, true_points

    records = load_records(rendered, "grpo", "train")[:3]
    rows = eval_rows(records, rendered, None)
    targets = record_targets(records, true_points(rendered, "train"))
    model = build_tiny_model(processor).train()
    processor.tokenizer.padding_side = "right"
    curve = HoldoutCurve(processor, rows, targets, every=2, max_new_tokens=4, batch_size=2)
    state = SimpleNamespace(global_step=1, max_steps=5, is_world_process_zero=True, log_history=[])
    curve.on_step_end(None, state, None, model=model)
    assert state.log_history == []  # step 1 is not due
    state.global_step = 2
    curve.on_step_end(None, state, None, model=model)
    (entry,) = state.log_history
    assert entry["step"] == 2 and entry["heldout_n"] == 3 and set(CURVE_KEYS) <= set(entry)
    # random weights never write a well-formed point: every quadrant wrong
    assert entry["heldout_quadrant_accuracy"] == 0.0
    assert model.training and processor.tokenizer.padding_side == "right"  # restored
    history = [{"step": 2, "loss": 3.0}, entry]
    assert curve_points(history)["loss"] == [(2, 3.0)]
    png = plot_curve(history, tmp_path / "curve.png", {"quadrant_accuracy": 0.24})
    assert png is not None and png.stat().st_size > 1000
    assert plot_curve([{"step": 1, "loss": 2.0}], tmp_path / "none.png") is None  # no held-out points
    with pytest.raises(ValueError, match="held-out rows"):
        HoldoutCurve(processor, rows, targets[:1], every=1)


def test_local_config_carries_what_it_took_to_learn() -> None:
    """The local recipe's knobs that moved held-out quadrant accuracy off the majority class."""
    from physio_ray.config import load_config

    cfg = load_config(TrainSpatialConfig, [str(Path(__file__).parents[2] / "configs/train_spatial/local.yaml")])
    tiny = cfg.model.tiny
    assert cfg.finetune == "full" and cfg.sft.vision_lr_multiplier == 10.0
    assert (tiny.rope_theta, tiny.spatial_rope_share, tiny.initializer_range) == (30.0, 0.5, 0.15)
    assert cfg.sft.curve_every > 0 and cfg.eval.max_examples == 500
    processor = build_processor(tiny)
    model = build_tiny_model(processor, tiny)
    head = tiny.hidden_size // tiny.num_heads
    assert model.config.text_config.rope_parameters["mrope_section"] == [0, head // 4, head // 4]
