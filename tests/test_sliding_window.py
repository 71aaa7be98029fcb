"""Sliding-window decoders (Gemma 3 layout, and Mistral's where every layer slides) in our
decode loop (models/decoding.py, models/window_masks.py): all sub-batches merged into one
decode batch, shared exemplar blocks attended in place or copied, against the definition.

The reference for every row is its own sequence run alone: a full forward, no cache, no
padding, for each new token (transformers builds the sliding mask itself there, and cache
indices are positions), and ``model.generate`` one prompt at a time. The cases are chosen
to cross the window everywhere: exemplar blocks longer than the window, rows shorter than
it whose generation crosses it, rows of different lengths padded between block and
question, several blocks merged with rows that have none, and sub-batches merged."""

from __future__ import annotations

import math

import pytest
import torch

from rai_multi.models import cpu_attention, decoding, window_masks
from rai_multi.models.decoding import CausalDecoder, DecodeRow, PrefillUnit, Sampling, cut_at_stop
from rai_multi.models.loading import load_model
from rai_multi.models.shared_prefix import SharedSegment, additive_mask, shared_prefix_attention
from rai_multi.records import GenerationRequest

WINDOW = 8


def _tiny(kind: str, out) -> str:
    """A tiny random decoder with window 8: ``gemma3`` (sliding layers beside a full one)
    or ``mistral`` (every layer slides). Weights drawn wider than the default so the next
    token depends on the context (a model whose answers ignore it would hide a wrong mask)."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, MistralConfig, MistralForCausalLM

    from rai_multi.models.tiny import build_tokenizer

    tok = build_tokenizer("causal")
    common = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=8, sliding_window=WINDOW, max_position_embeddings=512,
                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                  initializer_range=0.05)
    torch.manual_seed(0)
    if kind == "gemma3":
        config = Gemma3TextConfig(num_hidden_layers=3, layer_types=["sliding_attention", "full_attention",
                                                                    "sliding_attention"], **common)
        model = Gemma3ForCausalLM(config)
    else:
        model = MistralForCausalLM(MistralConfig(num_hidden_layers=2, **common))
    model.eval().save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module", params=["gemma3", "mistral"])
def sliding_path(request, tmp_path_factory) -> str:
    return _tiny(request.param, tmp_path_factory.mktemp(f"sliding_{request.param}"))


def _adapter(path: str, attention: str):
    """fp32; ``attention`` "ours" (shared blocks attended in place) or "sdpa" (copied per row)."""
    adapter = load_model(path, batch_size=16, dtype="fp32")
    if attention == "sdpa":
        adapter.model.set_attn_implementation("sdpa")
    else:
        cpu_attention._register()
        adapter.model.set_attn_implementation(cpu_attention.IMPLEMENTATION)
    return adapter


def _units(vocab: int) -> list[PrefillUnit]:
    """Two exemplar blocks (3 and 5 windows long) with rows of different lengths, and rows
    without a block, some shorter than the window; token limits cross the window."""
    g = torch.Generator().manual_seed(5)

    def ids(n: int) -> tuple[int, ...]:
        return tuple(torch.randint(4, vocab, (n,), generator=g).tolist())

    block_a, block_b = ids(3 * WINDOW + 1), ids(5 * WINDOW - 3)
    return [PrefillUnit(block_a, None, tuple(DecodeRow(ids(n), m, (), 0) for n, m in ((11, 6), (5, 12), (2, 9)))),
            PrefillUnit(block_b, None, tuple(DecodeRow(ids(n), m, (), 0) for n, m in ((9, 10), (3, 4)))),
            PrefillUnit((), None, tuple(DecodeRow((2,) + ids(n), m, (), 0) for n, m in ((20, 5), (6, 11), (1, 14))))]


def _reference(model, ids: tuple[int, ...], steps: int) -> tuple[list[int], torch.Tensor]:
    """Greedy by the definition: a full forward over the sequence so far for every token."""
    seq, logits = list(ids), []
    with torch.inference_mode():
        for _ in range(steps):
            last = model(input_ids=torch.tensor([seq])).logits[0, -1]
            logits.append(last)
            seq.append(int(last.argmax()))
    return seq[len(ids):], torch.stack(logits)


def _decode_recording(decoder: CausalDecoder, units: list[PrefillUnit], monkeypatch) -> list[torch.Tensor]:
    """Run the decoder greedily (no end-of-sequence token, so rows end at their limits) and
    return each row's logits per step, rows in unit order."""
    rows = [r for u in units for r in u.rows]
    calls: list[torch.Tensor] = []
    real = decoding._choose
    monkeypatch.setattr(decoding, "_choose", lambda logits, *a: calls.append(logits.clone()) or real(logits, *a))
    decoder.eos_ids = set()
    decoder.generate(units, Sampling(), 1)
    per_row: list[list[torch.Tensor]] = [[] for _ in rows]
    for step, logits in enumerate(calls):  # a step's logits are the rows still running, in order
        active = [i for i, r in enumerate(rows) if r.max_new_tokens > step]
        assert logits.shape[0] == len(active)
        for i, row_logits in zip(active, logits):
            per_row[i].append(row_logits)
    return [torch.stack(x) for x in per_row]


