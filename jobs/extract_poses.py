"""Decode videos / read landmark files and run MediaPipe pose on CPU actors (stage 'poses').
Writes <output_dir>/sources/ and <output_dir>/poses/ (COCO-17 keypoints + 16 joint angles per frame).
"""

from __future__ import annotations

import sys

from _common import stage_main

if __name__ == "__main__":
    stage_main("poses", sys.argv[1:], __doc__ or "")
