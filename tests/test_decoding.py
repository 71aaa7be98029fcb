"""Our decode loop (models/decoding.py) against the simple path: transformers'
``model.generate`` one prompt at a time, greedy, fp32. Covers encoder-decoder, plain
decoder-only (merged, preallocated cache) and a sliding-window decoder (Gemma 3 layout;
tests/test_sliding_window.py covers its windows in depth), with rows of different stop
strings and token limits in one batch, and the sampling path's own guarantees."""

from __future__ import annotations

import pytest
import torch

from rai_multi.models.decoding import PreallocatedLayer, Sampling, cut_at_stop, plain_kv_cache
from rai_multi.models.loading import load_model
from rai_multi.records import GenerationRequest

PROMPTS = ["Question: Roger has 5 tennis balls. How many now?\nStep-by-Step Answer:", "Frage: 2 + 3?",
           "問題：答えは", "Swali: Jibu ni", "উত্তর হল ১১। আরও একটি প্রশ্ন এবং আরও কিছু লেখা", "x",
           "The quick brown fox jumps over the lazy dog because the dog was lazy and slow."]


def _requests() -> list[GenerationRequest]:
    # per-row limits and stop strings, so one batch mixes rows that end at different steps
    stops = [("\n\n",), ("a",), ("e", "Frage:"), (), ("o",), ("\n",), ("the",)]
    return [GenerationRequest(p, max_new_tokens=4 + 3 * i, stop=s) for i, (p, s) in enumerate(zip(PROMPTS, stops))]


def _reference(adapter, request: GenerationRequest) -> str:
    """transformers generate, batch size 1, greedy; stop strings cut afterwards."""
    tok, model = adapter.tokenizer, adapter.model
    enc = tok(request.prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=request.max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id)
    start = 1 if adapter.is_seq2seq else enc["input_ids"].shape[1]
    return cut_at_stop(tok.decode(out[0, start:], skip_special_tokens=True), request.stop)


@pytest.mark.parametrize("fixture", ["tiny_seq2seq", "tiny_causal", "tiny_sliding"])
@pytest.mark.parametrize("batch_size,token_budget", [(4, 4096), (8, 40)])
def test_greedy_equals_generate_one_at_a_time(fixture, batch_size, token_budget, request):
    """Also with a token budget small enough to prefill in several sub-batches that are
    then merged into one decode batch."""
    adapter = load_model(str(request.getfixturevalue(fixture)), batch_size=batch_size, dtype="fp32")
    adapter.token_budget = token_budget
    reqs = _requests()
    got = [o[0] for o in adapter.generate(reqs, [str(i) for i in range(len(reqs))])]
    want = [_reference(adapter, r) for r in reqs]
    assert got == want
    assert any(len(g) > 0 for g in got)


def test_plain_cache_detection(tiny_causal, tiny_sliding):
    assert plain_kv_cache(load_model(str(tiny_causal)).model.config)
    assert not plain_kv_cache(load_model(str(tiny_sliding)).model.config)


def test_preallocated_layer_appends_in_place_and_selects_rows():
    keys = torch.arange(2 * 1 * 3 * 2, dtype=torch.float32).reshape(2, 1, 3, 2)
    layer = PreallocatedLayer.filled(keys, -keys, capacity=5)
    buffer = layer._k
    k, v = layer.update(torch.full((2, 1, 1, 2), 7.0), torch.full((2, 1, 1, 2), -7.0))
    assert layer._k is buffer  # no reallocation within capacity
    assert k.shape == (2, 1, 4, 2) and layer.get_seq_length() == 4
    assert torch.equal(k[:, :, :3], keys) and torch.equal(v[:, :, 3], torch.full((2, 1, 2), -7.0))
    layer.update(torch.zeros(2, 1, 3, 2), torch.zeros(2, 1, 3, 2))  # past capacity: grows
    assert layer.get_seq_length() == 7 and torch.equal(layer.keys[:, :, :3], keys)
    layer.batch_select_indices(torch.tensor([1]))
    assert layer.keys.shape == (1, 1, 7, 2) and torch.equal(layer.keys[0, :, :3], keys[1])


@pytest.mark.parametrize("fixture", ["tiny_seq2seq", "tiny_causal"])
def test_sampling_top_k_1_is_greedy(fixture, request):
    """With only the most likely token allowed, sampling must reproduce greedy decoding."""
    adapter = load_model(str(request.getfixturevalue(fixture)), batch_size=4, dtype="fp32")
    greedy = [GenerationRequest(p, max_new_tokens=6) for p in PROMPTS[:4]]
    sampled = [GenerationRequest(p, max_new_tokens=6, do_sample=True, top_k=1, num_samples=2, seed=3)
               for p in PROMPTS[:4]]
    ids = [str(i) for i in range(4)]
    want = [o[0] for o in adapter.generate(greedy, ids)]
    got = adapter.generate(sampled, ids)
    assert got == [[w, w] for w in want]


@pytest.mark.parametrize("fixture", ["tiny_seq2seq", "tiny_causal"])
def test_samples_do_not_depend_on_batching(fixture, request):
    """Each row draws from its own generator (seed, sample id, sample index): the same
    request gives the same samples alone or batched with others, and another seed or
    sample id gives other samples."""
    path = str(request.getfixturevalue(fixture))
    reqs = [GenerationRequest(p, max_new_tokens=8, do_sample=True, temperature=1.0, top_k=40, num_samples=3, seed=11)
            for p in PROMPTS[:3]]
    ids = ["a", "b", "c"]
    together = load_model(path, batch_size=9, dtype="fp32").generate(reqs, ids)
    alone = [load_model(path, batch_size=1, dtype="fp32").generate([r], [i])[0] for r, i in zip(reqs, ids)]
    assert together == alone
    assert len(set(together[0])) > 1  # three different draws
    reseeded = load_model(path, batch_size=9, dtype="fp32").generate([GenerationRequest(**{**reqs[0].__dict__, "seed": 12})], ["a"])
    assert reseeded[0] != together[0]
    assert load_model(path, batch_size=9, dtype="fp32").generate([reqs[0]], ["z"])[0] != together[0]


def test_top_p_keeps_the_smallest_set_reaching_p():
    from rai_multi.models.decoding import _choose

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    draws = set()
    for s in range(200):
        g = torch.Generator().manual_seed(s)
        draws.update(_choose(logits, Sampling(do_sample=True, top_p=0.75), [g]))
    assert draws == {0, 1}  # 0.5 + 0.3 reaches 0.75; 0.15 and 0.05 are cut


def test_auto_dtype_is_bf16_only_where_the_cpu_has_bf16_instructions(monkeypatch):
    from rai_multi.models import loading

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: True)
    assert loading.resolve_dtype("auto") == "bf16"
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: False)
    assert loading.resolve_dtype("auto") == "fp32"
    assert loading.resolve_dtype("int8") == "int8"


def test_fingerprint_names_the_resolved_dtype(tiny_causal):
    """Answers cached under one dtype are never served for another."""
    from rai_multi.models.loading import resolve_dtype

    dtype_of = lambda fingerprint: fingerprint.split("|")[1]  # noqa: E731  (weights|dtype[|attention])
    assert dtype_of(load_model(str(tiny_causal)).fingerprint) == resolve_dtype("auto")
    assert dtype_of(load_model(str(tiny_causal), dtype="fp32").fingerprint) == "fp32"
    assert dtype_of(load_model(str(tiny_causal), dtype="bf16").fingerprint) == "bf16"
    assert len({load_model(str(tiny_causal), dtype=d).fingerprint for d in ("fp32", "bf16", "int8")}) == 3
