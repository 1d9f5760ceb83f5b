"""Stage "sources": the list of recordings that enter the pipeline.

Pure: walks the configured inputs and returns one row per recording. Missing files are kept
as rows with ``error`` set, so the summary names them instead of silently dropping them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from physio_ray import schemas as S
from physio_ray.annotate.config import SourcesConfig

logger = logging.getLogger(__name__)

_UIPRMD_DIRS = {"correct": "Segmented_Movements", "incorrect": "Incorrect_Segmented_Movements"}


def list_sources(cfg: SourcesConfig) -> list[dict]:
    """Lists every recording named by the config, videos first.

    Args:
        cfg: which videos, landmark files and dataset subsets to take.

    Returns:
        Rows with ``video_id``, ``source_kind``, ``source_path``, ``exercise``, ``subject``,
        ``ground_truth`` and ``error`` (``None`` unless the file is missing).
    """
    from physio_ray.video.exercises import keraal_exercise, uiprmd_exercise

    rows: list[dict] = []
    for path in cfg.videos:
        rows.append(_row(f"video-{Path(path).stem}", "video", path, "squat" if "squat" in path.lower() else "unknown"))
    for path in cfg.tfjs_pose:
        rows.append(_row(f"tfjs-{Path(path).name.split('.')[0]}", "tfjs", path, "squat"))
    if cfg.uiprmd_dir:
        root = Path(cfg.uiprmd_dir)
        qualities = ["correct", "incorrect"] if cfg.uiprmd_incorrect else ["correct"]
        for movement in cfg.uiprmd_movements:
            for subject in cfg.uiprmd_subjects:
                for episode in cfg.uiprmd_episodes:
                    for quality in qualities:
                        suffix = "_inc" if quality == "incorrect" else ""
                        name = f"{movement}_{subject}_e{episode:02d}_positions{suffix}.txt.gz"
                        pos_file = root / _UIPRMD_DIRS[quality] / "Kinect" / "Positions" / name
                        vid = f"uiprmd-{movement}-{subject}-e{episode:02d}{'-inc' if suffix else ''}"
                        rows.append(
                            _row(
                                vid, "uiprmd", str(pos_file), uiprmd_exercise(movement), subject=subject, truth=quality
                            )
                        )
    if cfg.keraal_dir:
        for bp_file in sorted(Path(cfg.keraal_dir).glob("*-BP-*.json")):
            code = bp_file.name.split("-")[2]
            rows.append(_row(f"keraal-{bp_file.stem}", "keraal", str(bp_file), keraal_exercise(code), truth="correct"))
    if cfg.limit is not None:
        rows = rows[: cfg.limit]
    seen: set[str] = set()
    for row in rows:
        if row[S.VIDEO_ID] in seen:
            row[S.ERROR] = f"duplicate video_id {row[S.VIDEO_ID]!r} (two inputs with the same name)"
        seen.add(row[S.VIDEO_ID])
    missing = [r for r in rows if r[S.ERROR]]
    if missing:
        logger.warning("%d of %d sources are unusable, e.g. %s", len(missing), len(rows), missing[0][S.ERROR])
    return rows


def _row(
    video_id: str, kind: str, path: str, exercise: str, subject: str | None = None, truth: str | None = None
) -> dict:
    error = None if Path(path).is_file() else f"input file not found: {path}"
    return {
        S.VIDEO_ID: video_id,
        S.SOURCE_KIND: kind,
        S.SOURCE_PATH: str(path),
        S.EXERCISE: exercise,
        S.SUBJECT: subject,
        S.GROUND_TRUTH: truth,
        S.ERROR: error,
    }
