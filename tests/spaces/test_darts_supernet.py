"""DARTS candidate ops, search-space registry and the DARTS supernet (tiny sizes, CPU)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from sd_darts.errors import UserError
from sd_darts.genotypes import PRIMITIVES, Genotype, genotype_from_dict, genotype_to_dict
from sd_darts.spaces import SPACE_NAMES, SearchSpace, get_space
from sd_darts.spaces.darts.ops import OPS, FactorizedReduce, Identity, Zero, drop_path
from sd_darts.spaces.darts.supernet import DartsSupernet, MixedOp

C, LAYERS, CLASSES = 4, 5, 10


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 16, 16, generator=g), torch.tensor([1, 7])


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return get_space("darts").build(C, LAYERS, CLASSES)


# ---------------------------------------------------------------------------------------------
# ops
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [8, 9])
@pytest.mark.parametrize("stride", [1, 2])
def test_ops_keep_channels_and_reduce_by_stride(size, stride):
    x = torch.randn(2, 6, size, size)
    out_size = -(-size // stride)
    for name in PRIMITIVES:
        op = OPS[name](6, stride, True)
        assert op(x).shape == (2, 6, out_size, out_size), name
    assert isinstance(OPS["skip_connect"](6, 1, True), Identity)
    assert isinstance(OPS["skip_connect"](6, 2, True), FactorizedReduce)
    assert not OPS["none"](6, 2, False)(x).any()
    # affine=False really removes the BN parameters (search supernet convention)
    assert all(p.dim() == 4 for p in OPS["sep_conv_3x3"](6, 1, False).parameters())


def test_zero_does_not_propagate_non_finite_inputs():
    x = torch.full((1, 2, 4, 4), float("nan"))
    assert torch.equal(Zero(1)(x), torch.zeros(1, 2, 4, 4))


def test_factorized_reduce_matches_darts_on_even_sizes():
    torch.manual_seed(0)
    fr = FactorizedReduce(6, 8, affine=False).eval()
    x = torch.randn(2, 6, 8, 8)
    r = F.relu(x)
    expected = fr.bn(torch.cat([fr.conv_1(r), fr.conv_2(r[:, :, 1:, 1:])], dim=1))
    torch.testing.assert_close(fr(x), expected)
    assert FactorizedReduce(6, 7)(x).shape == (2, 7, 4, 4)  # odd C_out


def test_drop_path_is_out_of_place_and_unbiased():
    torch.manual_seed(0)
    x = torch.ones(4000, 3, 2, 2, requires_grad=True)
    y = drop_path(x, 0.3, training=True)
    assert y is not x and torch.equal(x.detach(), torch.ones_like(x))
    per_sample = y.detach().flatten(1)
    # Whole samples are dropped or kept and scaled by 1/keep.
    assert torch.all((per_sample == 0).all(1) | torch.isclose(per_sample, torch.tensor(1 / 0.7)).all(1))
    kept = (per_sample[:, 0] != 0).float().mean().item()
    assert abs(kept - 0.7) < 0.04
    assert abs(per_sample.mean().item() - 1.0) < 0.06
    y.sum().backward()  # autograd through the mask works on a leaf
    assert x.grad is not None
    assert drop_path(x, 0.3, training=False) is x
    assert drop_path(x, 0.0, training=True) is x


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------


def test_registry():
    space = get_space("darts")
    assert isinstance(space, SearchSpace)
    assert (space.name, space.default_channels, space.default_layers) == ("darts", 16, 8)
    assert SPACE_NAMES == ("darts", "nb201")
    with pytest.raises(UserError, match="known spaces: darts, nb201"):
        get_space("nasnet")


# ---------------------------------------------------------------------------------------------
# supernet
# ---------------------------------------------------------------------------------------------


def test_forward_shape_and_alphas(model, batch):
    x, _ = batch
    assert model(x).shape == (2, CLASSES)
    alphas = model.arch_parameters()
    assert [a.shape for a in alphas] == [(14, 8), (14, 8)]
    assert all(a.abs().max() < 0.01 for a in alphas)  # 1e-3 * N(0, 1) init
    state = model.state_dict()
    assert torch.equal(state["alphas_normal"], model.alphas_normal)
    assert torch.equal(state["alphas_reduce"], model.alphas_reduce)
    weight_ids = {id(p) for p in model.weights()}
    assert not weight_ids & {id(a) for a in alphas}
    names = [n for n, _ in model.named_weights()]
    assert "alphas_normal" not in names and len(names) == len(model.weights())
    assert len(weight_ids) + 2 == len(list(model.parameters()))


def test_reduction_cells_and_channels(model, batch):
    x, _ = batch
    assert [cell.reduction for cell in model.cells] == [False, True, False, True, False]
    shapes = []
    hooks = [cell.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:]))) for cell in model.cells]
    model(x)
    for h in hooks:
        h.remove()
    # multiplier 4: cell output = 4 * C_curr, C_curr doubles at each reduction
    assert shapes == [(16, 16, 16), (32, 8, 8), (32, 8, 8), (64, 4, 4), (64, 4, 4)]
    cell = model.cells[2]  # the cell after a reduction gets a FactorizedReduce on input 0
    assert isinstance(cell.preprocess0, FactorizedReduce)
    assert not isinstance(model.cells[1].preprocess0, FactorizedReduce)
    assert len(cell._ops) == 14 and all(isinstance(op, MixedOp) for op in cell._ops)
    # stride 2 only on the edges leaving the two inputs of a reduction cell
    strided = [i for i, op in enumerate(model.cells[1]._ops) if isinstance(op._ops[0], Zero) and op._ops[0].stride == 2]
    assert strided == [0, 1, 2, 3, 5, 6, 9, 10]
    # pooling followed by BN(affine=False) in the supernet
    pool = cell._ops[0]._ops[PRIMITIVES.index("max_pool_3x3")]
    assert isinstance(pool[1], torch.nn.BatchNorm2d) and not pool[1].affine


def test_backward_reaches_alphas_and_weights(model, batch):
    x, y = batch
    F.cross_entropy(model(x), y).backward()
    for a in model.arch_parameters():
        assert a.grad is not None and a.grad.abs().sum() > 0
    missing = [n for n, p in model.named_weights() if p.grad is None]
    assert not missing


def test_genotype_follows_alphas(model):
    g = model.genotype()
    assert isinstance(g, Genotype)
    assert genotype_from_dict(genotype_to_dict(g)) == g
    with torch.no_grad():
        model.alphas_normal[:, PRIMITIVES.index("none")] = 10.0  # ignored by the DARTS rule
        model.alphas_normal[:, PRIMITIVES.index("dil_conv_5x5")] = 5.0
        model.alphas_reduce[:, PRIMITIVES.index("skip_connect")] = 5.0
    g = model.genotype()
    assert {op for op, _ in g.normal} == {"dil_conv_5x5"}
    assert {op for op, _ in g.reduce} == {"skip_connect"}
    assert g.normal_concat == g.reduce_concat == [2, 3, 4, 5]


def test_functional_call_matches_module(model, batch):
    x, _ = batch
    torch.manual_seed(1)
    replaced = {n: p.detach() + 0.05 * torch.randn_like(p) for n, p in model.named_weights()}
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in twin.named_parameters():
            if n in replaced:
                p.copy_(replaced[n])
    for mode in (True, False):
        model.train(mode)
        twin.train(mode)
        out_functional = functional_call(model, replaced, (x,))
        out_module = twin(x)
        torch.testing.assert_close(out_functional, out_module)
    # The module's own weights were not touched, so its output differs from the twin's.
    assert not torch.allclose(model(x), twin(x))
    # Replacing the alphas through functional_call is honoured as well.
    alphas = {"alphas_normal": torch.zeros(14, 8), "alphas_reduce": torch.zeros(14, 8)}
    assert not torch.allclose(functional_call(model, alphas, (x,)), model(x))


def test_state_dict_round_trip_restores_alphas(model, batch):
    x, _ = batch
    with torch.no_grad():
        model.alphas_normal.normal_()
    model.eval()
    fresh = DartsSupernet(C, CLASSES, LAYERS).eval()
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(x), model(x))
    assert fresh.genotype() == model.genotype()
