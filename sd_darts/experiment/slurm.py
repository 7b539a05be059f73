"""``pipeline.runner: slurm``: a heavy stage's work as one SLURM batch job that the stage waits for.

The job runs the same stage module with the same arguments in the same checkout, so its outputs
land where ``runner: local`` puts them; requeued on preemption or near its time limit, it resumes
from the run's checkpoint (docs/cluster.md).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..errors import UserError
from ..tools import container_spec
from ..utils.runtime import interrupted
from .layout import Layout
from .schema import Params, SlurmParams, SlurmResources, slurm_settings

#: Set in every job's environment: the stage runs locally there (no second submission).
JOB_ENV = "SD_DARTS_SLURM_JOB"
#: States after which a job will not run again.  PREEMPTED and NODE_FAIL jobs of ``--requeue``
#: usually go back to PENDING; they count as final only when seen on :data:`_SETTLE` polls in a row.
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
MAYBE_REQUEUED = {"PREEMPTED", "NODE_FAIL"}
_SETTLE = 3


def inside_job() -> bool:
    return os.environ.get(JOB_ENV) == "1"


def stage_kind(name: str, args) -> str | None:
    """The kind of stage (its ``pipeline.slurm`` resources) of stage module ``name``; None: a light stage."""
    if name == "search":
        return "nb201" if getattr(args, "space", "darts") == "nb201" else "search"
    return name if name in ("select_retrain", "train_cifar", "train_imagenet", "ablation") else None


def job_name(module_name: str, argv: list[str]) -> str:
    """The DVC stage's name (``DVC_STAGE``), else the module and its arguments; safe as a file name."""
    name = os.environ.get("DVC_STAGE") or "-".join([module_name, *(a.lstrip("-") for a in argv)])
    return re.sub(r"[^A-Za-z0-9@._+-]", "_", name)[:200]


def tasks_of(p: Params, kind: str) -> int:
    """Tasks of a job of stage kind ``kind``: the ImageNet run's nodes, else one."""
    return p.pipeline.imagenet_nodes if kind == "train_imagenet" else 1


def sbatch_flags(s: SlurmParams, r: SlurmResources, name: str, log: Path, workdir: Path, tasks: int = 1) -> list[str]:
    """The job's flags; ``tasks`` > 1: a multi-node job, one task (a torchrun node, ``r`` each) per
    node, or ``s.imagenet_tasks_per_node`` per node."""
    per_node = min(tasks, s.imagenet_tasks_per_node)
    flags = [
        f"--job-name=sd-darts:{name}",
        f"--output={log}",
        "--open-mode=append",
        f"--chdir={workdir}",
        f"--time={r.time_minutes}",
        f"--ntasks={tasks}",
        f"--cpus-per-task={r.cpus}",
        "--requeue",
        f"--signal=B:USR2@{s.signal_seconds}",
    ]
    if tasks > 1:
        flags += [f"--nodes={-(-tasks // per_node)}", f"--ntasks-per-node={per_node}"]
    if r.gpus:
        flags.append(f"--gres=gpu:{r.gpus * per_node}")  # --gres counts per node
    if r.mem_gb is not None:
        flags.append(f"--mem={r.mem_gb}G")
    for key in ("partition", "account", "qos"):
        if getattr(s, key) is not None:
            flags.append(f"--{key}={getattr(s, key)}")
    return flags + list(s.extra_flags)


