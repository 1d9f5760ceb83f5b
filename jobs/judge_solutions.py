"""RAG judge: retrieve physio passages, one judge call per solution, per-step label + confidence (stage 'judged').
Reads <output_dir>/solutions/, writes <output_dir>/judged/.
"""

from __future__ import annotations

import sys

from _common import stage_main

if __name__ == "__main__":
    stage_main("judged", sys.argv[1:], __doc__ or "")
