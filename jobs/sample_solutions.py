"""Sample N step-marked solutions per question with the configured engine (stage 'solutions').
Reads <output_dir>/questions/, writes <output_dir>/solutions/ (steps end in ' ки'; unparseable answers keep error set).
"""

from __future__ import annotations

import sys

from _common import stage_main

if __name__ == "__main__":
    stage_main("solutions", sys.argv[1:], __doc__ or "")
