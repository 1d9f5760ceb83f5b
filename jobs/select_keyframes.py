"""Choose keyframes from the movement itself: rep bottoms/tops, transitions, start/end (stage 'keyframes').
Reads <output_dir>/poses/, writes <output_dir>/keyframes/ with keyframe times and movement features.
"""

from __future__ import annotations

import sys

from _common import stage_main

if __name__ == "__main__":
    stage_main("keyframes", sys.argv[1:], __doc__ or "")
