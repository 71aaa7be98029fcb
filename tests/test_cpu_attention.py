"""The bf16 CPU decode attention (models/cpu_attention.py) against the definition computed
in float64, the preallocated cache's filler positions, the model-level switch, and the
padding-aware prefill split."""

from __future__ import annotations

import math

import pytest
import torch

from rai_multi.models import cpu_attention
from rai_multi.models.cpu_attention import FINGERPRINT, IMPLEMENTATION, decode_attention
from rai_multi.models.decoding import PreallocatedLayer, _budget_split
from rai_multi.models.loading import load_model
from rai_multi.records import GenerationRequest


def _reference(q, k, v, keep, scale, bias=None):
    """softmax(q k^T scale + bias) v over the kept positions, float64, heads expanded by hand."""
    q, k, v = q.double(), k.double(), v.double()
    batch, heads, _, dim = q.shape
    groups = heads // k.shape[1]
    out = torch.empty(batch, heads, 1, dim, dtype=torch.float64)
    for b in range(batch):
        for h in range(heads):
            kv = h // groups
            scores = [float(q[b, h, 0] @ k[b, kv, j]) * scale + (0.0 if bias is None else float(bias[0, h, 0, j]))
                      for j in range(k.shape[2])]
            weights = [math.exp(s) if keep[b][j] else 0.0 for j, s in enumerate(scores)]
            total = sum(weights)
            out[b, h, 0] = sum(w / total * v[b, kv, j] for j, w in enumerate(weights))
    return out


def test_grouped_heads_left_padding_and_filler_match_the_definition():
    torch.manual_seed(0)
    batch, heads, kv_heads, length, capacity, dim = 3, 6, 2, 11, 16, 8
    q = torch.randn(batch, heads, 1, dim).bfloat16()
    k = torch.randn(batch, kv_heads, capacity, dim).bfloat16()
    v = torch.randn(batch, kv_heads, capacity, dim).bfloat16()
    k[:, :, length:], v[:, :, length:] = 1e4, -1e4  # finite filler past the context: must get zero weight
    keep = [[j >= pad for j in range(length)] for pad in (0, 3, 7)]  # left padding of 0, 3, 7 positions
    mask = torch.tensor(keep)[:, None, None, :]
    out = decode_attention(q, k, v, mask, dim ** -0.5, length=length)
    ref = _reference(q, k[:, :, :length], v[:, :, :length], keep, dim ** -0.5)
    assert out.dtype == torch.bfloat16 and out.shape == (batch, heads, 1, dim)
    assert torch.allclose(out.double(), ref, atol=3e-2, rtol=3e-2)
    # the same without filler: the first ``length`` positions alone
    alone = decode_attention(q, k[:, :, :length].contiguous(), v[:, :, :length].contiguous(), mask, dim ** -0.5)
    assert torch.allclose(out.float(), alone.float(), atol=1e-2)


def test_additive_bias_and_mask_as_t5_passes_them():
    torch.manual_seed(1)
    batch, heads, length, dim = 2, 4, 9, 8
    q, k, v = (torch.randn(batch, heads, n, dim).bfloat16() for n in (1, length, length))
    bias = torch.randn(1, heads, 1, length).bfloat16()
    keep = [[True] * length, [j < 5 for j in range(length)]]  # right padding (encoder states)
    additive = torch.where(torch.tensor(keep), 0.0, torch.finfo(torch.bfloat16).min).bfloat16()[:, None, None, :]
    out = decode_attention(q, k, v, additive, 1.0, bias=bias)
    assert torch.allclose(out.double(), _reference(q, k, v, keep, 1.0, bias), atol=3e-2, rtol=3e-2)


def test_preallocated_views_carry_their_zeroed_buffer():
    keys, values = torch.ones(2, 1, 3, 4), torch.ones(2, 1, 3, 4)
    layer = PreallocatedLayer.filled(keys, values, capacity=6)
    assert layer.keys.shape[2] == 3 and layer.keys.full_buffer.shape[2] == 6
    assert torch.equal(layer.keys.full_buffer[:, :, 3:], torch.zeros(2, 1, 3, 4))
    layer.update(torch.full((2, 1, 1, 4), 2.0), torch.full((2, 1, 1, 4), 2.0))
    assert layer.keys.full_buffer is layer._k and layer.keys.shape[2] == 4


def _count_calls(monkeypatch, module, name: str) -> dict:
    """Count calls of ``module.name`` (still calling it)."""
    calls = {"n": 0}
    real = getattr(module, name)

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


