"""Writing a matplotlib figure to a PNG: the one place every report plot goes through.

>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import matplotlib.pyplot as plt
>>> import tempfile, pathlib
>>> fig, ax = plt.subplots()
>>> _ = ax.plot([0, 1], [1, 0])
>>> out = save_figure(fig, pathlib.Path(tempfile.mkdtemp()) / "sub" / "plot.png")
>>> out.is_file(), plt.fignum_exists(fig.number)
(True, False)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["save_figure"]


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Lays ``fig`` out tightly, writes it to ``path`` (creating folders) and closes it.

    Args:
        fig: a ``matplotlib.figure.Figure``.
        path: the PNG to write.
        dpi: resolution.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    import matplotlib.pyplot as plt

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
