"""Shared boilerplate of the thin job entry points (argument parsing, logging, exit codes)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python jobs/x.py` from a checkout without an install
    sys.path.insert(0, str(REPO))

from physio_ray.config import ConfigError, load_config  # noqa: E402

T = TypeVar("T")


def parse(cls: type[T], argv: list[str], description: str, epilog: str = "") -> T:
    """Parses ``CONFIG.yaml [key=value ...]`` into ``cls``; exits 2 with every problem listed."""
    parser = argparse.ArgumentParser(
        description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", help="YAML config, e.g. configs/<job>/local.yaml")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. output_dir=outputs/x")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return load_config(cls, [args.config, *args.overrides])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def fail(message: str, code: int = 1) -> Any:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