@pytest.mark.parametrize("attention", ["ours", "sdpa"])
@pytest.mark.parametrize("token_budget", [4096, 60])
def test_merged_batch_equals_the_definition(sliding_path, attention, token_budget, monkeypatch):
    """Every row's logits at every step equal its own sequence's full forward (fp32
    rounding); with a small budget the prompts prefill in several sub-batches first."""
    adapter = _adapter(sliding_path, attention)
    decoder = CausalDecoder(adapter.model, adapter.tokenizer, token_budget)
    assert decoder.window is not None and decoder.window.window == WINDOW
    assert decoder.shared == (attention == "ours")
    units = [PrefillUnit(u.prefix, decoder.prefix_cache(u.prefix) if u.prefix else None, u.rows)
             for u in _units(len(adapter.tokenizer))]
    got = _decode_recording(decoder, units, monkeypatch)
    for unit in units:
        for row in unit.rows:
            want_tokens, want_logits = _reference(adapter.model, unit.prefix + row.ids, row.max_new_tokens)
            logits = got.pop(0)
            assert logits.argmax(-1).tolist() == want_tokens
            assert torch.allclose(logits, want_logits, atol=1e-4, rtol=1e-4), (logits - want_logits).abs().max()


def test_the_window_matters_in_these_cases(sliding_path, monkeypatch):
    """The cases above would catch a decoder that ignored the window: with the window
    masks replaced by full causal ones, some logits differ from the definition."""
    adapter = _adapter(sliding_path, "ours")
    decoder = CausalDecoder(adapter.model, adapter.tokenizer, 4096)
    unit = _units(len(adapter.tokenizer))[0]
    unit = PrefillUnit(unit.prefix, decoder.prefix_cache(unit.prefix), unit.rows)
    layout = decoder.window
    monkeypatch.setattr(decoding, "build_masks", lambda _l, *a: window_masks.build_masks(
        window_masks.WindowLayout(10**6, layout.layer_types, layout.layers), *a))
    got = _decode_recording(decoder, [unit], monkeypatch)
    row = unit.rows[0]
    _, want = _reference(adapter.model, unit.prefix + row.ids, row.max_new_tokens)
    assert not torch.allclose(got[0], want, atol=1e-4, rtol=1e-4)


EXEMPLARS = ("Question: Roger has 5 tennis balls. He buys 2 more cans of 3. How many now?\nAnswer: 11.\n\n"
             "Question: The cafeteria had 23 apples and used 20, then bought 6. How many?\nAnswer: 9.\n\n")
GERMAN = ("Frage: Roger hat 5 Tennisbälle und kauft noch 2 Dosen mit je 3. Wie viele jetzt?\nAntwort: 11.\n\n"
          "Frage: Die Cafeteria hatte 23 Äpfel.\nAntwort: 9.\n\n")
PROMPTS = [EXEMPLARS + "Question: 2+3?\nAnswer:", EXEMPLARS + "Question: A longer question with words?\nAnswer:",
           EXEMPLARS + "Question: Why?\nAnswer:", GERMAN + "Frage: 2 + 3?\nAntwort:",
           GERMAN + "Frage: Wie viele Leute sind das insgesamt, alle zusammen?\nAntwort:", "x", "Swali: Jibu ni"]


def _generate_reference(adapter, request: GenerationRequest) -> str:
    """transformers' generate, one prompt, greedy, its own sliding-window caches."""
    tok = adapter.tokenizer
    enc = tok(request.prompt, return_tensors="pt")
    with torch.inference_mode():
        out = adapter.model.generate(**enc, max_new_tokens=request.max_new_tokens, do_sample=False,
                                     pad_token_id=tok.pad_token_id)
    return cut_at_stop(tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True), request.stop)


