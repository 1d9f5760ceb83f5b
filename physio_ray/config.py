"""Typed run configuration: YAML + ``key=value`` overrides into frozen dataclasses.

A run is described by one YAML file (``configs/<job>/<variant>.yaml``) plus optional
dotted overrides on the command line (``sampler.batch_size=4``). Both are converted once,
at the boundary, into frozen dataclasses. Every problem found (unknown keys, wrong types,
values rejected by a dataclass's ``__post_init__``) is collected and raised together in one
:class:`ConfigError`, with the nearest valid key suggested for typos.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Demo:
    ...     batch_size: int = 8
    >>> from_dict(Demo, {"batch_size": "4"}).batch_size
    4
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "apply_overrides",
    "from_dict",
    "load_config",
    "parse_overrides",
    "to_dict",
]


class ConfigError(ValueError):
    """Raised with every problem found in a configuration, one per line."""

    def __init__(self, problems: Sequence[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        head = f"invalid configuration{f' ({source})' if source else ''}:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Parses ``a.b=value`` strings into a nested dict; values are read as YAML scalars.

    Args:
        items: strings such as ``"sampler.batch_size=4"`` or ``"output_dir=outputs/x"``.

    Returns:
        A nested dict, e.g. ``{"sampler": {"batch_size": 4}}``.

    Raises:
        ConfigError: when an item has no ``=`` or an empty key.

    >>> parse_overrides(["a.b=3", "c=[1, 2]", "d=null"])
    {'a': {'b': 3}, 'c': [1, 2], 'd': None}
    """
    out: dict[str, Any] = {}
    problems = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append(f"override {item!r} is not of the form key=value (e.g. output_dir=outputs/run1)")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append(f"override {item!r} conflicts with an earlier override of {part!r}")
                break
            node = child
        else:
            node[parts[-1]] = value
    if problems:
        raise ConfigError(problems, "command line")
    return out


def apply_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merges ``overrides`` into a copy of ``base`` (dicts merge, everything else replaces).

    >>> apply_overrides({"a": {"b": 1, "c": 2}}, {"a": {"b": 5}})
    {'a': {'b': 5, 'c': 2}}
    """
    merged: dict[str, Any] = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = apply_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(cls: type[T], argv: Sequence[str]) -> T:
    """Loads ``argv = [yaml_path, key=value, ...]`` into the frozen dataclass ``cls``.

    Args:
        cls: the top-level config dataclass of a job.
        argv: the YAML path followed by optional dotted overrides.

    Returns:
        A validated instance of ``cls``.

    Raises:
        ConfigError: listing every problem at once (missing file, bad YAML, unknown keys,
            wrong types, rejected values).
    """
    if not argv or "=" in argv[0]:
        raise ConfigError(["the first argument must be a YAML config path, e.g. configs/annotate/local.yaml"])
    path = Path(argv[0])
    if not path.is_file():
        raise ConfigError([f"config file {str(path)!r} does not exist"])
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([f"YAML syntax error: {exc}"], str(path)) from exc
    if not isinstance(data, Mapping):
        raise ConfigError([f"top level must be a mapping, got {type(data).__name__}"], str(path))
    merged = apply_overrides(data, parse_overrides(argv[1:]))
    return from_dict(cls, merged, source=str(path))


def from_dict(cls: type[T], data: Mapping[str, Any], source: str | None = None) -> T:
    """Builds the dataclass ``cls`` from a plain mapping, collecting every problem.

    Raises:
        ConfigError: with one line per problem.
    """
    problems: list[str] = []
    value = _convert(cls, data, "", problems)
    if problems:
        raise ConfigError(problems, source)
    return typing.cast(T, value)


def to_dict(cfg: Any) -> Any:
    """Turns a config dataclass (recursively) into plain YAML-friendly data."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, Mapping):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def _where(path: str) -> str:
    return path or "<top level>"


def _convert(tp: Any, value: Any, path: str, problems: list[str]) -> Any:  # noqa: C901
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        for arg in non_none:
            trial: list[str] = []
            out = _convert(arg, value, path, trial)
            if not trial:
                return out
        problems.append(f"{_where(path)}: {value!r} is not a valid {_type_name(tp)}")
        return None
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            hint = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            problems.append(f"{_where(path)}: {value!r} is not one of {list(choices)}{extra}")
        return value
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, path, problems)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            problems.append(f"{_where(path)}: expected a list, got {value!r}")
            return None
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                problems.append(f"{_where(path)}: expected {len(args)} items, got {len(value)}")
                return None
            return tuple(
                _convert(a, v, f"{path}[{i}]", problems) for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item_tp = args[0] if args else Any
        items = [_convert(item_tp, v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            problems.append(f"{_where(path)}: expected a mapping, got {value!r}")
            return None
        args = get_args(tp) or (Any, Any)
        return {k: _convert(args[1], v, f"{path}.{k}", problems) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        problems.append(f"{_where(path)}: expected true/false, got {value!r}")
        return None
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            problems.append(f"{_where(path)}: expected an integer, got {value!r}")
            return None
        try:
            return int(value)
        except ValueError:
            problems.append(f"{_where(path)}: expected an integer, got {value!r}")
            return None
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            problems.append(f"{_where(path)}: expected a number, got {value!r}")
            return None
        try:
            return float(value)
        except ValueError:
            problems.append(f"{_where(path)}: expected a number, got {value!r}")
            return None
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        problems.append(f"{_where(path)}: expected a string, got {value!r}")
        return None
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    problems.append(f"{_where(path)}: cannot read {value!r} as {_type_name(tp)}")
    return None


def _convert_dataclass(cls: Any, value: Any, path: str, problems: list[str]) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        problems.append(f"{_where(path)}: expected a mapping for {cls.__name__}, got {value!r}")
        return None
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    before = len(problems)
    for key, raw in value.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {sorted(fields)}"
            problems.append(f"{sub}: unknown key{hint}")
            continue
        kwargs[key] = _convert(hints[key], _over_field_default(fields[key], raw), sub, problems)
    for name, f in fields.items():
        missing_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if missing_default and name not in kwargs:
            problems.append(f"{path + '.' if path else ''}{name}: required key is missing")
    if len(problems) > before:
        return None
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        problems.append(f"{_where(path)}: {exc}")
        return None


def _over_field_default(f: dataclasses.Field[Any], raw: Any) -> Any:
    """A partial block merged over the field's own default (a job's ``lora:`` default, not the class's).

    Without this, ``model.text.lora.r=4`` would reset the PRM's alpha 16 to LoraSettings' 32.
    """
    if not isinstance(raw, Mapping) or f.default_factory is dataclasses.MISSING:
        return raw
    default = f.default_factory()
    if not dataclasses.is_dataclass(default) or isinstance(default, type):
        return raw
    return apply_overrides(to_dict(default), raw)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
