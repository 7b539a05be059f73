"""The capturable first-order step (issue 11) equals the reference loop of sd_darts.search
(Architect + SearchObjective + SGD + clip_grad_norm_, first order) and never synchronises with
the host."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from sd_darts.architect import Architect
from sd_darts.distill import TeacherCache
from sd_darts.search import SearchConfig, SearchObjective, reference_step
from sd_darts.search_step import FirstOrderStep, GraphedStep, StepSettings
from sd_darts.spaces.darts import DartsSupernet
from sd_darts.spaces.darts_fused import FusedDartsSupernet

C, LAYERS, CLASSES, B, N_SAMPLES = 4, 5, 10, 4, 24
EPOCHS, STEPS_PER_EPOCH = 3, 2


def _settings(method="sd-darts", sd_lambda=1.0):
    return StepSettings(
        method=method,
        warmup_epochs=1,
        window=2,
        sd_lambda=sd_lambda,
        grad_clip=0.5,
        arch_learning_rate=3e-3,
        temperature=2.0,
    )


def _lr(epoch):
    return 0.1 * 0.5**epoch


def _batches(dtype=torch.float64):
    for epoch in range(EPOCHS):
        for b in range(STEPS_PER_EPOCH):
            g = torch.Generator().manual_seed(100 * epoch + b)
            perm = torch.randperm(N_SAMPLES, generator=g)
            yield (
                epoch,
                torch.randn(B, 3, 16, 16, generator=g, dtype=dtype),
                torch.randint(0, CLASSES, (B,), generator=g),
                perm[:B],
                torch.randn(B, 3, 16, 16, generator=g, dtype=dtype),
                torch.randint(0, CLASSES, (B,), generator=g),
                perm[B : 2 * B],
            )


def _reference_run(model, s: StepSettings):
    """sd_darts.search's loop body, first order, with the step's settings."""
    cfg = SearchConfig(
        method=s.method,
        epochs=EPOCHS,
        warmup_epochs=s.warmup_epochs,
        window=s.window,
        sd_lambda=s.sd_lambda,
        temperature=s.temperature,
        init_channels=C,
        layers=LAYERS,
    )
    cfg.validate()
    cache = TeacherCache(N_SAMPLES, CLASSES, s.window) if s.method == "sd-darts" else None
    objective = SearchObjective(model, cfg, cache)
    w_opt = torch.optim.SGD(model.weights(), lr=0.1, momentum=s.momentum, weight_decay=s.weight_decay)
    architect = Architect(model, objective, arch_learning_rate=s.arch_learning_rate,
                          arch_weight_decay=s.arch_weight_decay, betas=(s.arch_beta1, s.arch_beta2))  # fmt: skip
    valid_losses, train_losses = [], []
    for epoch, x, y, i, xv, yv, iv in _batches(model.alphas_normal.dtype):
        objective.set_epoch(epoch)
        for group in w_opt.param_groups:
            group["lr"] = _lr(epoch)
        _, logits, v_loss, _ = reference_step(
            architect, objective, w_opt, (x, y, i), (xv, yv, iv), _lr(epoch), s.grad_clip
        )
        valid_losses.append(v_loss.item())
        train_losses.append(torch.nn.functional.cross_entropy(logits.detach(), y).item())
    return valid_losses, train_losses, cache


def _step_run(model, s: StepSettings):
    cache = TeacherCache(N_SAMPLES, CLASSES, s.window) if s.method == "sd-darts" else None
    step = FirstOrderStep(model, s, cache)
    valid_losses, train_losses = [], []
    for epoch, x, y, i, xv, yv, iv in _batches(model.alphas_normal.dtype):
        step.set_epoch(epoch, _lr(epoch))
        step.reset_metrics()
        step(x, y, i, xv, yv, iv)
        m = step.read_metrics()
        valid_losses.append(m["valid_loss"] / B)
        train_losses.append(m["train_loss"] / B)
    return valid_losses, train_losses, cache, step


def _models(kind):
    torch.manual_seed(0)
    ref = DartsSupernet(C, CLASSES, LAYERS).double()
    model = copy.deepcopy(ref) if kind == "reference" else FusedDartsSupernet.from_reference(copy.deepcopy(ref))
    return ref, model


def _state(model):
    return model.reference_state_dict() if isinstance(model, FusedDartsSupernet) else model.state_dict()


@pytest.mark.parametrize("kind", ["reference", "fused"])
@pytest.mark.parametrize("method", ["sd-darts", "darts"])
def test_steps_equal_the_reference_loop(kind, method):
    s = _settings(method)
    ref, model = _models(kind)
    rv, rt, rcache = _reference_run(ref, s)
    sv, st, scache, _ = _step_run(model, s)
    # the metrics accumulate in float32; losses agree to its precision, weights to float64's
    torch.testing.assert_close(torch.tensor(sv), torch.tensor(rv), rtol=1e-6, atol=0)
    torch.testing.assert_close(torch.tensor(st), torch.tensor(rt), rtol=1e-6, atol=0)
    mine = _state(model)
    for name, t in ref.state_dict().items():
        torch.testing.assert_close(mine[name], t, rtol=0, atol=1e-12, msg=name)
    if method == "sd-darts":
        assert torch.equal(scache.epochs, rcache.epochs)
        torch.testing.assert_close(scache.probs, rcache.probs, rtol=0, atol=1e-6)
        assert bool((rcache.epochs >= 0).any())  # the cache was used


def test_lambda_zero_is_darts_bit_for_bit():
    torch.manual_seed(0)
    base = DartsSupernet(C, CLASSES, LAYERS)
    runs = []
    for s in (_settings("darts"), _settings("sd-darts", sd_lambda=0.0)):
        model = FusedDartsSupernet.from_reference(copy.deepcopy(base))
        sv, st, _, _ = _step_run(model, s)
        runs.append((sv, st, model.reference_state_dict()))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    for name, t in runs[0][2].items():
        assert torch.equal(t, runs[1][2][name]), name


def test_resume_from_state_dict_continues_exactly():
    s = _settings()
    _, model = _models("fused")
    batches = list(_batches())
    cache = TeacherCache(N_SAMPLES, CLASSES, s.window)
    step = FirstOrderStep(model, s, cache)
    for k, (epoch, *batch) in enumerate(batches):
        step.set_epoch(epoch, _lr(epoch))
        step(*batch)
        if k == 2:
            saved = (copy.deepcopy(model.state_dict()), step.state_dict(), cache.state_dict())
    _, resumed = _models("fused")
    resumed.load_state_dict(saved[0])
    cache2 = TeacherCache(N_SAMPLES, CLASSES, s.window)
    cache2.load_state_dict(saved[2])
    step2 = FirstOrderStep(resumed, s, cache2)
    step2.load_state_dict(saved[1])
    for epoch, *batch in batches[3:]:
        step2.set_epoch(epoch, _lr(epoch))
        step2(*batch)
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


# ---- no host synchronisation ------------------------------------------------------------------

SYNC_OPS = {"_local_scalar_dense", "item", "is_nonzero", "equal", "nonzero", "masked_select", "unique"}
SYNC_METHODS = {"item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__", "nonzero"}


class HostSyncDetector(TorchDispatchMode):
    """Records every operator that reads a tensor value on the host: at the dispatcher
    (``aten._local_scalar_dense`` and friends) and at the Python level (``.item()``,
    ``.tolist()``, ``float(t)``, ``bool(t)``, ...)."""

    def __init__(self):
        super().__init__()
        self.hits: list[str] = []
        detector = self

        class _Methods(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                name = getattr(func, "__name__", "")
                if name in SYNC_METHODS:
                    detector.hits.append(name)
                return func(*args, **(kwargs or {}))

        self._methods = _Methods()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in SYNC_OPS:
            self.hits.append(str(func))
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        self._methods.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self._methods.__exit__(*exc)


def test_the_detector_catches_host_reads():
    t = torch.ones(2)
    for read in (lambda: t.sum().item(), lambda: float(t.sum()), lambda: t.tolist(), lambda: bool(t.all())):
        with HostSyncDetector() as d:
            read()
        assert d.hits, read


@pytest.mark.parametrize("method", ["sd-darts", "darts"])
def test_a_step_never_reads_a_tensor_on_the_host(method):
    s = _settings(method)
    _, model = _models("fused")
    step = FirstOrderStep(model, s, TeacherCache(N_SAMPLES, CLASSES, 2) if method == "sd-darts" else None)
    step.set_epoch(1, 0.1)  # KD and recording on
    epoch, *batch = next(iter(_batches()))
    with HostSyncDetector() as d:
        step(*batch)
        step(*batch)
    assert d.hits == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_step_and_graph_replay_do_not_synchronise():
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = FusedDartsSupernet.from_reference(DartsSupernet(C, CLASSES, LAYERS)).to(dev)
    eager = copy.deepcopy(model)
    s = _settings()
    step = FirstOrderStep(model, s, TeacherCache(N_SAMPLES, CLASSES, 2, dev))
    ref_step = FirstOrderStep(eager, s, TeacherCache(N_SAMPLES, CLASSES, 2, dev))
    graphed = GraphedStep(step, warmup=2)
    batches = [[t.to(dev) for t in b[1:]] for b in _batches(torch.float32)]
    step.set_epoch(1, 0.1)
    ref_step.set_epoch(1, 0.1)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for batch in batches:
            graphed(*batch)
            ref_step(*batch)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert graphed.graph is not None
    for (name, a), b in zip(model.state_dict().items(), eager.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.skipif(
    os.environ.get("SD_DARTS_SLOW_TESTS") != "1", reason="torch.compile takes minutes on CPU; set SD_DARTS_SLOW_TESTS=1"
)
@pytest.mark.parametrize("mode", ["model", "step"])
def test_compiled_step_matches_the_eager_step(mode):
    torch.manual_seed(0)
    base = FusedDartsSupernet.from_reference(DartsSupernet(C, CLASSES, 3))
    runs = []
    for compile_mode in (None, mode):
        model = copy.deepcopy(base)
        step = FirstOrderStep(model, _settings(), TeacherCache(N_SAMPLES, CLASSES, 2), compile=compile_mode)
        for epoch, *batch in _batches(torch.float32):
            step.set_epoch(epoch, _lr(epoch))
            step(*batch)
        runs.append(model.state_dict())
    for name, t in runs[0].items():
        if t.is_floating_point():
            torch.testing.assert_close(runs[1][name], t, rtol=1e-4, atol=1e-5, msg=name)


def test_bf16_autocast_step_runs_and_keeps_float32_state():
    _, model = _models("fused")
    model = model.float()
    step = FirstOrderStep(model, _settings(), TeacherCache(N_SAMPLES, CLASSES, 2), amp=True)
    before = model.alphas_normal.detach().clone()
    for epoch, *batch in _batches(torch.float32):
        step.set_epoch(epoch, _lr(epoch))
        step(*batch)
    m = step.read_metrics()
    assert all(torch.isfinite(torch.tensor(v)) for v in m.values())
    assert model.alphas_normal.dtype == torch.float32 and not torch.equal(model.alphas_normal, before)
