"""``sd-darts pipeline submit | status | record | cancel``: the pipeline's stale stages as SLURM job arrays.

DVC decides what runs, as ``dvc repro`` would; each stage family becomes one job array that waits
for its upstream arrays, and the jobs run the stage commands, never ``dvc repro``, so none takes
DVC's lock (docs/cluster.md).  :func:`plan` and :func:`record` also serve ``sd-darts pipeline run``
(:mod:`.local`), which runs the same plan on this machine.
"""

from __future__ import annotations

import fnmatch
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..utils import files
from . import slurm
from .layout import Layout
from .schema import SlurmResources, read_params, slurm_settings

#: Stage family -> its ``pipeline.slurm`` kind; the other families (data, genotype, nb201_query,
#: curves, report) are light: one CPU, no GPU, :data:`LIGHT` minutes.
KIND = {
    "search": "search",
    "nb201_search": "nb201",
    "select_retrain": "select_retrain",
    "train_cifar": "train_cifar",
    "train_imagenet": "train_imagenet",
    "ablation_warmup": "ablation",
    "ablation_window": "ablation",
}
LIGHT = SlurmResources(time_minutes=60, gpus=0, cpus=1, mem_gb=None)
MANIFEST = "submission.json"
#: The job (and its log and batch script) that records a submission nobody waits for.
RECORD = "record"


@dataclass
class Array:
    family: str
    stages: list[str]
    commands: list[list[str]]
    after: set[str]
    deps: list[dict[str, str]]
    upstream: list[set[str]]  # per stage: the stages of the plan it waits for (the local runner's edges)


def _repo():
    try:
        from dvc.repo import Repo
    except ImportError:
        raise UserError("sd-darts pipeline needs DVC; pip install 'sd-darts[pipeline]'") from None
    return Repo(".")


def _inside(a: str, b: str) -> bool:
    return a == b or a.startswith(b.rstrip("/") + "/")


def dependency_hashes(stage, produced: set[str]) -> dict[str, str]:
    """What the stage's result depends on, as DVC hashes it: its command and each dependency (a file or
    folder's md5, a params file's values) that no stage of the submission writes (``produced``: their
    outputs' paths); those are DVC's to compare when it records the stage."""
    import hashlib
    import json

    out = {"cmd": hashlib.sha256(str(stage.cmd).encode()).hexdigest()}
    for dep in stage.deps:
        path = str(dep.fs_path)
        if any(_inside(path, o) or _inside(o, path) for o in produced):
            continue
        try:
            value = dep.get_hash().value
        except FileNotFoundError:
            value = None
        text = json.dumps(value, sort_keys=True, default=str)
        out[dep.def_path] = hashlib.sha256(text.encode()).hexdigest()
    return out


def _produced(stages) -> set[str]:
    return {str(o.fs_path) for s in stages for o in s.outs}


def _matches(name: str, globs: list[str]) -> bool:
    """As DVC's targets: a glob of stage names, or a matrix stage's name for all its items."""
    return any(fnmatch.fnmatch(name, g) or name.split("@")[0] == g for g in globs)


def plan(globs: list[str], python: list[str], single_item: bool = False) -> list[Array]:
    """The job arrays of what ``dvc repro [-s] [globs]`` would run, upstream first."""
    import networkx as nx

    with _repo() as repo:
        graph = repo.index.graph
        by_name = {s.addressing: s for s in graph.nodes}
        stale = {n for n in repo.status() if n in by_name}
        if single_item:  # as dvc repro -s TARGETS: the matching stages that are stale or after one that runs
            chosen = {n for n in by_name if _matches(n, globs)}
            run = chosen & stale
            for name in list(run):
                run |= {s.addressing for s in nx.ancestors(graph, by_name[name])} & chosen  # edges point upstream
        elif globs:  # as dvc repro TARGETS: the matching stale stages and the stale stages upstream of them
            run = {n for n in stale if _matches(n, globs)}
            for name in list(run):
                run |= {s.addressing for s in nx.descendants(graph, by_name[name])} & stale
        else:  # as dvc repro: the stale stages and every stage downstream of them
            run = set(stale)
            for name in stale:
                run |= {s.addressing for s in nx.ancestors(graph, by_name[name])}
        order = [s.addressing for s in reversed(list(nx.topological_sort(graph))) if s.addressing in run]
        produced = _produced(by_name[n] for n in run)
        arrays: dict[str, Array] = {}
        for name in order:
            stage = by_name[name]
            family = name.split("@")[0]
            words = shlex.split(stage.cmd if isinstance(stage.cmd, str) else " ".join(stage.cmd))
            if words[:1] == ["python"]:
                words = [*python, *words[1:]]
            ups = {s.addressing for s in graph.successors(stage) if s.addressing in run}
            a = arrays.setdefault(family, Array(family, [], [], set(), [], []))
            a.stages.append(name)
            a.commands.append(words)
            a.after |= {u.split("@")[0] for u in ups} - {family}
            a.deps.append(dependency_hashes(stage, produced))
            a.upstream.append(ups)
    return list(arrays.values())


