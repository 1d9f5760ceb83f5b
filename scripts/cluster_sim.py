"""Run the annotation job on a simulated autoscaling cluster with cluster.yaml's node types.

    python scripts/cluster_sim.py [--config configs/annotate/autoscale.yaml] [--out outputs/cluster_sim]
                                  [--kill-after questions] [--keep] [key=value ...]

1. stops any Ray on this machine (`ray stop --force`: the fake nodes are local raylets);
2. writes the fake multi-node autoscaler config from cluster.yaml (physio_ray.cluster_sim:
   same node type names and logical resources, every worker group from 0 nodes, idle timeout
   15 s) and starts the head with it (RAY_FAKE_CLUSTER=1, 0 CPUs on the head as in cluster.yaml);
3. submits the job with `ray job submit --working-dir .` and watches the nodes (ray.nodes());
4. with --kill-after STAGE: once STAGE has written and a --kill-node-type node is up (the next
   stage's actors run there), waits --kill-delay seconds and kills that node (its raylet and
   every process under it); Ray Data restarts the actors, the autoscaler launches a replacement
   node, and the job must still finish with nothing lost or duplicated;
5. after the job, waits for the autoscaler to remove the idle workers, prints the node
   timeline and writes <out>/timeline.json (events, marks, job status, output dir); then stops
   the cluster unless --keep.

Exit code 0 when the job SUCCEEDED and every worker node was removed again.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from physio_ray.cluster import load_cluster  # noqa: E402
from physio_ray.cluster_sim import (  # noqa: E402
    NodeWatch,
    fake_cluster_config,
    job_status,
    ray_cli,
    ray_env,
    render_timeline,
    submit_job,
)

DASHBOARD_PORT = 8299
ADDRESS = f"http://127.0.0.1:{DASHBOARD_PORT}"


def ray_cmd(*args: str, timeout: float = 180, check: bool = True, env: dict[str, str] | None = None) -> str:
    """The ``ray`` CLI from the repository root."""
    return ray_cli(*args, cwd=REPO, timeout=timeout, check=check, env=env)


def start_cluster(out: Path, cluster_yaml: Path) -> Path:
    """Starts the fake autoscaling head; returns the autoscaler config it runs."""
    spec = load_cluster(cluster_yaml)
    cfg = fake_cluster_config(spec)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "fake_cluster.json"
    path.write_text(json.dumps(cfg, indent=1))
    ray_cmd("stop", "--force", check=False)
    env = {**ray_env(), "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    head = spec.node_type(spec.head_node_type)
    ray_cmd(
        "start",
        "--head",
        f"--autoscaling-config={path}",
        f"--num-cpus={int(head.resources.get('CPU', 0))}",
        "--num-gpus=0",
        "--include-dashboard=true",
        f"--dashboard-port={DASHBOARD_PORT}",
        "--disable-usage-stats",
        env=env,
    )
    return path


def data_overrides() -> list[str]:
    """Absolute data paths: the job runs in an uploaded copy of the checkout, where ../shared is not."""
    shared = (REPO.parent / "shared" / "data").resolve()
    return [f"sources.uiprmd_dir={shared / 'ui-prmd'}"] if (shared / "ui-prmd").is_dir() else []


def submit(config: str, output_dir: Path, overrides: list[str]) -> str:
    """Submits the annotate job; returns the submission id."""
    return submit_job(ADDRESS, ["python", "jobs/annotate.py", config, f"output_dir={output_dir}", *overrides], REPO)


def kill_node(node_id: str) -> int:
    """Kills one fake node as a lost machine dies: its raylet (whose command line carries the node
    id) and every process under it (object store, actors, workers), at once. Returns how many."""
    import psutil

    victims: list[psutil.Process] = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if node_id in cmd and "raylet" in cmd:
            victims += [proc, *proc.children(recursive=True)]
    for proc in victims:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    return len(victims)


def _stage_started(output_dir: Path, stage: str) -> bool:
    folder = output_dir / stage
    return folder.is_dir() and any(folder.rglob("*.parquet"))


def run(args: argparse.Namespace) -> int:
    import ray

    out = Path(args.out).resolve()
    output_dir = out / "annotate"
    spec = load_cluster(REPO / "cluster.yaml")
    start_cluster(out, REPO / "cluster.yaml")
    ray.init(address="auto", log_to_driver=False)
    watch = NodeWatch(spec).start()
    status, killed, armed = "UNKNOWN", None, None
    try:
        job_id = submit(args.config, output_dir, [*data_overrides(), *args.override])
        watch.mark(f"job submitted ({job_id})")
        deadline = time.time() + args.timeout
        seen: set[str] = set()
        while time.time() < deadline:
            status = job_status(ADDRESS, job_id, REPO)
            for stage in ("poses", "keyframes", "questions", "solutions", "judged", "annotated"):
                if stage not in seen and _stage_started(output_dir, stage):
                    seen.add(stage)
                    watch.mark(f"{stage} stage writing")
            if args.kill_after and killed is None and _stage_started(output_dir, args.kill_after):
                victims = [nid for nid, kind in watch.alive().items() if kind == args.kill_node_type]
                if victims and armed is None:
                    armed = time.time() + args.kill_delay
                if victims and armed is not None and time.time() >= armed:
                    killed = victims[0]
                    n = kill_node(killed)
                    watch.mark(f"killed {args.kill_node_type} node ...{killed[-6:]} ({n} processes)")
            if status in ("SUCCEEDED", "FAILED", "STOPPED"):
                break
            time.sleep(2)
        watch.mark(f"job {status}")
        logs = ray_cmd("job", "logs", f"--address={ADDRESS}", job_id, timeout=60, check=False)
        (out / "job.log").write_text(logs)
        idle_deadline = time.time() + args.idle_wait
        while time.time() < idle_deadline and any(k != spec.head_node_type for k in watch.alive().values()):
            time.sleep(2)
        watch.stop()
        workers_left = sorted(k for k in watch.alive().values() if k != spec.head_node_type)
        watch.mark(f"workers alive at the end: {workers_left or 'none'}")
    finally:
        ray.shutdown()
        if not args.keep:
            ray_cmd("stop", "--force", check=False)
    record = {
        **watch.to_dict(),
        "job_status": status,
        "output_dir": str(output_dir),
        "killed_node": killed,
        "workers_left": workers_left,
    }
    (out / "timeline.json").write_text(json.dumps(record, indent=1))
    print(render_timeline(record["events"], record["marks"]))
    print(f"timeline: {out / 'timeline.json'}; job log: {out / 'job.log'}")
    return 0 if status == "SUCCEEDED" and not workers_left else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--config", default="configs/annotate/autoscale.yaml", help="annotate config to submit")
    parser.add_argument("--out", default="outputs/cluster_sim", help="timeline, job log and the job's output")
    parser.add_argument("override", nargs="*", help="key=value overrides passed to the job")
    parser.add_argument(
        "--kill-after", default=None, help="once this stage has written (e.g. questions), kill a --kill-node-type node"
    )
    parser.add_argument("--kill-node-type", default="gpu_sampling", help="the type of the node to kill")
    parser.add_argument("--kill-delay", type=float, default=10.0, help="seconds between that node alive and the kill")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds to wait for the job")
    parser.add_argument("--idle-wait", type=float, default=120.0, help="seconds to wait for idle workers to go")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
