"""The packed output layer (models/packed_head.py): same logits as F.linear to fp32
rounding for any number of rows, switched on only inside the block and only for fp32 CPU
Linear heads, and packed again when the weight changes."""

from __future__ import annotations

import pytest
import torch

from rai_multi.models import packed_head

pytestmark = pytest.mark.skipif(not packed_head.available(), reason="this torch has no MKL packed linear")


class _Model(torch.nn.Module):
    """The one thing the packer asks of a model: its output layer."""

    def __init__(self, head: torch.nn.Module):
        super().__init__()
        self.head = head

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.head


@pytest.mark.parametrize("bias", [False, True])
def test_logits_equal_linear_for_any_rows(bias):
    torch.manual_seed(0)
    model = _Model(torch.nn.Linear(64, 3000, bias=bias))
    for shape in ((1, 64), (3, 64), (8, 64), (21, 64), (2, 5, 64)):
        x = torch.randn(*shape)
        want = model.head(x)
        with packed_head.packed_output_layer(model) as on:
            got = model.head(x)
        assert on and got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    assert "forward" not in model.head.__dict__  # the layer's own forward is back


def test_only_fp32_cpu_linear_heads_are_packed():
    for head in (torch.nn.Linear(8, 16).to(torch.bfloat16), torch.nn.Embedding(16, 8)):
        with packed_head.packed_output_layer(_Model(head)) as on:
            assert not on and "forward" not in head.__dict__


def test_a_changed_weight_is_packed_again():
    torch.manual_seed(1)
    model = _Model(torch.nn.Linear(32, 500, bias=False))
    x = torch.randn(4, 32)
    with packed_head.packed_output_layer(model):
        before = model.head(x)
        with torch.no_grad():
            model.head.weight.mul_(2.0)  # in place, as a merged adapter would
        after = model.head(x)
        with packed_head.packed_output_layer(model) as nested:
            assert nested  # an inner block finds it already packed
    assert torch.allclose(after, 2 * before, atol=1e-5, rtol=1e-5)


def test_cache_keys_name_it_where_generation_uses_it(tiny_causal):
    """fp32 answers rounded by the packed layer are not served for the unpacked one."""
    from rai_multi.models.loading import load_model

    assert packed_head.FINGERPRINT in load_model(str(tiny_causal), dtype="fp32").fingerprint
    assert packed_head.FINGERPRINT not in load_model(str(tiny_causal), dtype="bf16").fingerprint
