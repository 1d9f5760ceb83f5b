"""Cross-validation folds over scenarios, grouped so one picture never sits in train and test.

Treatment and ICD scenarios reuse the same images (up to three scenarios per image), so a
split by scenario leaks: the model sees a picture in training and is tested on it. Folds here
are built over *image groups*: scenarios whose images have the same decoded pixels (or, without
pixel stats, the same file name) form one group, and a group lands in exactly one test fold.

Groups are dealt to folds stratum by stratum (default stratum: ``(modality, image_type)``, an
image property, so constant within a group), each to the fold with the fewest groups of that
stratum and then the fewest scenarios; ties break by a seeded shuffle. On the 24 treatment
scenarios with ``k=3`` every fold gets one image of each of the 8 strata: 4 ERROR + 4 CORRECT,
2 per modality.

Example:
    >>> from types import SimpleNamespace as NS
    >>> sc = [NS(id=f"s{i}", image_file=f"im{i // 2}", modality="xray", image_type="negative") for i in range(6)]
    >>> sorted(f.test_ids for f in grouped_kfold(sc, k=3))  # the two scenarios of one image stay together
    [('s0', 's1'), ('s2', 's3'), ('s4', 's5')]
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Fold",
    "LeakageError",
    "check_no_leakage",
    "grouped_kfold",
    "image_groups",
    "leave_one_modality_out",
    "upstream_fold",
]


class LeakageError(ValueError):
    """A fold has the same image group in train and test, or misses / repeats scenarios."""


@dataclass(frozen=True)
class Fold:
    """One train/test split.

    Attributes:
        index: fold number (0-based).
        name: short label for tables (``"fold0"``, ``"heldout-mri"``, ``"upstream-val"``).
        train_ids: scenario ids to train on.
        test_ids: scenario ids to test on.
    """

    index: int
    name: str
    train_ids: tuple[str, ...]
    test_ids: tuple[str, ...]


def image_groups(scenarios: Sequence[Any], images: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Group id of every scenario: its image's pixel hash, or its file name without stats.

    Args:
        scenarios: objects with ``id`` and ``image_file`` (e.g. :class:`~physio_ray.clinical.records.Scenario`).
        images: image records by file name with ``stats.pixel_sha256`` (``ClinicalDataset.images``);
            ``None``: group by file name only.

    Returns:
        ``{scenario_id: group_id}``.
    """
    out = {}
    for s in scenarios:
        rec = images.get(s.image_file) if images else None
        stats = getattr(rec, "stats", None)
        out[s.id] = f"px:{stats.pixel_sha256}" if stats is not None else f"file:{s.image_file}"
    return out


def _default_stratum(s: Any) -> tuple[str, str]:
    return (s.modality, s.image_type)


def grouped_kfold(
    scenarios: Sequence[Any],
    k: int,
    seed: int = 0,
    images: Mapping[str, Any] | None = None,
    stratum: Callable[[Any], Any] = _default_stratum,
) -> list[Fold]:
    """Stratified, image-grouped k-fold split.

    Args:
        scenarios: scenarios to split (``id``, ``image_file``, and what ``stratum`` reads).
        k: number of folds, ``2 <= k <= number of image groups``.
        seed: tie-breaking shuffle seed.
        images: image records for pixel-hash grouping (see :func:`image_groups`).
        stratum: group property to balance across folds; must be constant within a group.

    Returns:
        ``k`` folds; every scenario is in exactly one test set, and no image group is in both
        the train and test set of a fold (checked with :func:`check_no_leakage`).

    Raises:
        ValueError: ``k`` out of range, or ``stratum`` differs within an image group.
    """
    group_of = image_groups(scenarios, images)
    members: dict[str, list[Any]] = defaultdict(list)
    for s in scenarios:
        members[group_of[s.id]].append(s)
    if not 2 <= k <= len(members):
        raise ValueError(f"k={k} must be in 2..{len(members)} (the number of distinct images)")
    strata: dict[Any, list[str]] = defaultdict(list)
    for g, ss in members.items():
        keys = {stratum(s) for s in ss}
        if len(keys) != 1:
            raise ValueError(f"image group {g} mixes strata {sorted(map(str, keys))}; stratify by an image property")
        strata[keys.pop()].append(g)
    rng = random.Random(seed)
    per_stratum: dict[Any, list[int]] = {key: [0] * k for key in strata}
    # Each component of a tuple stratum (e.g. image_type alone) is balanced too.
    per_part: dict[Any, list[int]] = defaultdict(lambda: [0] * k)
    sizes = [0] * k
    order = list(range(k))
    rng.shuffle(order)
    rank = {f: i for i, f in enumerate(order)}
    test: list[list[str]] = [[] for _ in range(k)]
    for key in sorted(strata, key=str):
        parts = [(i, v) for i, v in enumerate(key)] if isinstance(key, tuple) else [(0, key)]
        groups = sorted(strata[key])
        rng.shuffle(groups)
        for g in groups:
            f = min(
                range(k), key=lambda j: (per_stratum[key][j], sum(per_part[p][j] for p in parts), sizes[j], rank[j])
            )
            per_stratum[key][f] += 1
            for p in parts:
                per_part[p][f] += 1
            sizes[f] += len(members[g])
            test[f].extend(s.id for s in members[g])
    all_ids = [s.id for s in scenarios]
    folds = []
    for i in range(k):
        test_set = set(test[i])
        folds.append(
            Fold(
                index=i,
                name=f"fold{i}",
                train_ids=tuple(x for x in all_ids if x not in test_set),
                test_ids=tuple(x for x in all_ids if x in test_set),
            )
        )
    check_no_leakage(folds, group_of)
    return folds