def batch_script(flags: list[str], command: list[str] | list[tuple[str, list[str]]], env: dict[str, str]) -> str:
    """The job: run ``command`` in the background, forward SIGUSR2/SIGTERM to it as SIGTERM, wait for
    it, and after a SIGUSR2 (the time limit is near) requeue the job unless the stage finished.
    A list of ``(stage name, command)`` makes an array job: task *i* runs the *i*-th stage."""
    if command and isinstance(command[0], tuple):
        choose = ['case "$SLURM_ARRAY_TASK_ID" in']
        choose += [
            f"  {i}) export DVC_STAGE={shlex.quote(n)}; cmd=({shlex.join(c)}) ;;" for i, (n, c) in enumerate(command)
        ]
        choose += ['  *) echo "sd-darts: no stage for array task $SLURM_ARRAY_TASK_ID"; exit 2 ;;', "esac"]
    else:
        choose = [f"cmd=({shlex.join(command)})"]
    lines = ["#!/bin/bash", *(f"#SBATCH {f}" for f in flags)]
    lines += [
        "# written by sd-darts (pipeline.runner: slurm, docs/cluster.md); `sbatch` this file to run the stage again",
        *(f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())),
        f"export {JOB_ENV}=1",
        'echo "sd-darts: SLURM job $SLURM_JOB_ID on $(hostname), start $(date -Is), restart ${SLURM_RESTART_COUNT:-0}"',
        "requeue=0 child=",
        'on_usr2() { requeue=1; echo "sd-darts: SIGUSR2 (time limit near): stopping at the checkpoint";'
        ' [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; }',
        'on_term() { echo "sd-darts: SIGTERM (preempted, requeued or cancelled)";'
        ' [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; }',
        "trap on_usr2 USR2",
        "trap on_term TERM",
        *choose,
        '"${cmd[@]}" &',
        "child=$!",
        'while kill -0 "$child" 2>/dev/null; do wait "$child"; done',
        'wait "$child"; rc=$?',
        'echo "sd-darts: stage exit $rc at $(date -Is)"',
        'if [ "$requeue" = 1 ] && [ "$rc" != 0 ]; then',
        '  echo "sd-darts: requeueing job $SLURM_JOB_ID; it resumes from the checkpoint"',
        '  scontrol requeue "$SLURM_JOB_ID" && exit 0',
        "fi",
        'exit "$rc"',
        "",
    ]
    return "\n".join(lines)


def torchrun_per_node(nodes: int, nproc: int) -> list[str]:
    """Inside a job of ``nodes`` tasks: the argv that starts one torchrun per task (``srun``), node
    rank = the task's rank, rendezvous at the job's first node; append ``-m MODULE ARGS``."""
    job = os.environ.get("SLURM_JOB_ID")
    if job is None or not inside_job():
        raise UserError(
            f"pipeline.imagenet_nodes is {nodes}: a multi-node run starts inside a SLURM job; use "
            "pipeline.runner: slurm or sd-darts pipeline submit, or set pipeline.imagenet_nodes: 1 (docs/cluster.md)"
        )
    ntasks = int(os.environ.get("SLURM_NTASKS", "1"))
    if ntasks != nodes:
        raise UserError(
            f"pipeline.imagenet_nodes is {nodes} but SLURM job {job} has {ntasks} tasks; submit it again "
            "(the runner asks for one task per node)"
        )
    hosts = _slurm(["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]], "scontrol show hostnames")
    master = hosts.split()[0]
    port = os.environ.get("MASTER_PORT") or str(20000 + int(job.split("_")[0]) % 20000)
    torchrun = ["--nnodes", str(nodes), "--nproc-per-node", str(nproc), "--master-addr", master, "--master-port", port]
    # bash expands the task's rank; "$0" is this Python, "$@" the torchrun options and the module's command
    per_task = 'exec "$0" -m torch.distributed.run --node-rank "$SLURM_PROCID" "$@"'
    return ["srun", "--kill-on-bad-exit=1", f"--ntasks={nodes}", "bash", "-c", per_task, sys.executable, *torchrun]


def check_tools(command: str | None = None) -> None:
    """One line if a SLURM client tool is missing (``command``: the sd-darts command that needs it)."""
    for tool in ("sbatch", "squeue", "scontrol", "scancel"):
        if shutil.which(tool) is None:
            if command:
                raise UserError(
                    f"{command} needs {tool}, which is not on PATH; run it on a SLURM login node (docs/cluster.md)"
                )
            raise UserError(
                f"pipeline.runner is slurm but {tool} is not on PATH; run dvc repro on a SLURM login node "
                "or set pipeline.runner: local (docs/cluster.md)"
            )


def _slurm(cmd: list[str], what: str) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        detail = (res.stderr.strip() or res.stdout.strip()).splitlines()
        raise UserError(f"{what} failed (exit {res.returncode}): {detail[-1] if detail else 'no message'}")
    return res.stdout


def running_elsewhere(name: str, workdir: Path) -> str | None:
    """The id of a queued or running job of this stage in this checkout (its waiting stage died), or None."""
    res = subprocess.run(
        ["squeue", "-h", "--me", "-n", f"sd-darts:{name}", "-o", "%A %Z"], capture_output=True, text=True
    )
    for line in res.stdout.splitlines() if res.returncode == 0 else []:
        job_id, _, folder = line.partition(" ")
        if Path(folder.strip()).resolve() == workdir.resolve():
            return job_id
    return None


def job_fields(job_id: str) -> dict[str, str] | None:
    """``scontrol show job``'s fields of a job (or array task) the controller still knows: queued,
    running, or ended within its MinJobAge; else None."""
    res = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True)
    if res.returncode == 0 and "JobState=" in res.stdout:
        return dict(tok.split("=", 1) for tok in res.stdout.split() if "=" in tok)
    return None


def job_state(job_id: str) -> tuple[str, int] | None:
    """(state, exit code) of a job from ``scontrol``, else ``sacct``; None when neither knows it yet."""
    if (fields := job_fields(job_id)) is not None:
        return fields["JobState"], int(fields.get("ExitCode", "0:0").split(":")[0])
    res = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,ExitCode"], capture_output=True, text=True
    )
    rows = [r for r in res.stdout.splitlines() if r.strip()] if res.returncode == 0 else []
    if rows:
        state, code = rows[-1].split("|")
        return state.split()[0], int(code.split(":")[0])
    return None


