"""LoRA supervised fine-tuning of the local policy on reference solutions (one plain torch loop).

The loss is on the target tokens only (the reference steps, the answer line and the end-of-turn
token); the prompt, which is the sampler's prompt rendered with the model's chat template, is
masked out. The loop is a plain function so that a Ray Train worker
(:func:`physio_ray.policy.loop.train_loop_per_worker`) and a bare GPU machine run the same code.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physio_ray.train_runtime import LoraSettings

logger = logging.getLogger(__name__)

IGNORE = -100
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class PolicySFTSettings:
    """How the policy adapter is trained (the ``sft:`` block of ``configs/train_policy``).

    Attributes:
        learning_rate: AdamW peak learning rate (linear warm-up, cosine decay to 10%).
        epochs: passes over the examples.
        batch_size: examples per optimiser step.
        max_length: prompt + target tokens kept (longer examples are dropped, with a count).
        warmup_fraction: share of the steps spent warming up.
        weight_decay: AdamW weight decay.
        max_steps: stop after this many steps (0: no limit).
        max_seconds: stop after this much training time (0: no limit); the cosine schedule is
            then laid over the steps the first steps' pace predicts (a CPU run on a time budget).
        seed: shuffling and adapter initialisation.
        bf16: compute in bfloat16 autocast (weights and optimiser stay float32); on a CPU with
            AVX-512 BF16 a step takes 0.65x the float32 time.
        lora: the adapter (all linear layers of every block by default).
    """

    learning_rate: float = 2e-4
    epochs: float = 3.0
    batch_size: int = 16
    max_length: int = 1024
    warmup_fraction: float = 0.05
    weight_decay: float = 0.0
    max_steps: int = 0
    max_seconds: float = 0.0
    seed: int = 0
    bf16: bool = True
    lora: LoraSettings = field(
        default_factory=lambda: LoraSettings(r=8, alpha=16, dropout=0.05, target_modules=ALL_LINEAR)
    )

    def __post_init__(self) -> None:
        if self.learning_rate <= 0 or self.epochs <= 0 or self.batch_size < 1 or self.max_length < 64:
            raise ValueError(
                f"sft: learning_rate={self.learning_rate}, epochs={self.epochs} must be > 0, "
                f"batch_size={self.batch_size} >= 1, max_length={self.max_length} >= 64"
            )
        if not 0 <= self.warmup_fraction < 1 or self.max_steps < 0 or self.max_seconds < 0:
            raise ValueError(
                f"sft: warmup_fraction={self.warmup_fraction} in [0, 1), max_steps={self.max_steps} >= 0, "
                f"max_seconds={self.max_seconds} >= 0"
            )


def render(tokenizer: Any, prompt: str) -> str:
    """The text the sampler's engine sends for ``prompt`` (chat template, generation prompt)."""
    return str(
        tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    )


def encode_example(tokenizer: Any, prompt: str, target: str) -> tuple[list[int], list[int]]:
    """Token ids and labels of one example: labels are ``-100`` on the prompt.

    The target is followed by the end-of-turn token (the tokenizer's eos), so the policy learns
    to stop after its answer line.

    Returns:
        ``(input_ids, labels)`` of equal length.
    """
    head = tokenizer(render(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    tail = tokenizer(target, add_special_tokens=False)["input_ids"] + [int(tokenizer.eos_token_id)]
    return head + tail, [IGNORE] * len(head) + tail


def _batches(encoded: list[tuple[list[int], list[int]]], size: int, rng: random.Random) -> list[list[int]]:
    """Index batches of similar lengths (less padding), in random order."""
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i][0]), rng.random()))
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(batches)
    return batches