def leave_one_modality_out(scenarios: Sequence[Any], images: Mapping[str, Any] | None = None) -> list[Fold]:
    """One fold per modality: test on it, train on the others (tests transfer across modalities).

    Returns:
        Folds named ``heldout-<modality>``, in sorted modality order.

    Raises:
        LeakageError: when one image is used under two modalities.
    """
    all_ids = [s.id for s in scenarios]
    folds = []
    for i, mod in enumerate(sorted({s.modality for s in scenarios})):
        test = {s.id for s in scenarios if s.modality == mod}
        folds.append(
            Fold(
                i, f"heldout-{mod}", tuple(x for x in all_ids if x not in test), tuple(x for x in all_ids if x in test)
            )
        )
    check_no_leakage(folds, image_groups(scenarios, images))
    return folds


def upstream_fold(scenarios: Sequence[Any], upstream: Sequence[Any]) -> Fold:
    """The upstream project's ``train.jsonl`` / ``val.jsonl`` split as a :class:`Fold`.

    Args:
        scenarios: scenarios with ``id`` and ``key``; only those the upstream rows name are used.
        upstream: rows with ``split`` (``train`` | ``val``) and ``key``.

    Returns:
        A fold named ``upstream-val`` (test = the val rows).

    Raises:
        ValueError: a row names a key no scenario has.
    """
    by_key = {s.key: s.id for s in scenarios}
    unknown = [r.key for r in upstream if r.key not in by_key]
    if unknown:
        raise ValueError(f"upstream rows name unknown scenario keys: {unknown}")
    train = tuple(by_key[r.key] for r in upstream if r.split == "train")
    test = tuple(by_key[r.key] for r in upstream if r.split == "val")
    return Fold(0, "upstream-val", train, test)


def check_no_leakage(folds: Sequence[Fold], group_of: Mapping[str, str], require_partition: bool = True) -> None:
    """Asserts that no image group is on both sides of any fold.

    Args:
        folds: the folds.
        group_of: ``{scenario_id: group_id}`` from :func:`image_groups`.
        require_partition: also require every scenario in exactly one test set (k-fold style).

    Raises:
        LeakageError: naming the fold, the shared groups and the scenarios involved.
    """
    for f in folds:
        overlap = set(f.train_ids) & set(f.test_ids)
        if overlap:
            raise LeakageError(f"{f.name}: scenarios both in train and test: {sorted(overlap)}")
        train_groups = {group_of[x] for x in f.train_ids}
        leaked = sorted(x for x in f.test_ids if group_of[x] in train_groups)
        if leaked:
            raise LeakageError(f"{f.name}: test scenarios {leaked} share an image with training scenarios")
    if require_partition:
        seen: dict[str, int] = defaultdict(int)
        for f in folds:
            for x in f.test_ids:
                seen[x] += 1
        missing = sorted(x for x in group_of if seen.get(x, 0) == 0)
        repeated = sorted(x for x, n in seen.items() if n > 1)
        if missing or repeated:
            raise LeakageError(f"test sets do not partition the scenarios: missing {missing}, repeated {repeated}")
