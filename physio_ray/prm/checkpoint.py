"""PRM checkpoints on disk: the trained weights, the training state and the config to rebuild.

A checkpoint folder holds ``prm.pt`` (``{"model": trainable state dict, "state": training
state}``; the optimiser state lives in ``state``) and ``prm_config.json`` (the model and
prompt configs, so a scorer rebuilds exactly the trained architecture). The same layout is
used for Ray Train checkpoints and for the exported ``<output_dir>/prm`` folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from physio_ray.config import from_dict, to_dict
from physio_ray.prm.config import PRMModelConfig, PromptConfig

logger = logging.getLogger(__name__)

WEIGHTS = "prm.pt"
CONFIG = "prm_config.json"


def save_checkpoint(
    path: str | Path,
    model_state: dict[str, torch.Tensor],
    model_cfg: PRMModelConfig,
    prompt: PromptConfig,
    state: dict[str, Any] | None = None,
) -> Path:
    """Writes a checkpoint folder.

    Args:
        path: folder (created).
        model_state: :meth:`PRMModel.trainable_state_dict`.
        model_cfg: the architecture.
        prompt: the prompt settings used in training.
        state: training state (step, optimiser, scheduler, history, ...).

    Returns:
        The folder.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model_state, "state": state or {}}, folder / WEIGHTS)
    (folder / CONFIG).write_text(json.dumps({"model": to_dict(model_cfg), "prompt": to_dict(prompt)}, indent=2))
    return folder


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Reads ``(model_state, training_state)`` from a checkpoint folder.

    Raises:
        FileNotFoundError: when ``path`` holds no ``prm.pt``.
    """
    file = Path(path) / WEIGHTS
    if not file.is_file():
        raise FileNotFoundError(f"{path} is not a PRM checkpoint (no {WEIGHTS}); pass <train output_dir>/prm")
    blob = torch.load(file, map_location="cpu", weights_only=False)
    return blob["model"], blob.get("state", {})


def load_checkpoint_config(path: str | Path) -> tuple[PRMModelConfig, PromptConfig] | None:
    """The model and prompt configs saved with a checkpoint (``None`` for an older folder)."""
    file = Path(path) / CONFIG
    if not file.is_file():
        return None
    data = json.loads(file.read_text())
    return from_dict(PRMModelConfig, data["model"]), from_dict(PromptConfig, data["prompt"])