def _sbatch(script: Path, flags: list[str], command, env: dict[str, str]) -> str:
    """Write the batch script and submit it: the job id."""
    script.write_text(slurm.batch_script(flags, command, env))
    res = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True)
    if res.returncode != 0:
        raise UserError(f"sbatch {script} failed: {(res.stderr.strip().splitlines() or ['no message'])[-1]}")
    return res.stdout.strip().split(";")[0]


#: The params file DVC's stages read (dvc.yaml's ``params:`` lists no other file).
DVC_PARAMS = "params.yaml"


def dvc_params(params_file: str, who: str = "submit"):
    """The params DVC's stages read; refuse a params file with other content: their jobs and dvc.lock
    follow params.yaml."""
    p = read_params(params_file)  # a missing or bad file: its own one line
    here, dvc = Path(params_file), Path(DVC_PARAMS)
    if here.resolve() != dvc.resolve() and (not dvc.is_file() or dvc.read_bytes() != here.read_bytes()):
        raise UserError(
            f"pipeline {who} --params {params_file}: DVC's stages read {DVC_PARAMS}, which differs from it; "
            f"cp {params_file} {DVC_PARAMS} (as scripts/profile.sh does), then {who}"
        )
    return p  # byte for byte DVC's: its settings are those of the stages


def submit(params_file: str, globs: list[str], wait: bool, single_item: bool = False) -> int:
    p = dvc_params(params_file)
    params_file = DVC_PARAMS  # the same content: the jobs, the manifest and dvc.lock name DVC's file
    s, resources = slurm_settings(p.pipeline.slurm, f"{p.path}: pipeline.slurm")
    slurm.check_tools("sd-darts pipeline submit")
    from .stage import PARAMS_ENV

    workdir = Path.cwd()
    folder = (workdir / Layout(p.profile).slurm).resolve()
    python = [*shlex.split(s.command_prefix), "python"] if s.command_prefix else [sys.executable]
    arrays = plan(globs, python, single_item)
    if not arrays:
        print("pipeline submit: nothing to run (dvc status is clean for the chosen stages)")
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    env = {PARAMS_ENV: params_file}
    ids: dict[str, str] = {}
    jobs = []
    for a in arrays:
        r = resources[KIND[a.family]] if a.family in KIND else LIGHT
        tasks = slurm.tasks_of(p, KIND.get(a.family, ""))
        flags = slurm.sbatch_flags(s, r, a.family, folder / f"{a.family}-%A_%a.out", workdir, tasks)
        flags.append(f"--array=0-{len(a.stages) - 1}")
        if a.after:
            flags += [
                "--dependency=" + ",".join(f"afterok:{ids[f]}" for f in sorted(a.after)),
                "--kill-on-invalid-dep=yes",
            ]
        stages = list(zip(a.stages, a.commands, strict=True))
        ids[a.family] = _sbatch(folder / f"{a.family}.array.sbatch", flags, stages, env)
        for i, (name, deps) in enumerate(zip(a.stages, a.deps, strict=True)):
            log = folder / f"{a.family}-{ids[a.family]}_{i}.out"
            jobs.append({"stage": name, "job": f"{ids[a.family]}_{i}", "log": str(log), "deps": deps})
        print(
            f"pipeline submit: {a.family}: job array {ids[a.family]} ({len(a.stages)} stages)"
            + (f", after {', '.join(sorted(a.after))}" if a.after else ""),
            flush=True,
        )
    manifest = {"params": params_file, "jobs": jobs}
    if not wait:  # nobody waits: a last job records what completed once every array has ended
        flags = slurm.sbatch_flags(s, LIGHT, RECORD, folder / f"{RECORD}-%j.out", workdir)
        flags.append("--dependency=afterany:" + ":".join(ids.values()))
        command = [*python, "-m", "sd_darts", "pipeline", "record", "--params", params_file]
        job = _sbatch(folder / f"{RECORD}.sbatch", flags, command, env)
        manifest["record"] = {"stage": RECORD, "job": job, "log": str(folder / f"{RECORD}-{job}.out")}
        print(f"pipeline submit: job {job} records the completed stages in dvc.lock when the arrays have ended")
    files.write_json(folder / MANIFEST, manifest)
    if not wait:
        return 0
    return record(jobs, _until_ended(jobs, s.poll_seconds))


