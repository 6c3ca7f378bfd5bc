"""The training-step benchmark, and activation checkpointing, the memory option it measures."""

import copy

import pytest
import torch

from hgtrain import build_backbone

from .models.conftest import tiny_config


def train_once(backbone: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = backbone(x)
    loss = sum(f.square().mean() for f in out.features)
    loss = loss + sum(m.mean() for stack in out.mergs for m in stack)
    loss.backward()
    return loss.detach()


@pytest.mark.parametrize("variant", ["cornernet", "saccade", "squeeze"])
def test_checkpointed_stacks_give_the_same_loss_gradients_and_statistics(variant):
    torch.manual_seed(0)
    plain = build_backbone(tiny_config(variant)).train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.checkpoint_stacks = True
    x = torch.randn(2, 3, 64, 64)

    assert torch.equal(train_once(plain, x), train_once(checkpointed, x))
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name
    # The recomputation in the backward pass must not count the batch twice.
    for (name, a), b in zip(plain.named_buffers(), checkpointed.buffers(), strict=True):
        assert torch.equal(a, b), name


def test_checkpointing_is_off_in_evaluation_and_without_grad():
    backbone = build_backbone(tiny_config("squeeze"))
    backbone.checkpoint_stacks = True
    calls = []
    backbone.hgs[0].register_forward_pre_hook(lambda *args: calls.append(1))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        backbone.train()(x)
    backbone.eval()(x)
    assert len(calls) == 2
    backbone.train()
    train_once(backbone, x)
    assert len(calls) == 4  # forward, then the recomputation in backward
