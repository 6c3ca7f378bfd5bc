"""The building blocks behave as the original CornerNet-Lite modules."""

import pytest
import torch

from hgtrain.models.blocks import ConvBNReLU, Fire, Residual


def test_conv_bn_relu_has_no_bias_with_bn_and_a_bias_without():
    assert ConvBNReLU(3, 4).conv.bias is None
    plain = ConvBNReLU(3, 4, with_bn=False)
    assert plain.conv.bias is not None
    assert set(plain.state_dict()) == {"conv.weight", "conv.bias"}


def test_residual_projects_whenever_stride_or_channels_change():
    assert isinstance(Residual(8, 8).skip, torch.nn.Identity)
    assert "skip.0.weight" in Residual(8, 8, stride=2).state_dict()
    assert "skip.0.weight" in Residual(8, 16).state_dict()


def test_residual_stride_two_halves_rounding_up():
    assert Residual(4, 4, stride=2)(torch.randn(1, 4, 9, 9)).shape[-1] == 5


def test_fire_adds_its_input_only_at_stride_one_with_equal_channels():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6)
    fire = Fire(8, 8).eval()
    squeezed = fire.bn1(fire.conv1(x))
    expanded = fire.bn2(torch.cat([fire.conv_1x1(squeezed), fire.conv_3x3(squeezed)], dim=1))
    torch.testing.assert_close(fire(x), torch.relu(expanded + x))
    assert not Fire(8, 8, stride=2).use_skip
    assert not Fire(8, 16).use_skip


def test_fire_has_the_original_key_layout_and_shapes():
    shapes = {k: tuple(v.shape) for k, v in Fire(8, 16).state_dict().items() if "weight" in k}
    assert shapes == {
        "conv1.weight": (8, 8, 1, 1),
        "bn1.weight": (8,),
        "conv_1x1.weight": (8, 8, 1, 1),
        "conv_3x3.weight": (8, 1, 3, 3),
        "bn2.weight": (16,),
    }


def test_fire_rejects_odd_channels():
    with pytest.raises(ValueError, match="divisible by 2"):
        Fire(8, 7)