def wait(job_id: str, poll: float) -> tuple[str, int]:
    """Poll the job until it will not run again: (final state, exit code)."""
    seen, unknown = [], 0
    while True:
        got = job_state(job_id)
        if got is None:
            unknown += 1
            if unknown * poll > 300:
                raise UserError(f"SLURM forgot job {job_id} (neither scontrol nor sacct knows it); see its log")
        else:
            unknown = 0
            state = got[0]
            seen = (seen + [state])[-_SETTLE:]
            if state in FINAL or (len(seen) == _SETTLE and all(s in MAYBE_REQUEUED for s in seen)):
                return got
        time.sleep(poll)


def _tail(log: Path, n: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def run_as_job(p: Params, kind: str, module: str, argv: list[str], params_file: str, params_env: str) -> int:
    """Submit the stage ``module argv`` as one batch job, wait for it; its exit code."""
    s, resources = slurm_settings(p.pipeline.slurm, f"{p.path}: pipeline.slurm")
    check_tools()
    workdir = Path.cwd()
    name = job_name(module.rpartition(".")[2], argv)
    other = running_elsewhere(name, workdir)
    if other is not None:
        raise UserError(
            f"SLURM job {other} of {name} is still queued or running in this checkout (its waiting stage was "
            f"stopped); wait for it to end or scancel {other}, then rerun"
        )
    folder = (workdir / Layout(p.profile).slurm).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{name}-%j.out"
    if s.command_prefix:
        command = [*shlex.split(s.command_prefix), "python"]
    else:
        command = [sys.executable]
    command += ["-m", module, *argv]
    env = {k: os.environ[k] for k in container_spec.PASS_ENV if k in os.environ}
    env[params_env] = params_file
    script = folder / f"{name}.sbatch"
    flags = sbatch_flags(s, resources[kind], name, log, workdir, tasks_of(p, kind))
    script.write_text(batch_script(flags, command, env))
    job_id = _slurm(["sbatch", "--parsable", str(script)], f"sbatch {script}").strip().split(";")[0]
    log = folder / f"{name}-{job_id}.out"
    print(f"{name}: SLURM job {job_id} submitted; log {log}", flush=True)
    try:
        state, code = wait(job_id, s.poll_seconds)
    except KeyboardInterrupt as exc:
        subprocess.run(["scancel", job_id], capture_output=True)
        raise interrupted(
            exc, f"cancelled SLURM job {job_id}, which stops at its last checkpoint; rerun to resume"
        ) from None
    if state == "COMPLETED" and code == 0:
        print(f"{name}: SLURM job {job_id} completed; log {log}", flush=True)
        return 0
    print(
        f"{name}: SLURM job {job_id} ended {state} (exit {code}); last lines of {log}:\n{_tail(log)}",
        file=sys.stderr,
        flush=True,
    )
    return code or 1
