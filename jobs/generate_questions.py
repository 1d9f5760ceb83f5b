"""Write validated physiotherapy MCQs from keyframe features and templates (stage 'questions').
Reads <output_dir>/keyframes/, writes <output_dir>/questions/; invalid questions are dropped with a reason.
"""

from __future__ import annotations

import sys

from _common import stage_main

if __name__ == "__main__":
    stage_main("questions", sys.argv[1:], __doc__ or "")
