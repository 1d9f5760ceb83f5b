"""Reading clinical images and measuring what they actually contain.

The loader does not trust file names or manifests: it opens every image and records its mode,
size, grey levels and a content hash. Two measurements matter for this data set:

* a *binary* image (at most two grey levels) is a segmentation mask, not a scan; the BUSI
  "ultrasound" files here are such masks, and their foreground fraction is the drawn lesion area;
* two files with the same decoded pixels are the same image, whatever they are called; splits
  group scenarios by this pixel hash so one picture never sits in train and test.

Example:
    >>> import numpy as np
    >>> from PIL import Image
    >>> mask = Image.fromarray((np.eye(4) * 255).astype(np.uint8))
    >>> stats = image_stats_from_pil(mask)
    >>> (stats.is_binary, stats.foreground_fraction)
    (True, 0.25)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["ImageStats", "dhash64", "image_stats", "image_stats_from_pil", "load_rgb"]


@dataclass(frozen=True)
class ImageStats:
    """What one image file holds, measured from its pixels.

    Attributes:
        mode: PIL mode of the file as stored (``"1"`` for 1-bit masks, ``"L"``, ``"RGB"``).
        width: pixels.
        height: pixels.
        grey_levels: distinct values of the 8-bit greyscale rendering (1..256).
        is_binary: at most two grey levels, i.e. a mask or a thresholded picture, not a scan.
        foreground_fraction: share of pixels above mid-grey (for masks: the drawn region).
        is_greyscale: all three colour channels are equal (X-ray, MRI, masks).
        file_sha256: hash of the file bytes.
        pixel_sha256: hash of the decoded RGB pixels and their shape (same picture, any encoding).
        dhash: 64-bit difference hash of a 9x8 greyscale thumbnail (near-duplicate screening).
    """

    mode: str
    width: int
    height: int
    grey_levels: int
    is_binary: bool
    foreground_fraction: float
    is_greyscale: bool
    file_sha256: str
    pixel_sha256: str
    dhash: int


def load_rgb(path: str | Path) -> Image.Image:
    """Opens an image file as 8-bit RGB (1-bit masks and greyscale are expanded).

    Args:
        path: image file (PNG, JPEG, ...).

    Returns:
        A loaded ``PIL.Image.Image`` in mode ``"RGB"``.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        PIL.UnidentifiedImageError: when the file is not an image.
    """
    with Image.open(path) as img:
        img.load()
        return img.convert("RGB")


def dhash64(img: Image.Image) -> int:
    """Difference hash: 64 bits, one per horizontally adjacent pair of a 9x8 grey thumbnail.

    Args:
        img: any PIL image.

    Returns:
        An integer in ``[0, 2**64)``; similar pictures have a small Hamming distance.
    """
    thumb = np.asarray(img.convert("L").resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = (thumb[:, 1:] > thumb[:, :-1]).flatten()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def image_stats_from_pil(img: Image.Image, file_bytes: bytes = b"") -> ImageStats:
    """Measures an already opened image.

    Args:
        img: the image as stored (its ``mode`` is reported unchanged).
        file_bytes: the raw file, for ``file_sha256`` (empty: hash of nothing).

    Returns:
        The :class:`ImageStats` of ``img``.
    """
    grey = np.asarray(img.convert("L"))
    rgb = np.asarray(img.convert("RGB"))
    levels = int(np.unique(grey).size)
    pixel_hash = hashlib.sha256(str(rgb.shape).encode() + rgb.tobytes()).hexdigest()
    return ImageStats(
        mode=img.mode,
        width=int(img.width),
        height=int(img.height),
        grey_levels=levels,
        is_binary=levels <= 2,
        foreground_fraction=float((grey > 127).mean()),
        is_greyscale=bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()),
        file_sha256=hashlib.sha256(file_bytes).hexdigest(),
        pixel_sha256=pixel_hash,
        dhash=dhash64(img),
    )


def image_stats(path: str | Path) -> ImageStats:
    """Opens ``path`` and measures it (see :class:`ImageStats`).

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        PIL.UnidentifiedImageError: when the file is not an image.
    """
    data = Path(path).read_bytes()
    with Image.open(path) as img:
        img.load()
        return image_stats_from_pil(img, data)
