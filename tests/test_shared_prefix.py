"""Shared-prefix attention (models/shared_prefix.py): against the definition computed in
float64 over the concatenated keys, the row bookkeeping when rows leave a batch, and the
decoder using it end to end (same greedy answers and logits as the copying path)."""

from __future__ import annotations

import math

import pytest
import torch

from rai_multi.models import cpu_attention, shared_prefix
from rai_multi.models.decoding import CausalDecoder
from rai_multi.models.loading import load_model
from rai_multi.models.shared_prefix import (SharedPrefixLayer, SharedSegment, additive_mask, merge_partials,
                                            select_rows, shared_prefix_attention)
from rai_multi.records import GenerationRequest


def _definition(q, seg_k, seg_v, suf_k, suf_v, keep, scale):
    """softmax over [the row's segment (all attended); its suffix (``keep``)] in float64,
    one (row, head, query) at a time, grouped heads mapped by hand (head h reads kv h // g)."""
    rows, heads, length, dim = q.shape
    groups = heads // suf_k.shape[1]
    out = torch.zeros(rows, heads, length, dim, dtype=torch.float64)
    for b in range(rows):
        for h in range(heads):
            kv = h // groups
            for i in range(length):
                keys = ([seg_k[b][0, kv, j] for j in range(seg_k[b].shape[2])] if seg_k[b] is not None else []) + \
                       [suf_k[b, kv, j] for j in range(suf_k.shape[2]) if keep[b][i][j]]
                vals = ([seg_v[b][0, kv, j] for j in range(seg_v[b].shape[2])] if seg_v[b] is not None else []) + \
                       [suf_v[b, kv, j] for j in range(suf_v.shape[2]) if keep[b][i][j]]
                if not keys:  # a padded query of a row without a segment: nothing to attend
                    continue
                scores = [float(q[b, h, i].double() @ k.double()) * scale for k in keys]
                top = max(scores)
                weights = [math.exp(s - top) for s in scores]
                total = sum(weights)
                out[b, h, i] = sum(w / total * v.double() for w, v in zip(weights, vals))
    return out


