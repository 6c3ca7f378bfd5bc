"""Corner pools against their brute-force definitions, and the CornerPool module."""

import pytest
import torch

from hgtrain.models.corner_pool import BottomPool, CornerPool, LeftPool, RightPool, TopPool


def _brute_force(x, pool):
    out = torch.empty_like(x)
    _, _, height, width = x.shape
    for i in range(height):
        for j in range(width):
            if pool == "top":  # itself and everything below
                region = x[:, :, i:, j]
            elif pool == "bottom":  # itself and everything above
                region = x[:, :, : i + 1, j]
            elif pool == "left":  # itself and everything to the right
                region = x[:, :, i, j:]
            else:  # right: itself and everything to the left
                region = x[:, :, i, : j + 1]
            out[:, :, i, j] = region.amax(dim=2)
    return out


@pytest.mark.parametrize(
    ("module", "name"),
    [(TopPool, "top"), (LeftPool, "left"), (BottomPool, "bottom"), (RightPool, "right")],
)
def test_pool_matches_brute_force_definition(module, name):
    x = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(module()(x), _brute_force(x, name))


@pytest.mark.parametrize(
    ("module", "name"),
    [(TopPool, "top"), (LeftPool, "left"), (BottomPool, "bottom"), (RightPool, "right")],
)
@pytest.mark.parametrize("size", [(1, 1), (5, 7), (8, 16), (13, 3)])
def test_pool_gives_the_same_values_with_the_onnx_formulation(module, name, size, monkeypatch):
    # ONNX has no cummax: during torch.onnx.export the pools take the max over doubling shifts.
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    x[:, :, ::2] = x[:, :, ::2].round()  # exact ties too
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    assert torch.equal(module()(x), _brute_force(x, name))


def test_pool_gradient_goes_to_the_maximum():
    x = torch.tensor([[[[0.0], [3.0], [1.0], [2.0]]]], requires_grad=True)  # one column
    TopPool()(x).sum().backward()
    # Outputs (top to bottom) are 3, 3, 2, 2: rows 0 and 1 take row 1, rows 2 and 3 take row 3.
    assert x.grad.flatten().tolist() == [0.0, 2.0, 0.0, 2.0]


def test_corner_pool_has_the_original_parameter_count_and_keeps_the_shape():
    module = CornerPool(256, TopPool, LeftPool)
    assert sum(p.numel() for p in module.parameters()) == 1_542_144
    small = CornerPool(16, BottomPool, RightPool, pool_dim=8)
    x = torch.randn(2, 16, 6, 5)
    assert small(x).shape == x.shape


def test_corner_pool_state_dict_keys_follow_the_original():
    keys = set(CornerPool(8, TopPool, LeftPool, pool_dim=4).state_dict())
    assert {
        "p1_conv1.conv.weight",
        "p2_conv1.bn.running_mean",
        "p_conv1.weight",
        "p_bn1.weight",
        "conv1.weight",
        "bn1.bias",
        "conv2.conv.weight",
        "conv2.bn.weight",
    } <= keys