@pytest.mark.parametrize("masks", [True, False])
def test_greedy_texts_equal_generate_one_prompt_at_a_time(sliding_path, masks, monkeypatch):
    """End to end through the adapter (exemplar blocks found and shared, stop strings and
    limits per row). ``masks`` False: a model that does not take our masks keeps
    transformers' caches and decodes each sub-batch alone, rows after a block in sub-batches
    of one length (padding between block and question would shift its windows)."""
    if not masks:
        monkeypatch.setattr(decoding, "takes_masks", lambda *a: False)
    adapter = _adapter(sliding_path, "ours")
    assert (CausalDecoder(adapter.model, adapter.tokenizer, 4096).window is not None) == masks
    reqs = [GenerationRequest(p, max_new_tokens=6 + 2 * i, stop=("\n\n",) if i % 2 else ())
            for i, p in enumerate(PROMPTS)]
    assert adapter._prefix_groups(reqs, list(range(len(reqs))), {i: adapter._encode_prompt(r.prompt, 1)
                                                                 for i, r in enumerate(reqs)})[-1][0]
    got = [o[0] for o in adapter.generate(reqs, [str(i) for i in range(len(reqs))])]
    assert got == [_generate_reference(adapter, r) for r in reqs]


def test_samples_do_not_depend_on_batching_and_top_k_1_is_greedy(sliding_path):
    """Sampling keeps its guarantees on the merged path: each row's draws come from its own
    generator, so a request samples the same alone or batched; top-k 1 is greedy."""
    reqs = [GenerationRequest(p, max_new_tokens=7, do_sample=True, temperature=1.0, top_k=40, num_samples=3, seed=11)
            for p in PROMPTS[:4]]
    ids = ["a", "b", "c", "d"]
    together = _adapter(sliding_path, "ours").generate(reqs, ids)
    alone = [_adapter(sliding_path, "ours").generate([r], [i])[0] for r, i in zip(reqs, ids)]
    assert together == alone
    assert len({s for samples in together for s in samples}) > 1
    greedy = [GenerationRequest(p, max_new_tokens=7) for p in PROMPTS[:4]]
    top1 = [GenerationRequest(p, max_new_tokens=7, do_sample=True, top_k=1, num_samples=2, seed=3) for p in PROMPTS[:4]]
    adapter = _adapter(sliding_path, "ours")
    assert adapter.generate(top1, ids) == [[o[0], o[0]] for o in adapter.generate(greedy, ids)]


# ---------------------------------------------------------------------- the pieces
def test_masks_agree_with_transformers_on_an_unpadded_sequence():
    """On one unpadded row (cache index = position) our sliding mask is transformers' own."""
    from transformers.masking_utils import sdpa_mask, sliding_window_causal_mask_function

    layout = window_masks.WindowLayout(WINDOW, ("sliding_attention", "full_attention"), 2)
    for past, length in ((0, 20), (13, 1), (3, 6)):
        keys = torch.arange(past + length)[None]
        masks = window_masks.build_masks(layout, keys, keys[:, past:])
        want = sdpa_mask(batch_size=1, q_length=length, kv_length=past + length, q_offset=past,
                         mask_function=sliding_window_causal_mask_function(WINDOW), allow_is_causal_skip=False)
        assert torch.equal(masks["sliding_attention"], want)
        causal = sdpa_mask(batch_size=1, q_length=length, kv_length=past + length, q_offset=past,
                           allow_is_causal_skip=False)
        assert torch.equal(masks["full_attention"], causal) and not torch.equal(causal, want)


def test_masks_follow_positions_not_columns():
    """Padding anywhere (-1 columns) changes no visible key: each query sees its own last
    WINDOW positions, and the additive form carries where the window starts."""
    layout = window_masks.WindowLayout(4, None, 1)
    keys = torch.tensor([[0, 1, 2, -1, -1, 3, 4, 5, 6, -1]])
    mask = window_masks.build_masks(layout, keys, torch.tensor([[6]]))
    assert mask[0, 0, 0].tolist() == [False, False, False, False, False, True, True, True, True, False]
    additive = window_masks.build_masks(layout, keys, torch.tensor([[6]]), torch.float32)
    assert torch.equal(additive == 0, mask) and additive.window_start.tolist() == [[3]]
    padded = torch.tensor([[1, 1, 1, 0, 0, 1, 1, 1, 1, 0]])
    assert window_masks.key_positions(padded[:, :9], torch.tensor([6])).tolist() == [keys[0, :9].tolist()]


