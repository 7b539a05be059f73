"""Evaluation networks (paper §4.2/§4.3, DARTS macro structure): shapes, gradients, auxiliary
heads, drop path, and DARTS_V2's parameter count at the CIFAR-10 setting."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sd_darts.evaluation.networks import (
    AuxiliaryHeadCIFAR,
    AuxiliaryHeadImageNet,
    Cell,
    NetworkCIFAR,
    NetworkImageNet,
    auxiliary_input_ok,
    count_parameters,
)
from sd_darts.genotypes import DARTS_V2, SD_DARTS, Genotype


@pytest.fixture(autouse=True)
def _threads():
    torch.manual_seed(0)


def test_cifar_network_shapes_and_gradients():
    net = NetworkCIFAR(4, 10, 3, True, SD_DARTS)
    net.drop_path_prob = 0.2
    x = torch.randn(2, 3, 32, 32)
    logits, aux = net(x)
    assert logits.shape == (2, 10) and aux.shape == (2, 10)
    (logits.sum() + 0.4 * aux.sum()).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    net.eval()
    logits, aux = net(x)
    assert aux is None and logits.shape == (2, 10)


def test_cifar_reductions_and_channels():
    net = NetworkCIFAR(4, 10, 6, False, DARTS_V2)
    reductions = [i for i, c in enumerate(net.cells) if c.reduction]
    assert reductions == [2, 4]  # layers // 3 and 2 * layers // 3
    # Stem 3·C, final cell outputs 4 nodes × 4C (two doublings).
    assert net.stem[0].out_channels == 12
    assert net.classifier.in_features == 4 * 4 * 4
    # First cell after a reduction preprocesses c_{k-2} with FactorizedReduce.
    from sd_darts.spaces.darts.ops import FactorizedReduce, ReLUConvBN

    assert isinstance(net.cells[3].preprocess0, FactorizedReduce)
    assert isinstance(net.cells[1].preprocess0, ReLUConvBN)


def test_imagenet_network_shapes_with_aux_at_224():
    net = NetworkImageNet(4, 7, 3, True, SD_DARTS)
    # The first cell treats its input as reduced (stem1 halves stem0's output).
    from sd_darts.spaces.darts.ops import FactorizedReduce

    assert isinstance(net.cells[0].preprocess0, FactorizedReduce)
    x = torch.randn(2, 3, 224, 224)
    logits, aux = net(x)
    assert logits.shape == (2, 7) and aux.shape == (2, 7)
    (logits.sum() + aux.sum()).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_imagenet_network_without_aux_other_size():
    net = NetworkImageNet(4, 5, 3, False, DARTS_V2).eval()
    logits, aux = net(torch.randn(1, 3, 64, 64))
    assert logits.shape == (1, 5) and aux is None


def test_darts_v2_parameter_count_matches_darts():
    """DARTS_V2 at C=36, 20 cells, CIFAR-10: 3,349,342 parameters without the auxiliary
    head (DARTS's 3.3M; quark0/darts logs 3.349342 MB).  The auxiliary head adds exactly the
    DARTS CIFAR head's parameters on 576 = 4 nodes × 144 channels."""
    net = NetworkCIFAR(36, 10, 20, True, DARTS_V2)
    assert count_parameters(net) == 3_349_342
    c_aux = 4 * 36 * 4
    head = c_aux * 128 + 2 * 128 + 128 * 768 * 2 * 2 + 2 * 768 + 768 * 10 + 10
    assert count_parameters(net, include_auxiliary=True) - count_parameters(net) == head


def _pool_cell(reduction: bool = False) -> Cell:
    edges = [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4
    g = Genotype(normal=edges, normal_concat=[2, 3, 4, 5], reduce=edges, reduce_concat=[2, 3, 4, 5])
    return Cell(g, 4, 4, 4, reduction=reduction, reduction_prev=False)


def test_drop_path_is_per_sample_and_rescaled():
    """Each node is drop(op(a)) + drop(op(b)); with parameter-free ops every sample's node
    must equal one of 0, a/(1-p), b/(1-p), (a+b)/(1-p) (per-sample masks, rescaled)."""
    cell = _pool_cell().train()
    s0, s1 = torch.randn(16, 4, 8, 8), torch.randn(16, 4, 8, 8)
    p = 0.5
    torch.manual_seed(1)
    out = cell(s0, s1, p)
    a = torch.nn.functional.max_pool2d(cell.preprocess0(s0), 3, 1, 1)
    b = torch.nn.functional.max_pool2d(cell.preprocess1(s1), 3, 1, 1)
    node0 = out[:, :4]
    seen = set()
    for n in range(16):
        options = {
            "none": torch.zeros_like(a[n]),
            "a": a[n] / (1 - p),
            "b": b[n] / (1 - p),
            "ab": (a[n] + b[n]) / (1 - p),
        }
        match = [k for k, v in options.items() if torch.allclose(node0[n], v, atol=1e-5)]
        assert match, f"sample {n} is not a drop-path combination"
        seen.add(match[0])
    assert len(seen) >= 2, "all samples got the same mask: drop path is not per sample"
    # Out of place and inactive in eval mode.
    cell.eval()
    assert torch.equal(cell(s0, s1, p), cell(s0, s1, 0.0))


def test_drop_path_never_on_identity_edges():
    edges = [("skip_connect", 0), ("skip_connect", 1)] * 4
    g = Genotype(normal=edges, normal_concat=[2, 3, 4, 5], reduce=edges, reduce_concat=[2, 3, 4, 5])
    cell = Cell(g, 4, 4, 4, reduction=False, reduction_prev=False).train()
    s0, s1 = torch.randn(8, 4, 6, 6), torch.randn(8, 4, 6, 6)
    assert torch.equal(cell(s0, s1, 0.9), cell(s0, s1, 0.0))
    # At stride 2 skip_connect is a FactorizedReduce, which does get drop path.
    red = Cell(g, 4, 4, 4, reduction=True, reduction_prev=False).train()
    torch.manual_seed(3)
    assert not torch.equal(red(s0, s1, 0.9), red(s0, s1, 0.0))


def test_network_drop_path_prob_reaches_cells():
    net = NetworkCIFAR(4, 10, 3, False, SD_DARTS).train()
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(0)
    ref, _ = net(x)
    net.drop_path_prob = 0.0
    torch.manual_seed(0)
    same, _ = net(x)
    assert torch.allclose(ref, same)
    net.drop_path_prob = 0.5
    torch.manual_seed(0)
    dropped, _ = net(x)
    assert not torch.allclose(ref, dropped)


@settings(max_examples=25, deadline=None)
@given(size=st.integers(16, 300), network=st.sampled_from(["cifar", "imagenet"]))
def test_auxiliary_input_ok_predicts_whether_the_head_runs(size, network):
    """The static check agrees with running the DARTS head on the map it would receive."""
    if network == "cifar":
        m = -(-(-(-size // 2)) // 2)  # noqa: B002  (two ceil-halvings)
        head = AuxiliaryHeadCIFAR(2, 3)
    else:
        m = size
        for _ in range(5):
            m = -(-m // 2)
        head = AuxiliaryHeadImageNet(2, 3)
    try:
        head(torch.randn(2, 2, m, m))
        runs = True
    except (RuntimeError, ValueError):
        runs = False
    assert auxiliary_input_ok(network, size) == runs


def test_auxiliary_input_ok_paper_sizes():
    assert auxiliary_input_ok("cifar", 32) and not auxiliary_input_ok("cifar", 16)
    assert auxiliary_input_ok("imagenet", 224) and not auxiliary_input_ok("imagenet", 128)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError):
        NetworkCIFAR(5, 10, 8, False, DARTS_V2)
    with pytest.raises(ValueError):
        NetworkCIFAR(4, 10, 2, False, DARTS_V2)


def test_drop_path_probability_as_a_tensor():
    """A compiled training step drives drop path with a device tensor (no recompilation per
    epoch): per-sample masks, kept samples rescaled by 1/(1-p), about p of them dropped, and the
    identity at p = 0 or in eval mode."""
    from sd_darts.spaces.darts.ops import drop_path

    x = torch.randn(4000, 3, 2, 2)
    torch.manual_seed(3)
    out = drop_path(x, torch.tensor(0.25))
    kept = out.flatten(1).abs().sum(1) > 0
    torch.testing.assert_close(out[kept], x[kept] / 0.75)
    assert torch.equal(out[~kept], torch.zeros_like(out[~kept]))
    assert abs((~kept).float().mean().item() - 0.25) < 0.03  # 4000 samples: 4.5 sigma
    assert torch.equal(drop_path(x, torch.tensor(0.0)), x)
    assert torch.equal(drop_path(x, torch.tensor(0.5), training=False), x)
    cell = _pool_cell().train()
    s0, s1 = torch.randn(8, 4, 8, 8), torch.randn(8, 4, 8, 8)
    torch.manual_seed(0)
    assert cell(s0, s1, torch.tensor(0.3)).shape == cell(s0, s1, 0.3).shape
    torch.testing.assert_close(cell(s0, s1, torch.tensor(0.0)), cell(s0, s1, 0.0))
