"""Resumable stage storage: Parquet part files under ``<output_dir>/<stage>/``.

Each stage streams its Ray Data output back to the driver batch by batch and writes every
batch as its own part file, atomically (temp name, then rename). A killed job therefore
keeps everything it finished; on rerun, rows whose input key already appears in the stage's
output are skipped, and reading a stage drops duplicate rows by its own key, so a rerun
never duplicates data. ``output_dir`` may be a local path or a URI pyarrow understands
(``s3://bucket/run``, ``gs://...``) so the same code runs on a cluster's shared storage.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

_DONE = "_SUCCESS"
_SETTINGS = "_settings.json"


@dataclass(frozen=True)
class StageStore:
    """The Parquet folder of one stage.

    Attributes:
        root: the run's output dir (path or URI).
        stage: stage name, e.g. ``"solutions"``.
    """

    root: str
    stage: str

    def _fs(self) -> tuple[pafs.FileSystem, str]:
        fs, base = pafs.FileSystem.from_uri(_as_uri(self.root))
        return fs, f"{base.rstrip('/')}/{self.stage}"

    @property
    def path(self) -> str:
        """The stage folder as a path inside its filesystem."""
        return self._fs()[1]

    def part_files(self) -> list[str]:
        """Finished part files, sorted by name (i.e. by write order)."""
        fs, path = self._fs()
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            return []
        selector = pafs.FileSelector(path, recursive=False)
        return sorted(
            f.path
            for f in fs.get_file_info(selector)
            if f.path.endswith(".parquet") and not f.base_name.startswith(".")
        )

    def write_part(self, frame: pd.DataFrame | pa.Table) -> str | None:
        """Writes one batch atomically; returns the part path (``None`` for an empty batch).

        Ray Data batches are passed as Arrow tables as they are: a round trip through pandas
        breaks on all-null list columns (``list<null>``, e.g. steps that got no Monte-Carlo).
        """
        if (frame.num_rows if isinstance(frame, pa.Table) else len(frame)) == 0:
            return None
        fs, path = self._fs()
        fs.create_dir(path, recursive=True)
        table = frame if isinstance(frame, pa.Table) else to_arrow(frame)
        name = f"part-{pd.Timestamp.utcnow().strftime('%Y%m%d%H%M%S%f')}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = f"{path}/.tmp-{name}"
        with fs.open_output_stream(tmp) as sink:
            pq.write_table(table, sink)
        fs.move(tmp, f"{path}/{name}")
        return f"{path}/{name}"

    def read(self, columns: list[str] | None = None, unique_by: str | None = None) -> pd.DataFrame:
        """Reads every finished part; later parts win when ``unique_by`` repeats."""
        files = self.part_files()
        if not files:
            return pd.DataFrame(columns=columns or [])
        fs, _ = self._fs()
        tables = [pq.read_table(f, filesystem=fs, columns=columns) for f in files]
        table = pa.concat_tables(tables, promote_options="permissive")
        # Python values keep nulls as None: to_pandas would turn them into NaN inside list
        # columns, and pandas 3 infers its `str` dtype, whose missing value is NaN too, which
        # Ray Data then reads back as a float column ("subject: double vs string").
        frame = pd.DataFrame({name: _column(table.column(name)) for name in table.column_names})
        if unique_by is not None and unique_by in frame.columns:
            frame = frame.drop_duplicates(subset=unique_by, keep="last").reset_index(drop=True)
        return frame

    def done_keys(self, key: str) -> set[str]:
        """Values of ``key`` already written by this stage."""
        files = self.part_files()
        if not files:
            return set()
        fs, _ = self._fs()
        keys: set[str] = set()
        for f in files:
            schema = pq.read_schema(f, filesystem=fs)
            if key in schema.names:
                keys.update(str(v) for v in pq.read_table(f, filesystem=fs, columns=[key]).column(key).to_pylist())
        return keys

    def mark_complete(self) -> None:
        """Records that every input row of the stage has been processed."""
        fs, path = self._fs()
        fs.create_dir(path, recursive=True)
        with fs.open_output_stream(f"{path}/{_DONE}") as sink:
            sink.write(b"ok\n")

    def is_complete(self) -> bool:
        fs, path = self._fs()
        return fs.get_file_info(f"{path}/{_DONE}").type == pafs.FileType.File

    def read_settings(self) -> dict | None:
        """The settings recorded by the run that wrote this folder (``None``: none recorded)."""
        fs, path = self._fs()
        if fs.get_file_info(f"{path}/{_SETTINGS}").type != pafs.FileType.File:
            return None
        with fs.open_input_stream(f"{path}/{_SETTINGS}") as source:
            text = source.read().decode()
        try:
            found = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{path}/{_SETTINGS} is not valid JSON ({exc}); delete it to record afresh") from exc
        if not isinstance(found, dict):
            raise ValueError(f"{path}/{_SETTINGS} holds {type(found).__name__}, not the settings mapping")
        return found

    def write_settings(self, settings: dict) -> None:
        """Records the settings this folder's rows are made with (JSON, written atomically)."""
        fs, path = self._fs()
        fs.create_dir(path, recursive=True)
        tmp = f"{path}/.tmp-{uuid.uuid4().hex[:8]}{_SETTINGS}"
        with fs.open_output_stream(tmp) as sink:
            sink.write(json.dumps(settings, indent=1, sort_keys=True).encode())
        fs.move(tmp, f"{path}/{_SETTINGS}")

    def clear_complete(self) -> None:
        fs, path = self._fs()
        if fs.get_file_info(f"{path}/{_DONE}").type == pafs.FileType.File:
            fs.delete_file(f"{path}/{_DONE}")


def _column(values: pa.ChunkedArray) -> pd.Series:
    """Numbers keep a numeric dtype; everything else is an object column with None for null."""
    t = values.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or (pa.types.is_boolean(t) and values.null_count == 0):
        return values.to_pandas()
    return pd.Series(values.to_pylist(), dtype=object)


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """Converts a batch to Arrow, turning numpy arrays inside object columns into lists."""
    clean = frame.copy()
    for col in clean.columns:
        if clean[col].dtype == object:
            clean[col] = [_plain(v) for v in clean[col]]
    return pa.Table.from_pandas(clean, preserve_index=False)


def _plain(value: object) -> object:
    tolist = getattr(value, "tolist", None)
    if tolist is not None and not isinstance(value, (str, bytes)):
        out = tolist()
        if isinstance(out, list):
            return [_plain(v) for v in out]
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _as_uri(root: str) -> str:
    if "://" in root:
        return root
    from pathlib import Path

    return Path(root).resolve().as_uri()


def concat_frames(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenates batches, tolerating an empty iterable."""
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
