"""Packed Linear layers (models/packed_linears.py): the same products as F.linear to rounding
for any number of rows, switched on only inside the block and only for plain fp32/bf16 CPU
Linear layers of models below the size limit, packed again when a weight changes, and named
in the cache key wherever generation uses them."""

from __future__ import annotations

import pytest
import torch

from rai_multi.models import packed_linears

pytestmark = pytest.mark.skipif(not packed_linears.available(), reason="this torch has no oneDNN packed linear")


class _Model(torch.nn.Module):
    """A body layer, an output layer, and a layer type that must keep its own forward."""

    def __init__(self, dtype: torch.dtype = torch.float32, bias: bool = False):
        super().__init__()
        self.body = torch.nn.Linear(64, 96, bias=bias).to(dtype)
        self.head = torch.nn.Linear(96, 3000, bias=bias).to(dtype)
        self.embed = torch.nn.Embedding(16, 64).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


# rows of 1 (bf16) or 3 (fp32) to 64 run packed, the rest through F.linear; (2, 5, 64) is a 3-D input
SHAPES = ((1, 64), (3, 64), (8, 64), (21, 64), (64, 64), (65, 64), (300, 64), (2, 5, 64))


@pytest.mark.parametrize("bias", [False, True])
def test_fp32_outputs_equal_linear_for_any_rows(bias):
    torch.manual_seed(0)
    model = _Model(bias=bias)
    for shape in SHAPES:
        x = torch.randn(*shape)
        want = model(x)
        with packed_linears.packed_linears(model) as on:
            got = model(x)
        assert on and got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    assert all("forward" not in m.__dict__ for m in (model.body, model.head))  # their own forwards are back


def test_bf16_outputs_equal_linear_to_bf16_rounding():
    """Both sides are bf16 products with fp32 accumulation; they differ by the order of the
    sums, so they agree to bf16's rounding of the result (8 bits of mantissa)."""
    torch.manual_seed(2)
    model = _Model(torch.bfloat16)
    for shape in SHAPES:
        x = torch.randn(*shape).to(torch.bfloat16)
        want = model(x).float()
        with packed_linears.packed_linears(model) as on:
            got = model(x).float()
        assert on
        assert torch.allclose(got, want, atol=2e-2, rtol=2e-2)
        assert (got - want).abs().max() <= 2 ** -7 * want.abs().max()


def test_every_plain_fp32_or_bf16_cpu_linear_is_packed_and_nothing_else():
    model = _Model()
    class Special(torch.nn.Linear):
        """A Linear subclass (as quantised or adapter layers are): it keeps its own forward."""

    special = model.extra = Special(8, 8)
    assert set(map(id, packed_linears.packable_layers(model))) == {id(model.body), id(model.head)}
    with packed_linears.packed_linears(model):
        assert "forward" in model.body.__dict__ and "forward" in model.head.__dict__
        assert "forward" not in model.embed.__dict__ and "forward" not in special.__dict__
    half = _Model(torch.float16)
    with packed_linears.packed_linears(half) as on:
        assert not on and "forward" not in half.head.__dict__


def test_models_above_the_size_limit_are_left_alone(monkeypatch):
    model = _Model()
    weight_bytes = sum(m.weight.numel() * 4 for m in (model.body, model.head))
    monkeypatch.setattr(packed_linears, "MAX_PACKED_BYTES", weight_bytes - 1)
    assert not packed_linears.applies(model)
    with packed_linears.packed_linears(model) as on:
        assert not on and "forward" not in model.head.__dict__
    monkeypatch.setattr(packed_linears, "MAX_PACKED_BYTES", weight_bytes)
    assert packed_linears.applies(model)


def test_a_changed_weight_is_packed_again():
    torch.manual_seed(1)
    model = _Model()
    x = torch.randn(4, 64)
    with packed_linears.packed_linears(model):
        before = model(x)
        with torch.no_grad():
            model.head.weight.mul_(2.0)  # in place, as a merged adapter would
        after = model(x)
        with packed_linears.packed_linears(model) as nested:
            assert nested  # an inner block finds the layers already switched
            assert torch.allclose(model(x), after)
        assert "forward" in model.head.__dict__  # the inner block did not switch the outer one's layers back
    assert torch.allclose(after, 2 * before, atol=1e-5, rtol=1e-5)


def test_cache_keys_name_it_where_generation_uses_it(tiny_causal, monkeypatch):
    """Answers rounded by the packed layers are not served for unpacked ones, in either dtype."""
    from rai_multi.models.loading import load_model

    assert packed_linears.FINGERPRINT in load_model(str(tiny_causal), dtype="fp32").fingerprint
    assert packed_linears.FINGERPRINT in load_model(str(tiny_causal), dtype="bf16").fingerprint
    monkeypatch.setattr(packed_linears, "MAX_PACKED_BYTES", 0)
    assert packed_linears.FINGERPRINT not in load_model(str(tiny_causal), dtype="fp32").fingerprint


@pytest.mark.parametrize("dtype,packed_rows", [(torch.float32, {3, 8, 64}), (torch.bfloat16, {1, 2, 3, 8, 64})])
def test_only_decode_sized_products_go_packed(dtype, packed_rows, monkeypatch):
    """fp32 from 3 rows (MKL reads the weight at memory speed for 1-2), bf16 from 1; up to 64
    rows in both (a prefill's products keep F.linear)."""
    model = _Model(dtype)
    used: list[int] = []
    real = packed_linears._packed_weight
    monkeypatch.setattr(packed_linears, "_packed_weight", lambda layer: used.append(1) or real(layer))
    with packed_linears.packed_linears(model):
        for rows in (1, 2, 3, 8, 64, 65, 300):
            used.clear()
            model(torch.randn(rows, 64).to(dtype))
            assert bool(used) == (rows in packed_rows), rows
