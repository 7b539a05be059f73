"""The capturable first-order step equals the reference loop of sd_darts.search.loop
(Architect + SearchObjective + SGD + clip_grad_norm_, first order) and never synchronises with
the host."""

from __future__ import annotations

import copy
import dataclasses
import os

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from sd_darts.search.architect import Architect
from sd_darts.search.config import SearchConfig
from sd_darts.search.distill import SearchObjective, TeacherCache
from sd_darts.search.fast import FirstOrderStep, GraphedStep, GraphRoute
from sd_darts.search.stacked import build_stacked
from sd_darts.search.step import StepSettings, reference_step
from sd_darts.spaces.darts.fused import FusedDartsSupernet
from sd_darts.spaces.darts.supernet import DartsSupernet

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


def _batches(dtype=torch.float64, epochs=EPOCHS, ragged=False):
    """Per epoch: STEPS_PER_EPOCH batches of B drawn from one permutation; ``ragged``: the two
    halves (samples 0..9 and 10..19) each as one pass of batches 4, 4, 2, the last one short,
    as DARTS's loaders (no drop_last) give them."""
    halves = RAGGED_HALVES if ragged else None
    for epoch in range(epochs):
        g = torch.Generator().manual_seed(1000 + epoch)
        if halves is not None:
            train, valid = (h[torch.randperm(len(h), generator=g)] for h in halves)
            sizes = [B] * (len(train) // B) + ([len(train) % B] if len(train) % B else [])
            bounds = torch.tensor([0, *sizes]).cumsum(0).tolist()
        for b in range(STEPS_PER_EPOCH if halves is None else len(sizes)):
            g = torch.Generator().manual_seed(100 * epoch + b)
            if halves is None:
                perm = torch.randperm(N_SAMPLES, generator=g)
                i, iv = perm[:B], perm[B : 2 * B]
            else:
                i, iv = train[bounds[b] : bounds[b + 1]], valid[bounds[b] : bounds[b + 1]]
            yield (
                epoch,
                torch.randn(len(i), 3, 16, 16, generator=g, dtype=dtype),
                torch.randint(0, CLASSES, (len(i),), generator=g),
                i,
                torch.randn(len(iv), 3, 16, 16, generator=g, dtype=dtype),
                torch.randint(0, CLASSES, (len(iv),), generator=g),
                iv,
            )


RAGGED_HALVES = (torch.arange(0, 10), torch.arange(10, 20))


def _reference_run(model, s: StepSettings, epochs=EPOCHS, ragged=False):
    """sd_darts.search.loop's loop body, first order, with the step's settings."""
    cfg = SearchConfig(
        method=s.method,
        epochs=epochs,
        warmup_epochs=s.warmup_epochs,
        window=s.window,
        sd_lambda=s.sd_lambda,
        temperature=s.temperature,
        init_channels=C,
        layers=LAYERS,
    )
    cfg.validate()
    cache = (
        TeacherCache(N_SAMPLES, CLASSES, s.window, dtype=model.alphas_normal.dtype) if s.method == "sd-darts" else None
    )
    objective = SearchObjective(model, cfg, cache)
    w_opt = torch.optim.SGD(model.weights(), lr=0.1, momentum=s.momentum, weight_decay=s.weight_decay)
    architect = Architect(
        model,
        objective,
        arch_learning_rate=s.arch_learning_rate,
        arch_weight_decay=s.arch_weight_decay,
        betas=(s.arch_beta1, s.arch_beta2),
    )
    valid_losses, train_losses = [], []
    for epoch, x, y, i, xv, yv, iv in _batches(model.alphas_normal.dtype, epochs, ragged):
        objective.set_epoch(epoch)
        for group in w_opt.param_groups:
            group["lr"] = _lr(epoch)
        _, logits, v_loss, _ = reference_step(
            architect, objective, w_opt, (x, y, i), (xv, yv, iv), _lr(epoch), s.grad_clip
        )
        valid_losses.append(v_loss.item())
        train_losses.append(torch.nn.functional.cross_entropy(logits.detach(), y).item())
    return valid_losses, train_losses, cache


def _step_run(model, s: StepSettings, epochs=EPOCHS, ragged=False):
    cache = (
        TeacherCache(N_SAMPLES, CLASSES, s.window, dtype=model.alphas_normal.dtype) if s.method == "sd-darts" else None
    )
    step = FirstOrderStep(model, s, cache)
    valid_losses, train_losses = [], []
    for epoch, x, y, i, xv, yv, iv in _batches(model.alphas_normal.dtype, epochs, ragged):
        step.set_epoch(epoch, _lr(epoch))
        step.reset_metrics()
        step(x, y, i, xv, yv, iv)
        m = step.read_metrics()[0]
        assert (m["train_count"], m["valid_count"]) == (len(i), len(iv))  # a short batch counts its own N
        valid_losses.append(m["valid_loss"] / m["valid_count"])
        train_losses.append(m["train_loss"] / m["train_count"])
    return valid_losses, train_losses, cache, step


def _models(kind):
    torch.manual_seed(0)
    ref = DartsSupernet(C, CLASSES, LAYERS).double()
    model = copy.deepcopy(ref) if kind == "reference" else FusedDartsSupernet.from_reference(copy.deepcopy(ref))
    return ref, model


def _state(model):
    return model.reference_state_dict() if isinstance(model, FusedDartsSupernet) else model.state_dict()


def _assert_equal_runs(ref, model, reference, mine, method):
    """In float64 throughout (metric sums, the teacher cache in the model's dtype): losses and the
    teacher's probabilities to ~1e-15, weights, BN statistics and alphas to 1e-12 after the
    optimisers' steps."""
    (rv, rt, rcache), (sv, st, scache, _) = reference, mine
    torch.testing.assert_close(torch.tensor(sv), torch.tensor(rv), rtol=1e-13, atol=0)
    torch.testing.assert_close(torch.tensor(st), torch.tensor(rt), rtol=1e-13, atol=0)
    state = _state(model)
    for name, t in ref.state_dict().items():
        torch.testing.assert_close(state[name], t, rtol=0, atol=1e-12, msg=name)
    if method == "sd-darts":
        assert torch.equal(scache.epochs, rcache.epochs)
        assert scache.probs.dtype == rcache.probs.dtype == torch.float64
        torch.testing.assert_close(scache.probs, rcache.probs, rtol=0, atol=1e-14)
        assert bool((rcache.epochs >= 0).any())  # the cache was used


@pytest.mark.parametrize("kind", ["reference", "fused"])
@pytest.mark.parametrize("method", ["sd-darts", "darts"])
def test_steps_equal_the_reference_loop(kind, method):
    s = _settings(method)
    ref, model = _models(kind)
    _assert_equal_runs(ref, model, _reference_run(ref, s), _step_run(model, s), method)


@pytest.mark.parametrize("kind", ["reference", "fused"])
def test_ragged_last_batches_equal_the_reference_loop_and_every_sample_is_recorded(kind):
    """Halves of 10 samples in batches of 4: the short batch of 2 is a step of its own N (KD and
    the means divide by it), and every sample of both halves is recorded in every epoch."""
    s = _settings()
    ref, model = _models(kind)
    mine = _step_run(model, s, ragged=True)
    _assert_equal_runs(ref, model, _reference_run(ref, s, ragged=True), mine, "sd-darts")
    epochs = mine[2].epochs[0, :, :20]  # seed 0; slot e % K holds epoch e: the last K epochs, all 20 samples
    assert (epochs[(EPOCHS - 1) % 2] == EPOCHS - 1).all() and (epochs[(EPOCHS - 2) % 2] == EPOCHS - 2).all()


@pytest.mark.parametrize("window", [2, 3])
def test_steps_equal_the_reference_loop_across_the_warmup_boundary(window):
    """ξ = 3 over 4 epochs: recording starts at max(0, ξ − K) (epoch 1 for K = 2, 0 for K = 3), KD
    in epoch 3, whose records overwrite the ring slot of epoch 3 − K while it is read; reference
    loop = reference-module step = fused step = seed 0 of two stacked seeds."""
    s = dataclasses.replace(_settings(), warmup_epochs=3, window=window)
    ref, _ = _models("reference")
    reference = _reference_run(ref, s, epochs=4)
    for kind in ("reference", "fused"):
        _, model = _models(kind)
        _assert_equal_runs(ref, model, reference, _step_run(model, s, epochs=4), "sd-darts")
    assert int(reference[2].epochs.max()) == 3
    stacked = build_stacked([0, 1], C, LAYERS, CLASSES).double()  # seed 0 is _models' supernet
    cache = TeacherCache(N_SAMPLES, CLASSES, window, num_seeds=2, dtype=torch.float64)
    step = FirstOrderStep(stacked, s, cache)
    losses = []
    for epoch, *batch in _batches(torch.float64, 4):
        step.set_epoch(epoch, _lr(epoch))
        step.reset_metrics()
        step(*(torch.stack([t, t]) for t in batch))  # both seeds see the batch: seed 0 is the single run
        m = step.read_metrics()[0]
        losses.append(m["valid_loss"] / m["valid_count"])
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(reference[0]), rtol=1e-13, atol=0)
    mine = stacked.reference_state_dict(0)
    for name, t in ref.state_dict().items():
        torch.testing.assert_close(mine[name], t, rtol=0, atol=1e-12, msg=name)
    assert torch.equal(cache.epochs[0], reference[2].epochs[0])
    torch.testing.assert_close(cache.probs[0], reference[2].probs[0], rtol=0, atol=1e-14)


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


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_which_torch_optimiser_reads_a_tensor_on_the_host(name):
    """Why the fast step writes SGD out and takes torch's Adam: torch's foreach SGD reads a tensor
    learning rate on the host (``add_(alpha=-lr)``: a CUDA graph cannot hold it), its fused Adam
    does not.  If torch's SGD stops reading it, this fails: the fast step can then use it too."""
    w = [torch.nn.Parameter(torch.randn(3, 4)) for _ in range(2)]
    for p in w:
        p.grad = torch.randn_like(p)
    if name == "SGD":
        opt = torch.optim.SGD(w, lr=torch.tensor(0.1), momentum=0.9, weight_decay=3e-4, foreach=True)
    else:
        opt = torch.optim.Adam(w, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3, fused=True)
    opt.step()  # the first step makes the state
    with HostSyncDetector() as d:
        opt.step()
    assert bool(d.hits) == (name == "SGD"), d.hits