@pytest.mark.parametrize("fixture", ["tiny_causal", "tiny_seq2seq", "tiny_sliding"])
def test_bf16_models_switch_and_agree_with_sdpa_fp32_models_keep_sdpa_outside_shared_blocks(fixture, request,
                                                                                             monkeypatch):
    path = request.getfixturevalue(fixture)
    reqs = [GenerationRequest("Question: 2 + 3 = ?", max_new_tokens=6, stop=()),
            GenerationRequest("A longer prompt, so that the batch has left padding in it.", max_new_tokens=6, stop=())]
    # fp32 models run the implementation too (for shared exemplar blocks, shared_prefix.py),
    # but without one every call goes to transformers' SDPA unchanged: the same texts as a
    # model left on SDPA, and the one-token kernel never runs
    fp32 = load_model(str(path), dtype="fp32")
    assert fp32.model.config._attn_implementation == IMPLEMENTATION and f"|{FINGERPRINT}" in fp32.fingerprint
    sdpa = load_model(str(path), dtype="fp32")
    sdpa.model.set_attn_implementation("sdpa")
    calls = _count_calls(monkeypatch, cpu_attention, "decode_attention")
    assert fp32.generate(reqs, ["a", "b"]) == sdpa.generate(reqs, ["a", "b"])
    assert calls["n"] == 0
    fast = load_model(str(path), dtype="bf16")
    assert fast.model.config._attn_implementation == IMPLEMENTATION and f"|{FINGERPRINT}" in fast.fingerprint
    out_fast = fast.generate(reqs, ["a", "b"])
    assert calls["n"] > 0  # the decode steps went through it
    # Logits of one decode step, fast attention vs transformers' SDPA, same bf16 weights.
    slow = load_model(str(path), dtype="bf16")
    slow.model.set_attn_implementation("sdpa")
    tok = fast.tokenizer
    enc = tok([r.prompt for r in reqs], return_tensors="pt", padding=True)
    with torch.inference_mode():
        if fast.is_seq2seq:
            start = torch.full((2, 1), fast.model.config.decoder_start_token_id)
            args = dict(**enc, decoder_input_ids=start)
        else:
            args = dict(**enc)
        a, b = fast.model(**args).logits[:, -1].float(), slow.model(**args).logits[:, -1].float()
    assert torch.allclose(a, b, atol=0.05 * b.abs().max().item())
    assert len(out_fast) == 2 and all(len(o) == 1 for o in out_fast)


@pytest.mark.parametrize("lengths,budget,waste,prefix,expected", [
    ([10, 9, 8, 7, 6, 5], 100, 1.0, 0, [[0, 1, 2, 3, 4, 5]]),    # no waste limit: one batch
    ([10, 9, 8, 7, 6, 5], 20, 1.0, 0, [[0, 1], [2, 3], [4, 5, ]]),  # budget 20 // 10 = 2 rows, then 20 // 8 = 2
    ([10, 9, 8, 7, 6, 5], 100, 0.25, 0, [[0, 1, 2], [3, 4], [5]]),  # 7 < 10 * 0.75; 5 < 7 * 0.75
    ([10, 9, 8, 7, 6, 5], 100, 0.25, 90, [[0, 1, 2, 3, 4, 5]]),      # after a 90-token prefix all are within 25%
])
def test_prefill_split_by_hand(lengths, budget, waste, prefix, expected):
    assert [list(r) for r in _budget_split(lengths, budget, waste, prefix)] == expected


def test_t5_bias_plus_mask_is_built_once_per_forward_with_the_same_outputs(tiny_seq2seq, monkeypatch):
    """The encoder's position bias plus padding mask: transformers builds it in every layer;
    ours builds it once per forward from the same function, so outputs are bit-identical."""
    from transformers.integrations import sdpa_attention

    fast = load_model(str(tiny_seq2seq), dtype="bf16")
    slow = load_model(str(tiny_seq2seq), dtype="bf16")
    slow.model.set_attn_implementation("sdpa")
    calls = _count_calls(monkeypatch, sdpa_attention, "create_position_bias_mask")
    enc = fast.tokenizer(["a short prompt", "a longer prompt, padded to the right of the shorter one"],
                         return_tensors="pt", padding=True)
    with torch.inference_mode():
        a = fast.model.get_encoder()(**enc).last_hidden_state
        fast_calls = calls["n"]
        b = slow.model.get_encoder()(**enc).last_hidden_state
    layers = fast.model.config.num_layers
    assert layers > 1 and fast_calls == 1 and calls["n"] - fast_calls == layers
    assert torch.equal(a, b)