def collate_left(encoded: Sequence[tuple[list[int], list[int]]], idx: Sequence[int], pad_id: int) -> dict[str, Any]:
    """Left-padded batch: every example ends at the last position, so its target is at the end.

    Rotary attention depends on relative positions only, so the shift left padding brings to
    absolute positions changes nothing but rounding.

    Returns:
        ``input_ids``, ``attention_mask`` and ``labels`` ``[batch, width]`` and ``target_width``,
        the longest target (the positions whose logits the loss needs).

    >>> b = collate_left([([5, 6, 7], [-100, 6, 7]), ([8, 9], [-100, 9])], [0, 1], 0)
    >>> b["input_ids"].tolist(), b["labels"].tolist(), b["target_width"]
    ([[5, 6, 7], [0, 8, 9]], [[-100, 6, 7], [-100, -100, 9]], 2)
    """
    import torch

    width = max(len(encoded[i][0]) for i in idx)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    labels = torch.full((len(idx), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    target = 1
    for row, i in enumerate(idx):
        x, y = encoded[i]
        ids[row, width - len(x) :] = torch.tensor(x)
        labels[row, width - len(y) :] = torch.tensor(y)
        mask[row, width - len(x) :] = 1
        target = max(target, sum(1 for t in y if t != IGNORE))
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "target_width": target}


def target_loss(model: Any, batch: Mapping[str, Any]) -> Any:
    """Mean cross-entropy over the target tokens, with logits computed only where they are needed.

    The vocabulary projection (49k x 576 for SmolLM2) over ~750 prompt positions is a fifth of a
    step's arithmetic; the loss needs it at the ``target_width`` last positions only.
    """
    import torch

    k = int(batch["target_width"])
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=k + 1).logits
    pred = logits[:, :-1, :].float()
    labels = batch["labels"][:, -k:]
    return torch.nn.functional.cross_entropy(pred.reshape(-1, pred.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)


def fit_policy(
    model: Any,
    tokenizer: Any,
    examples: Sequence[dict[str, Any]],
    settings: PolicySFTSettings,
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> tuple[Any, list[dict[str, float]]]:
    """Wraps ``model`` in a LoRA adapter and trains it on ``examples``.

    Args:
        model: the base causal LM (a private copy: it gets adapter layers), on its device.
        tokenizer: its tokenizer.
        examples: dicts with ``prompt`` and ``target`` (:func:`physio_ray.policy.data.sft_examples`).
        settings: optimiser, schedule and adapter.
        on_step: called after each step with ``{"step", "loss", "lr", "seconds"}``.

    Returns:
        ``(peft_model, history)``: the adapted model in eval mode and one record per step.

    Raises:
        ValueError: when no example fits ``max_length``.
    """
    import torch
    from peft import get_peft_model

    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    encoded = [encode_example(tokenizer, e["prompt"], e["target"]) for e in examples]
    kept = [e for e in encoded if len(e[0]) <= settings.max_length]
    if len(kept) < len(encoded):
        logger.warning(
            "%d of %d examples are longer than %d tokens and dropped",
            len(encoded) - len(kept),
            len(encoded),
            settings.max_length,
        )
    if not kept:
        raise ValueError(f"no example fits sft.max_length={settings.max_length}")
    device = next(model.parameters()).device
    peft_model = get_peft_model(model, settings.lora.to_peft())
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    per_epoch = math.ceil(len(kept) / settings.batch_size)
    total = max(1, round(per_epoch * settings.epochs))
    if settings.max_steps:
        total = min(total, settings.max_steps)
    plan = {"total": total, "warmup": max(1, int(total * settings.warmup_fraction))}
    at_step_3 = 0.0  # seconds elapsed when step 3 began (the second re-plan measures from there)

    def lr_at(step: int) -> float:
        if step < plan["warmup"]:
            return (step + 1) / plan["warmup"]
        progress = min(1.0, (step - plan["warmup"]) / max(1, plan["total"] - plan["warmup"]))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_at)
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    history: list[dict[str, float]] = []
    batches: list[list[int]] = []
    started = time.perf_counter()
    peft_model.train()
    for step in range(total):
        elapsed = time.perf_counter() - started
        if settings.max_seconds and step in (3, 23):  # re-plan the schedule on the measured pace
            # step 3: a first guess (the first steps pay for warm-up); step 23: the pace of steps
            # 3-22 (a plan from step 3 alone left 16% of a 45-min CPU budget unused)
            pace = elapsed / 3 if step == 3 else (elapsed - at_step_3) / 20
            at_step_3 = elapsed if step == 3 else at_step_3
            plan["total"] = min(total, max(step + 1, 4, step + int((settings.max_seconds - elapsed) / pace)))
            plan["warmup"] = max(1, int(plan["total"] * settings.warmup_fraction))
            logger.info(
                "time budget %.0f s at %.1f s per step: %d steps planned", settings.max_seconds, pace, plan["total"]
            )
        if step >= plan["total"] or (settings.max_seconds and elapsed >= settings.max_seconds):
            break
        if not batches:
            batches = _batches(kept, settings.batch_size, rng)
        batch = {
            k: v.to(device) if hasattr(v, "to") else v for k, v in collate_left(kept, batches.pop(), pad_id).items()
        }
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=settings.bf16):
            loss = target_loss(peft_model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        record = {
            "step": float(step + 1),
            "loss": float(loss.detach()),
            "lr": float(sched.get_last_lr()[0]),
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        if on_step is not None:
            on_step(record)
    peft_model.eval()
    return peft_model, history


def save_adapter(peft_model: Any, folder: str | Path, base_model: str | None = None) -> Path:
    """Saves the adapter in PEFT format with its weights in float16 (half the bytes, same merge).

    Args:
        peft_model: the trained PEFT model.
        folder: where to write.
        base_model: the base model's name as our configs call it (``smollm2-135m``), recorded
            instead of the local cache path it was loaded from (the engine merges the adapter
            into the model its own config names; the path would only leak this machine's layout).

    Returns:
        The folder (``adapter_config.json`` + ``adapter_model.safetensors``).
    """
    import json

    import torch
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    peft_model.save_pretrained(str(folder))
    if base_model is not None:
        config_file = folder / "adapter_config.json"
        config = json.loads(config_file.read_text())
        config["base_model_name_or_path"] = base_model
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    weights = folder / "adapter_model.safetensors"
    tensors = {k: v.to(torch.float16).contiguous() for k, v in load_file(str(weights)).items()}
    save_file(tensors, str(weights), metadata={"format": "pt"})
    return folder