def _cuda_steps():
    """A fused supernet on CUDA with a graphed step, and an identical one with an eager step."""
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = FusedDartsSupernet.from_reference(DartsSupernet(C, CLASSES, LAYERS)).to(dev)
    eager = copy.deepcopy(model)
    s = _settings()
    step = FirstOrderStep(model, s, TeacherCache(N_SAMPLES, CLASSES, 2, dev))
    ref_step = FirstOrderStep(eager, s, TeacherCache(N_SAMPLES, CLASSES, 2, dev))
    graphed = GraphedStep(step, warmup=2)
    return dev, model, eager, step, ref_step, graphed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_step_and_graph_replay_do_not_synchronise():
    dev, model, eager, step, ref_step, graphed = _cuda_steps()
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


def test_graph_route_runs_ragged_batches_eagerly_and_captures_the_full_shapes():
    """GraphedStep's bookkeeping: the ragged batch (before or after the capture) runs eagerly and
    is no warm-up call; the graph is captured and replayed on the first batch's shapes only."""
    full = [torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64), torch.zeros(3, 3)]
    short = [torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64), torch.zeros(3, 3)]
    routes = GraphRoute(warmup=2)
    got = [routes.route(b) for b in (full, short, full, full, short, full, [t[:2] for t in full], full)]
    assert got == ["warmup", "eager", "warmup", "capture", "eager", "replay", "eager", "replay"]
    assert routes.shapes == ((4, 3), (4,), (3, 3))
    stacked = GraphRoute(warmup=0)  # stacked seeds: (S, N, ...)
    assert [stacked.route([torch.zeros(2, n, 3)]) for n in (4, 2, 4)] == ["capture", "eager", "replay"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_runs_the_ragged_batches_eagerly_with_the_same_result():
    """Halves of 10 in batches of 4 (4, 4, 2 per epoch): the graphed step equals the eager one."""
    dev, model, eager, step, ref_step, graphed = _cuda_steps()
    for epoch, *batch in _batches(torch.float32, ragged=True):
        batch = [t.to(dev) for t in batch]
        for st in (step, ref_step):
            st.set_epoch(epoch, _lr(epoch))
        graphed(*batch)
        ref_step(*batch)
    assert graphed.graph is not None
    for (name, a), b in zip(model.state_dict().items(), eager.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    assert torch.equal(step.cache.epochs, ref_step.cache.epochs)
    counts = step.read_metrics()[0]
    assert counts["train_count"] == counts["valid_count"] == ref_step.read_metrics()[0]["train_count"] == EPOCHS * 10


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
    m = step.read_metrics()[0]
    assert all(torch.isfinite(torch.tensor(v)) for v in m.values())
    assert model.alphas_normal.dtype == torch.float32 and not torch.equal(model.alphas_normal, before)
