"""``sd-darts pipeline run --jobs N``: the pipeline's stale stages on this machine, N at a time.

DVC runs one stage at a time and takes a lock for it, so two ``dvc repro`` cannot share a
workspace.  This runner plans what ``dvc repro [-s] [targets]`` would run (the plan of ``pipeline
submit``), starts each stage's command as soon as the stages it depends on have completed, at
most N at once, each with its share of the CPU threads (and of ``CUDA_VISIBLE_DEVICES``), then
records the completed stages in ``dvc.lock`` as ``dvc commit`` would, refusing those whose
dependencies changed meanwhile (docs/pipeline.md, "Stages in parallel").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ..errors import UserError
from ..utils import files
from .layout import Layout
from .submit import DVC_PARAMS, dvc_params, plan, record

MANIFEST = "run.json"
#: How often the runner looks at its stages (seconds).
POLL = 0.5


def slot_env(slot: int, jobs: int, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a stage started in ``slot`` (0..jobs-1): the slot's share of the threads
    (``OMP_NUM_THREADS``, else the CPU count, divided by ``jobs``, at least 1) and, when
    ``CUDA_VISIBLE_DEVICES`` lists at least ``jobs`` devices, every ``jobs``-th of them."""
    env = dict(os.environ if environ is None else environ)
    threads = int(env.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    env["OMP_NUM_THREADS"] = str(max(1, threads // jobs))
    devices = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if len(devices) >= jobs > 1:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(devices[slot::jobs])
    return env


def run(params_file: str, globs: list[str], jobs: int, single_item: bool) -> int:
    if jobs < 1:
        raise UserError(f"pipeline run --jobs {jobs}: must be at least 1")
    p = dvc_params(params_file, who="run")
    from .stage import PARAMS_ENV

    arrays = plan(globs, [sys.executable], single_item)
    if not arrays:
        print("pipeline run: nothing to run (dvc status is clean for the chosen stages)")
        return 0
    folder = Layout(p.profile).runs / "local"
    folder.mkdir(parents=True, exist_ok=True)
    todo = [
        {"stage": name, "job": f"#{i}", "log": str(folder / f"{name}.log"), "deps": deps, "cmd": cmd, "after": ups}
        for i, (name, cmd, deps, ups) in enumerate(
            (n, c, d, u) for a in arrays for n, c, d, u in zip(a.stages, a.commands, a.deps, a.upstream, strict=True)
        )
    ]
    print(f"pipeline run: {len(todo)} stages, at most {jobs} at a time; logs in {folder}/", flush=True)
    state: dict[str, tuple[str, str]] = {}
    running: dict[str, tuple[subprocess.Popen, int, float]] = {}  # stage -> (process, slot, start)
    times: dict[str, dict[str, float]] = {}
    start = time.monotonic()

    def _stop(signum, frame):  # a terminated runner stops its stages as Ctrl-C does
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        while len(state) < len(todo):
            for j in todo:  # a stage after one that did not complete never starts
                ended = [state[u][0] for u in j["after"] if u in state]
                if j["stage"] not in state and j["stage"] not in running and any(s != "COMPLETED" for s in ended):
                    state[j["stage"]] = ("CANCELLED", "0")
                    print(f"pipeline run: {j['stage']} not started: a stage it depends on did not complete")
            free = sorted(set(range(jobs)) - {slot for _, slot, _ in running.values()})
            for j in todo:
                if not free:
                    break
                ready = all(state.get(u, ("",))[0] == "COMPLETED" for u in j["after"])
                if j["stage"] in state or j["stage"] in running or not ready:
                    continue
                slot = free.pop(0)
                env = slot_env(slot, jobs)
                env[PARAMS_ENV] = DVC_PARAMS  # the same content (checked): what dvc.lock follows
                with open(j["log"], "wb") as log:
                    proc = subprocess.Popen(j["cmd"], stdout=log, stderr=subprocess.STDOUT, env=env)
                running[j["stage"]] = (proc, slot, time.monotonic())
                print(f"pipeline run: {j['stage']} started ({env['OMP_NUM_THREADS']} threads)", flush=True)
            for name, (proc, _, began) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[name]
                seconds = time.monotonic() - began
                state[name] = ("COMPLETED" if proc.returncode == 0 else "FAILED", f"{seconds:.0f}")
                times[name] = {"start": round(began - start, 1), "seconds": round(seconds, 1), "exit": proc.returncode}
                print(
                    f"pipeline run: {name} {state[name][0]} in {seconds:.0f} s "
                    f"({len(state)} of {len(todo)} ended, {time.monotonic() - start:.0f} s elapsed)",
                    flush=True,
                )
            time.sleep(POLL)
    except KeyboardInterrupt:  # stop the stages (they resume from their checkpoints), record what completed
        for name, (proc, _, _) in running.items():
            proc.send_signal(signal.SIGTERM)
            proc.wait()
            state[name] = ("CANCELLED", "0")
        for j in todo:
            state.setdefault(j["stage"], ("CANCELLED", "0"))
        print("pipeline run: interrupted; the stages that ran are stopped", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
        stages = [
            {k: v for k, v in j.items() if k != "after"} | {"state": state.get(j["stage"], ("",))[0]} for j in todo
        ]
        for s in stages:
            s.update(times.get(s["stage"], {}))
        files.write_json(folder / MANIFEST, {"params": DVC_PARAMS, "parallel": jobs, "stages": stages})
    return record(todo, {j["job"]: state[j["stage"]] for j in todo}, who="run")