def test_layouts_are_read_from_transformers_caches():
    from transformers import Gemma3TextConfig, LlamaConfig, MistralConfig

    hybrid = Gemma3TextConfig(num_hidden_layers=3, sliding_window=16,
                              layer_types=["sliding_attention", "full_attention", "sliding_attention"])
    assert window_masks.window_layout(hybrid) == window_masks.WindowLayout(16, tuple(hybrid.layer_types), 3)
    assert window_masks.window_layout(MistralConfig(num_hidden_layers=2, sliding_window=16)) == \
        window_masks.WindowLayout(16, None, 2)
    assert window_masks.window_layout(LlamaConfig(num_hidden_layers=2)) is None  # plain: no sliding layer
    both_ways = Gemma3TextConfig(num_hidden_layers=2, sliding_window=16, use_bidirectional_attention=True)
    assert window_masks.window_layout(both_ways) is None


def _windowed_definition(q, seg_k, seg_v, suf_k, suf_v, visible, seg_from, scale):
    """softmax over [segment positions >= seg_from; suffix keys ``visible``] in float64."""
    rows, heads, length, dim = q.shape
    groups = heads // suf_k.shape[1]
    out = torch.zeros(rows, heads, length, dim, dtype=torch.float64)
    for b in range(rows):
        for h in range(heads):
            kv = h // groups
            for i in range(length):
                keys = [seg_k[0, kv, j] for j in range(seg_k.shape[2]) if j >= seg_from[b][i]] + \
                       [suf_k[b, kv, j] for j in range(suf_k.shape[2]) if visible[b][i][j]]
                vals = [seg_v[0, kv, j] for j in range(seg_v.shape[2]) if j >= seg_from[b][i]] + \
                       [suf_v[b, kv, j] for j in range(suf_v.shape[2]) if visible[b][i][j]]
                scores = [float(q[b, h, i].double() @ k.double()) * scale for k in keys]
                top = max(scores)
                weights = [math.exp(s - top) for s in scores]
                out[b, h, i] = sum(w / sum(weights) * v.double() for w, v in zip(weights, vals))
    return out


@pytest.mark.parametrize("length", [1, 3])
def test_shared_block_attention_keeps_to_the_window(length):
    """Rows of one shared block at different positions: the block's keys out of each
    query's window get no weight (some rows see part of it, one none of it)."""
    torch.manual_seed(2)
    heads, kv_heads, dim, block, suffix, window = 4, 2, 8, 10, 4, 6
    seg_k, seg_v = torch.randn(1, kv_heads, block, dim), torch.randn(1, kv_heads, block, dim)
    q = torch.randn(3, heads, length, dim)
    suf_k, suf_v = torch.randn(3, kv_heads, suffix, dim), torch.randn(3, kv_heads, suffix, dim)
    # each row's suffix holds its own tokens after padding; positions continue the block
    keys = torch.tensor([[-1, 10, 11, 12], [10, 11, 12, 13], [-1, -1, 10, 11]])
    keys = keys + torch.tensor([[0], [0], [8]]) * (keys >= 0)  # row 2 sits far past the block
    queries = keys[:, -length:]
    layout = window_masks.WindowLayout(window, None, 1)
    mask = window_masks.build_masks(layout, keys, queries, torch.float32)
    out = shared_prefix_attention(q, suf_k, suf_v, mask, 0.4, (SharedSegment(seg_k, seg_v, 0, 3),))
    visible = (mask == 0)[:, 0].tolist()
    want = _windowed_definition(q, seg_k, seg_v, suf_k, suf_v, visible, mask.window_start.tolist(), 0.4)
    assert torch.allclose(out.double(), want, atol=1e-5)
    real = queries[2] >= 0
    assert (mask.window_start[2][real] >= block).all()  # row 2's tokens attend to none of the block
    plain = shared_prefix_attention(q, suf_k, suf_v, additive_mask(mask == 0, torch.float32),
                                    0.4, (SharedSegment(seg_k, seg_v, 0, 3),))
    assert not torch.allclose(plain, out, atol=1e-3)  # without the window the block would count


def test_cache_keys_of_sliding_window_decoders_change(sliding_path, tiny_causal):
    """Answers cached for such a model before window masks (its padded rows saw shifted
    windows) are not served again; a plain decoder's keys stay as they were."""
    assert window_masks.FINGERPRINT in load_model(sliding_path, dtype="fp32").fingerprint
    assert window_masks.FINGERPRINT not in load_model(str(tiny_causal), dtype="fp32").fingerprint