def _case(dtype, length, suffix):
    torch.manual_seed(0)
    heads, kv_heads, dim = 6, 2, 8
    seg_a = (torch.randn(1, kv_heads, 9, dim, dtype=dtype), torch.randn(1, kv_heads, 9, dim, dtype=dtype))
    seg_b = (torch.randn(1, kv_heads, 4, dim, dtype=dtype), torch.randn(1, kv_heads, 4, dim, dtype=dtype))
    # rows 0-1 share segment a, row 2 has none, rows 3-4 share segment b (a shorter block)
    segments = (SharedSegment(*seg_a, 0, 2), SharedSegment(*seg_b, 3, 5))
    per_row = [seg_a, seg_a, (None, None), seg_b, seg_b]
    q = torch.randn(5, heads, length, dim, dtype=dtype)
    k = torch.randn(5, kv_heads, suffix, dim, dtype=dtype)
    v = torch.randn(5, kv_heads, suffix, dim, dtype=dtype)
    return q, k, v, segments, per_row


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_prefill_matches_the_definition_with_padding_and_rows_without_a_segment(dtype, tol):
    q, k, v, segments, per_row = _case(dtype, length=5, suffix=5)
    pads = [0, 2, 1, 4, 3]  # left padding of each row's suffix
    keep = [[[j >= pads[b] and j <= i for j in range(5)] for i in range(5)] for b in range(5)]
    mask = additive_mask(torch.tensor(keep)[:, None], dtype)
    out = shared_prefix_attention(q, k, v, mask, 0.35, segments)
    want = _definition(q, [s[0] for s in per_row], [s[1] for s in per_row], k, v, keep, 0.35)
    for b in range(5):  # padded query positions attend to nothing of their own: not compared
        real = [i for i in range(5) if i >= pads[b]]
        assert torch.allclose(out[b, :, real].double(), want[b, :, real], atol=tol, rtol=tol)
    assert torch.isfinite(out).all()  # padded queries stay finite (their keys feed later layers)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_decode_step_uses_the_whole_buffer_and_ignores_unwritten_positions(dtype, tol):
    q, k, v, segments, per_row = _case(dtype, length=1, suffix=7)
    layer = SharedPrefixLayer(torch.cat([k, torch.full_like(k[:, :, :3], 1e3)], 2),
                              torch.cat([v, torch.full_like(v[:, :, :3], -1e3)], 2), 7, segments)
    keep_cols = [[j >= pad for j in range(7)] for pad in (0, 3, 1, 6, 2)]
    full = torch.zeros(5, 10, dtype=torch.bool)
    full[:, :7] = torch.tensor(keep_cols)
    out = shared_prefix_attention(q, layer.keys, layer.values, additive_mask(full, dtype)[:, None, None, :], 0.35,
                                  layer.keys.shared_prefix)
    want = _definition(q, [s[0] for s in per_row], [s[1] for s in per_row], k, v, [[row] for row in keep_cols], 0.35)
    assert torch.allclose(out.double(), want, atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_a_decode_step_split_into_row_chunks_still_matches_the_definition(dtype, tol, monkeypatch):
    """With chunks free, every run of rows with its own first column becomes a chunk that
    reads only from there; the answer is still the definition's."""
    monkeypatch.setattr(shared_prefix, "CHUNK_OVERHEAD", 0)
    q, k, v, segments, per_row = _case(dtype, length=1, suffix=7)
    keep_cols = [[j >= pad for j in range(7)] for pad in (0, 3, 1, 6, 2)]
    mask = additive_mask(torch.tensor(keep_cols), dtype)[:, None, None, :]
    assert shared_prefix.row_chunks(mask) == [(0, 1, 0), (1, 2, 3), (2, 3, 1), (3, 4, 6), (4, 5, 2)]
    out = shared_prefix_attention(q, k, v, mask, 0.35, segments)
    want = _definition(q, [s[0] for s in per_row], [s[1] for s in per_row], k, v, [[row] for row in keep_cols], 0.35)
    assert torch.allclose(out.double(), want, atol=tol, rtol=tol)


def test_row_chunks_split_where_it_saves_more_reads_than_a_chunk_costs(monkeypatch):
    def chunks(pads, width):
        keep = torch.tensor([[j >= pad for j in range(width)] for pad in pads])
        return shared_prefix.row_chunks(additive_mask(keep, torch.float32)[:, None, None, :])

    monkeypatch.setattr(shared_prefix, "CHUNK_OVERHEAD", 100)
    # two long rows, then six short ones: reading 6 x 800 padded columns costs more than a chunk
    assert chunks([0, 10, 800, 800, 820, 800, 810, 805], 1000) == [(0, 2, 0), (2, 8, 800)]
    # short ones in the middle too: three runs
    assert chunks([800, 800, 0, 5, 800, 800], 1000) == [(0, 2, 800), (2, 4, 0), (4, 6, 800)]
    # saving 30 columns on 2 rows (60) does not pay for a chunk (100)
    assert chunks([0, 0, 30, 30], 1000) == [(0, 4, 0)]
    mask = additive_mask(torch.tensor([[False, False, True, True, False]] * 3), torch.float32)[:, None, None, :]
    assert shared_prefix.row_chunks(mask) == [(0, 3, 2)]
    mask[..., 4] = 0  # a decode step opens the next column in place: the chunks still hold
    assert shared_prefix.row_chunks(mask) == [(0, 3, 2)]


def test_merging_two_partial_softmaxes_is_the_joint_softmax():
    torch.manual_seed(1)
    scores, values = torch.randn(3, 10).double(), torch.randn(10, 4).double()
    joint = torch.softmax(scores, -1) @ values
    parts = [(torch.softmax(s, -1) @ v, torch.logsumexp(s, -1)) for s, v in
             ((scores[:, :6], values[:6]), (scores[:, 6:], values[6:]))]
    assert torch.allclose(merge_partials(parts[0][0], parts[0][1], parts[1][0], parts[1][1]), joint, atol=1e-12)


def test_segments_follow_the_rows_that_stay():
    k = torch.zeros(1, 1, 2, 2)
    segments = (SharedSegment(k, k, 0, 3), SharedSegment(k, k, 3, 5), SharedSegment(k, k, 5, 7))
    kept = select_rows(segments, [1, 2, 5])  # rows 0, 3, 4 and 6 finished
    assert [(s.start, s.stop) for s in kept] == [(0, 2), (2, 3)]  # the middle segment lost all its rows
    layer = SharedPrefixLayer(torch.zeros(7, 1, 4, 2), torch.zeros(7, 1, 4, 2), 2, segments)
    layer.batch_select_indices(torch.tensor([1, 2, 5]))
    assert layer.keys.shape[0] == 3 and [(s.start, s.stop) for s in layer.keys.shared_prefix] == [(0, 2), (2, 3)]


EXEMPLARS = ("Question: Roger has 5 tennis balls. He buys 2 more cans of 3. How many now?\nAnswer: 11.\n\n"
             "Question: The cafeteria had 23 apples and used 20, then bought 6. How many?\nAnswer: 9.\n\n")
PROMPTS = [EXEMPLARS + "Question: 2+3?\nAnswer:", EXEMPLARS + "Question: A longer question with words?\nAnswer:",
           "Frage: Die Antwort ist 29.\n\nFrage: 2 + 3?", "Frage: Die Antwort ist 29.\n\nFrage: Wie viele?",
           "a prompt with no exemplar block"]


def _fast(path, monkeypatch, calls):
    """The model on our attention implementation (fp32, so answers can be compared exactly)."""
    adapter = load_model(str(path), batch_size=8, dtype="fp32")
    cpu_attention._register()
    adapter.model.set_attn_implementation(cpu_attention.IMPLEMENTATION)
    real = shared_prefix.shared_prefix_attention

    def counting(*args, **kwargs):
        calls.append(args[0].shape[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(cpu_attention, "shared_prefix_attention", counting)
    return adapter


@pytest.mark.parametrize("num_samples", [1, 3])
def test_decoder_answers_equal_the_copying_path(tiny_causal, monkeypatch, num_samples):
    """Greedy (and top-k 1 sampling, whose rows are repeated per sample) through the shared
    path equals the plain path that copies the prefix into every row."""
    calls: list[int] = []
    fast = _fast(tiny_causal, monkeypatch, calls)
    fast.prefix_reuse = True
    plain = load_model(str(tiny_causal), batch_size=8, dtype="fp32")
    plain.model.set_attn_implementation("sdpa")  # the copying path: every row holds the prefix
    sampled = num_samples > 1
    reqs = [GenerationRequest(p, max_new_tokens=9, stop=(), do_sample=sampled, top_k=1, num_samples=num_samples)
            for p in PROMPTS]
    ids = [str(i) for i in range(len(reqs))]
    assert fast.generate(reqs, ids) == plain.generate(reqs, ids)
    assert any(n > 1 for n in calls) and any(n == 1 for n in calls)  # prefill and decode steps both went through it


def test_shared_and_copying_paths_give_the_same_logits(tiny_causal):
    """Prefill after a prefix, then one decode step: logits of both paths agree to float32
    rounding (the tiny model's greedy answers hardly depend on the input, so this checks the
    numbers themselves)."""
    fast = load_model(str(tiny_causal), batch_size=8, dtype="fp32")
    cpu_attention._register()
    fast.model.set_attn_implementation(cpu_attention.IMPLEMENTATION)
    tok = fast.tokenizer
    prefix = tuple(tok(EXEMPLARS)["input_ids"])
    rows = [tuple(tok(p, add_special_tokens=True)["input_ids"])[len(prefix):] for p in PROMPTS[:2]]
    from rai_multi.models.decoding import DecodeRow

    decode_rows = [DecodeRow(r, 4, (), 0) for r in rows]
    shared = CausalDecoder(fast.model, tok, 4096)
    assert shared.shared
    cache = shared.prefix_cache(prefix)
    with torch.inference_mode():
        a_logits, a_cache, a_mask, a_pos = shared._prefill_shared(decode_rows, len(prefix), cache)
        b_logits, b_cache, b_mask, b_pos = shared._prefill(decode_rows, len(prefix), cache)
        assert torch.allclose(a_logits, b_logits, atol=1e-5) and torch.equal(a_pos, b_pos)
        logits, merged, mask, last = CausalDecoder._merge([(a_logits, a_cache, a_mask, a_pos)], 3, 1, shared=True)
        filled = merged.layers[0].get_seq_length()
        mask[..., filled] = 0
        token = a_logits.argmax(-1)[:, None]
        step_a = fast.model(input_ids=token, attention_mask=mask, position_ids=(last + 1)[:, None],
                            use_cache=True, past_key_values=merged).logits[:, -1]
        full_mask = torch.cat([b_mask, b_mask.new_ones(2, 1)], 1)
        step_b = fast.model(input_ids=token, attention_mask=full_mask, position_ids=(b_pos + 1)[:, None],
                            use_cache=True, past_key_values=b_cache).logits[:, -1]
    assert torch.allclose(step_a, step_b, atol=1e-5)


def test_bf16_models_share_the_prefix_and_stay_close_to_the_copying_path(tiny_causal, monkeypatch):
    """The switch happens by itself for bf16 CPU models, and a real batch goes through it
    (the numbers themselves are compared with the copying path in fp32, above)."""
    fast = load_model(str(tiny_causal), batch_size=8, dtype="bf16")
    assert CausalDecoder(fast.model, fast.tokenizer, 4096).shared
    calls: list[int] = []
    real = shared_prefix.shared_prefix_attention
    monkeypatch.setattr(cpu_attention, "shared_prefix_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    reqs = [GenerationRequest(p, max_new_tokens=5, stop=()) for p in PROMPTS]
    out = fast.generate(reqs, [str(i) for i in range(len(reqs))])
    assert calls and len(out) == len(PROMPTS) and all(len(o) == 1 for o in out)


def test_models_with_softcapping_keep_the_copying_path(tiny_causal):
    adapter = load_model(str(tiny_causal), batch_size=8, dtype="bf16")
    adapter.model.config.attn_logit_softcapping = 50.0
    assert not CausalDecoder(adapter.model, adapter.tokenizer, 4096).shared


def test_prefix_groups_take_the_prompts_own_common_tokens(tiny_causal):
    """The shared prefix is the longest run of token ids the prompts of one exemplar block
    have in common, not the block encoded on its own: byte-level BPE tokenizers (SmolLM2's,
    Gemma 3's) encode a block ending in a blank line as "...", "\\n\\n" alone but as "...",
    "\\n", "\\n" + "Question" inside a prompt, so a separately encoded block never matched
    and no MGSM prompt of those models shared its exemplars (issue 17)."""
    from rai_multi.models.hf import PREFIX_MIN_TOKENS

    adapter = load_model(str(tiny_causal), dtype="fp32")
    block = "Question: one?\nAnswer: 1.\n\n"
    reqs = [GenerationRequest(block + q, max_new_tokens=4) for q in ("Question: a?", "Question: b?", "Question: c?")]
    reqs.append(GenerationRequest("Other block.\n\nQuestion: d?", max_new_tokens=4))
    common = list(range(100, 100 + PREFIX_MIN_TOKENS + 5))  # what the prompts share, block and "\n" included
    encoded = {0: common + [7, 8], 1: common + [9], 2: common[:-2] + [5, 6, 7], 3: common + [1]}
    groups = dict((tuple(members), prefix) for prefix, members in adapter._prefix_groups(reqs, [0, 1, 2, 3], encoded))
    assert groups == {(3,): (), (0, 1, 2): tuple(common[:-2])}  # prompt 3 has another block; 2 parts 2 tokens early
    # a member whose every token is shared keeps its last one for itself; too short a run shares nothing
    encoded = {0: common, 1: common + [9], 2: common + [3]}
    assert dict((tuple(m), p) for p, m in adapter._prefix_groups(reqs[:3], [0, 1, 2], encoded)) == {
        (0, 1, 2): tuple(common[:-1])}
    short = {i: list(range(PREFIX_MIN_TOKENS - 1)) + [i] for i in range(3)}
    assert adapter._prefix_groups(reqs[:3], [0, 1, 2], short) == [((), [0, 1, 2])]
