"""The layer order of physio_ray, stated once: a module imports only from its own layer or below.

Layer 0 (the foundation) is every top-level module (``config``, ``schemas``, ``batches``,
``runtime``, ``registry``, ``labels``, this one, and any new top-level helper). Each higher layer
is a set of subpackages that may use everything beneath it:

======  ===========================================================
layer   packages
======  ===========================================================
0       top-level modules of ``physio_ray``
1       ``video``: decoding, pose, angles, keyframes and their configs
2       ``llm``: engines, the sampler, step and answer formats, evidence
3       ``annotate``, ``prm``, ``spatial``, ``clinical``, ``guidance``, ``policy``
4       ``tune``, ``quality``: sweeps and the quality report over them
======  ===========================================================

Packages of one layer may import each other, as long as no import circle forms.
``tests/unit/test_layering.py`` reads :data:`LAYERS` and fails on an import that points up, on
any import circle, and on a subpackage missing from this table (add it here first).

>>> layer_of("physio_ray.schemas"), layer_of("physio_ray.video.angles"), layer_of("physio_ray.tune")
(0, 1, 4)
>>> layer_of("physio_ray.prm.metrics") == layer_of("physio_ray.guidance")
True
"""

from __future__ import annotations

from pathlib import Path

ROOT = "physio_ray"
_PACKAGE_DIR = Path(__file__).resolve().parent

LAYERS: tuple[frozenset[str], ...] = (
    frozenset(),  # the foundation: top-level modules, no subpackage
    frozenset({"video"}),
    frozenset({"llm"}),
    frozenset({"annotate", "prm", "spatial", "clinical", "guidance", "policy"}),
    frozenset({"tune", "quality"}),
)
"""Subpackages of ``physio_ray`` per layer, lowest first; index = layer number."""


def layer_of(module: str) -> int:
    """The layer of a ``physio_ray`` module or package.

    Args:
        module: a dotted module name inside ``physio_ray``, e.g. ``"physio_ray.llm.sampler"``.

    Returns:
        The index into :data:`LAYERS`; 0 for ``physio_ray`` itself and its top-level modules.

    Raises:
        ValueError: when ``module`` is outside ``physio_ray`` or in a subpackage no layer lists.

    >>> layer_of("physio_ray")
    0
    >>> layer_of("physio_ray.nowhere.x")
    Traceback (most recent call last):
    ...
    ValueError: physio_ray.nowhere is in no layer of physio_ray.layers.LAYERS; add it to the right layer
    """
    parts = module.split(".")
    if parts[0] != ROOT:
        raise ValueError(f"{module} is not a {ROOT} module")
    if len(parts) == 1:
        return 0
    for index, packages in enumerate(LAYERS):
        if parts[1] in packages:
            return index
    if len(parts) == 2 and not (_PACKAGE_DIR / parts[1]).is_dir():
        return 0  # a top-level module such as physio_ray.config
    raise ValueError(f"{ROOT}.{parts[1]} is in no layer of {ROOT}.layers.LAYERS; add it to the right layer")
