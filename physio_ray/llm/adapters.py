"""A causal LM with a LoRA adapter merged into its weights, loaded once per process.

The policy adapter (``jobs/train_policy.py``; the one the demo uses ships in ``models/``) is
small (a few MB of LoRA matrices); merging it
makes the adapted model exactly as fast as the base one, so the engine's batching and prefix
sharing are unchanged.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from physio_ray.llm.smollm2 import load_causal_lm

logger = logging.getLogger(__name__)

_REPO_ROOT = Path(__file__).resolve().parents[2]
_LOCK = threading.Lock()
_MEMO: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def resolve_adapter(adapter: str) -> Path:
    """The adapter folder: ``adapter`` as given, else relative to the repository root.

    Args:
        adapter: a folder path holding ``adapter_config.json`` (PEFT format).

    Returns:
        The absolute folder.

    Raises:
        FileNotFoundError: naming both places looked at, when neither holds ``adapter_config.json``.
    """
    for base in (Path.cwd(), _REPO_ROOT):
        path = (base / adapter).expanduser().resolve()
        if (path / "adapter_config.json").is_file():
            return path
    raise FileNotFoundError(
        f"no LoRA adapter at {adapter!r} (looked in {Path.cwd()} and {_REPO_ROOT} for adapter_config.json); "
        "train one with `python jobs/train_policy.py configs/train_policy/local.yaml` or drop engine.adapter"
    )


def load_adapted_lm(model: str, dtype: str, adapter: str) -> tuple[Any, Any]:
    """Loads ``model`` (as :func:`~physio_ray.llm.smollm2.load_causal_lm`) with ``adapter`` merged in.

    Args:
        model: the base model name or folder (``smollm2-135m``).
        dtype: ``float32``, ``bfloat16`` or ``float16``.
        adapter: the adapter folder (see :func:`resolve_adapter`).

    Returns:
        ``(model, tokenizer)`` in eval mode; shared per ``(model, dtype, adapter)`` in this process,
        so it must not be mutated.

    Raises:
        FileNotFoundError: when the adapter is missing.
        ValueError: when the adapter was trained on another base model (shapes do not match).
    """
    from peft import PeftModel

    path = resolve_adapter(adapter)
    key = (model, dtype, str(path))
    with _LOCK:
        if key in _MEMO:
            return _MEMO[key]
        start = time.perf_counter()
        base, tokenizer = load_causal_lm(model, dtype, memo=False)
        try:
            merged = PeftModel.from_pretrained(base, str(path)).merge_and_unload()
        except RuntimeError as exc:  # size mismatch: an adapter of another base model
            raise ValueError(f"adapter {path} does not fit model {model!r}: {exc}") from exc
        merged.eval()
        logger.info("loaded %s + adapter %s in %.1f s", model, path, time.perf_counter() - start)
        _MEMO[key] = (merged, tokenizer)
        return merged, tokenizer
