"""A tiny client of the multiplexed guidance stream ``WS /api/stream`` (many sessions, one socket).

Start the service (``serve run configs/serve/guidance.yaml``), then::

    python examples/guidance_stream_client.py [--sessions 3] [--url ws://127.0.0.1:8000/api/stream]

It starts ``--sessions`` squat sessions, streams the real tfjs squat clip (5 fps) to all of them
in ticks (one message per camera frame, one frame per session), prints the reps as they change
and each session's summary. With ``PHYSIO_GUIDANCE_TOKEN`` set, the token is sent first.
After a replica crash the client reconnects and resends the frame; the sessions continue
(their next entry says ``"resumed": true``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from websockets.sync.client import connect

CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tfjs-pose-squats" / "pose_squats.full.json"


def ask(ws, message: dict) -> dict:  # noqa: ANN001 - a websockets connection
    ws.send(json.dumps(message))
    return json.loads(ws.recv(timeout=30))


def open_stream(url: str, token: str):  # noqa: ANN201
    ws = connect(url, max_size=None)
    if token:
        assert ask(ws, {"type": "auth", "token": token})["type"] == "authenticated"
    return ws


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="ws://127.0.0.1:8000/api/stream")
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--clip", default=str(CLIP), help="[T, 33, 3] BlazePose pixel keypoints (720x1280), 5 fps")
    args = ap.parse_args()
    token = os.environ.get("PHYSIO_GUIDANCE_TOKEN", "").split(",")[0]
    frames = json.loads(Path(args.clip).read_text())
    ws = open_stream(args.url, token)
    start = {"type": "start", "exercise": "squat", "coordinates": "pixels", "image_width": 720, "image_height": 1280}
    sids = [ask(ws, start | {"client_ref": f"patient-{k}"})["session_id"] for k in range(args.sessions)]
    reps = [0] * len(sids)
    for i, kp in enumerate(frames):
        tick = {
            "type": "frames",
            "frames": [{"session_id": s, "timestamp_ms": i * 200.0, "keypoints": kp} for s in sids],
        }
        for _ in range(30):  # bounded retries: reconnect after a lost replica, wait while sessions move
            try:
                states = ask(ws, tick)["states"]
            except Exception:  # noqa: BLE001 - the connection went with its replica
                time.sleep(1.0)
                ws = open_stream(args.url, token)
                continue
            if not any(e["error"] and e["error"]["code"] == "busy" for e in states):
                break
            time.sleep(1.0)
        for k, e in enumerate(states):
            if e["error"]:
                print(f"frame {i} session {k}: {e['error']['code']}: {e['error']['message']}")
            elif e["reps"] != reps[k] or e["feedback"] or e["resumed"]:
                reps[k] = e["reps"]
                note = " (resumed)" if e["resumed"] else ""
                print(
                    f"t={e['timestamp_ms']:6.0f} ms session {k}: {e['state']} reps={e['reps']} {e['feedback'] or ''}{note}"
                )
    for k, sid in enumerate(sids):
        summary = ask(ws, {"type": "end", "session_id": sid})["summary"]
        print(f"session {k}: {summary['reps']} reps in {summary['frames']} frames")
    ws.close()


if __name__ == "__main__":
    main()
