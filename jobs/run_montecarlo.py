"""Selective Monte-Carlo on low-confidence steps, hybrid labels and exports (stage 'annotated').
Reads <output_dir>/judged/, writes <output_dir>/annotated/, the appendix JSON, Med-PRM JSON and cost_ledger.json.
"""

from __future__ import annotations

import sys

from _common import stage_main

if __name__ == "__main__":
    stage_main("annotated", sys.argv[1:], __doc__ or "")