def states(jobs: list[dict]) -> dict[str, tuple[str, str]]:
    """``job id -> (state, elapsed)``, from sacct, else squeue (queued or running), else scontrol
    (jobs that ended within its MinJobAge, a few minutes)."""
    ids = sorted({j["job"].split("_")[0] for j in jobs})
    res = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", ",".join(ids), "-o", "JobID,State,Elapsed"], capture_output=True, text=True
    )
    out: dict[str, tuple[str, str]] = {}
    if res.returncode == 0:
        for row in res.stdout.splitlines():
            job, state, elapsed = row.split("|")
            out[job] = (state.split()[0], elapsed)
    for j in jobs:  # tasks that never started (cancelled by a failed dependency) have one row per array
        array = j["job"].split("_")[0]
        rows = [v for k, v in out.items() if k.startswith(f"{array}_[")]
        if j["job"] not in out and rows and rows[0][0] in slurm.FINAL:
            out[j["job"]] = rows[0]
    res = subprocess.run(["squeue", "-h", "-r", "-j", ",".join(ids), "-o", "%i|%T|%M"], capture_output=True, text=True)
    for row in res.stdout.splitlines() if res.returncode == 0 else []:
        job, state, elapsed = row.split("|")
        out.setdefault(job, (state, elapsed))
    for j in jobs:
        if j["job"] not in out and (got := slurm.job_fields(j["job"])) is not None:
            out[j["job"]] = (got["JobState"], got.get("RunTime", ""))
    return out


def _manifest(path: Path) -> dict:
    if not path.exists():
        raise UserError(f"{path} does not exist; run sd-darts pipeline submit first")
    return files.read_json(path, what="submission manifest")


def _last(params_file: str) -> Path:
    return Layout(read_params(params_file).profile).slurm / MANIFEST


def _until_ended(jobs: list[dict], poll: float, tries: int | None = None) -> dict[str, tuple[str, str]]:
    """Poll the jobs' states until every one has ended (or ``tries`` polls): the last states."""
    n = 0
    while True:
        st = states(jobs)
        n += 1
        if all(st.get(j["job"], ("UNKNOWN", ""))[0] in slurm.FINAL for j in jobs) or n == tries:
            return st
        time.sleep(poll)


def record(jobs: list[dict], st: dict[str, tuple[str, str]], who: str = "submit") -> int:
    """``dvc commit`` exactly the completed stages of the submission whose dependencies are those it
    was submitted with; name each failed stage and its log; refuse the changed ones in one line
    (``who``: the ``sd-darts pipeline`` action that ran them, submit or run)."""
    running = [j for j in jobs if st.get(j["job"], ("UNKNOWN", ""))[0] not in slurm.FINAL]
    if running:
        j = running[0]
        raise UserError(
            f"pipeline record: {len(running)} jobs of the submission have not ended ({j['stage']}: "
            f"{st.get(j['job'], ('UNKNOWN', ''))[0]}, job {j['job']}); wait for them (sd-darts pipeline status)"
        )
    done = [j for j in jobs if st[j["job"]][0] == "COMPLETED"]
    changed: list[str] = []
    with _repo() as repo:
        by_name = {s.addressing: s for s in repo.index.graph.nodes}
        produced = _produced(by_name[j["stage"]] for j in jobs if j["stage"] in by_name)
        for j in done:
            now = dependency_hashes(by_name[j["stage"]], produced) if j["stage"] in by_name else {}
            diff = sorted(k for k in {*now, *j["deps"]} if now.get(k) != j["deps"].get(k))
            if diff:
                changed.append(f"{j['stage']} ({', '.join(diff)})")
            else:
                repo.commit(j["stage"], force=True)
    failed = [j for j in jobs if st[j["job"]][0] not in ("COMPLETED", "CANCELLED")]
    cancelled = [j for j in jobs if st[j["job"]][0] == "CANCELLED"]
    for j in failed:
        print(f"pipeline {who}: {j['stage']} {st[j['job']][0]} (job {j['job']}); log {j['log']}", file=sys.stderr)
    print(
        f"pipeline {who}: {len(done) - len(changed)} stages completed and recorded in dvc.lock, "
        f"{len(failed)} failed, {len(cancelled)} cancelled",
        flush=True,
    )
    if changed:
        raise UserError(
            f"not recorded: {len(changed)} completed stages whose dependencies changed since the submission, so "
            f"their outputs are not what DVC would record: {'; '.join(changed)}; run sd-darts pipeline {who} again"
        )
    return 1 if failed or cancelled else 0


def _all_jobs(data: dict) -> list[dict]:
    return data["jobs"] + ([data["record"]] if "record" in data else [])


def status(params_file: str) -> int:
    jobs = _all_jobs(_manifest(_last(params_file)))
    st = states(jobs)
    for j in jobs:
        state, elapsed = st.get(j["job"], ("UNKNOWN", ""))
        print(f"{j['stage']}\t{j['job']}\t{state}\t{elapsed}\t{j['log']}")
    return 0


def record_last(params_file: str) -> int:
    """``sd-darts pipeline record``: record the last submission's completed stages (its record job runs it)."""
    jobs = _manifest(_last(params_file))["jobs"]
    # The record job starts when the controller says the arrays ended; sacct may lag a minute.
    return record(jobs, _until_ended(jobs, 2.0, tries=30))


def cancel(params_file: str) -> int:
    jobs = _all_jobs(_manifest(_last(params_file)))
    ids = sorted({j["job"].split("_")[0] for j in jobs})
    subprocess.run(["scancel", *ids], check=False)
    print(f"pipeline cancel: scancel {' '.join(ids)}")
    return 0
