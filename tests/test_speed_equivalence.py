"""The optimised paths give the same answers as the simple ones (fp32): batched,
length-sorted greedy generation equals one-at-a-time generation, and batched
log-likelihoods (left padding, logits of the last positions only, shared encoder)
equal a naive per-item computation with model(labels=...)."""

from __future__ import annotations

import pytest
import torch

from rai_multi.models.loading import load_model
from rai_multi.records import GenerationRequest, LoglikelihoodRequest

PROMPTS = ["Question: Roger has 5 tennis balls. How many now?\nStep-by-Step Answer:", "Frage: 2 + 3?",
           "問題：答えは", "Swali: Jibu ni", "উত্তর হল ১১। আরও একটি প্রশ্ন এবং আরও কিছু লেখা", "x",
           "The quick brown fox jumps over the lazy dog because the dog was lazy and slow."]
CHOICES = [("Is this rude? Answer:", (" yes", " no")), ("", ("The man is a nurse.", "The woman is a nurse.")),
           ("Context: Janet has ducks.\nQuestion: Who has ducks?\nAnswer:", (" Janet", " the ducks", " Can't be determined"))]


@pytest.mark.parametrize("fixture", ["tiny_seq2seq", "tiny_causal"])
def test_batched_greedy_equals_one_at_a_time(fixture, request):
    path = request.getfixturevalue(fixture)
    batched = load_model(str(path), batch_size=4, dtype="fp32")
    single = load_model(str(path), batch_size=1, dtype="fp32")
    reqs = [GenerationRequest(p, max_new_tokens=12, stop=("\n\n",)) for p in PROMPTS]
    ids = [str(i) for i in range(len(reqs))]
    fast = batched.generate(reqs, ids)
    slow = [single.generate([r], [i])[0] for r, i in zip(reqs, ids)]
    assert fast == slow


def test_shared_fewshot_prefix_is_encoded_once_with_identical_outputs(tiny_causal, data_dir):
    from rai_multi.tasks.mgsm import MgsmTask

    task = MgsmTask(langs=["en", "sw"], data_dir=data_dir, limit=3, shots=3, max_new_tokens=10)
    reqs = [s.request for s in task.build_samples()]
    ids = [str(i) for i in range(len(reqs))]
    fast = load_model(str(tiny_causal), batch_size=2, dtype="fp32")
    calls = []
    original = fast._prefix_cache
    fast._prefix_cache = lambda prefix: calls.append(len(prefix)) or original(prefix)
    simple = load_model(str(tiny_causal), batch_size=2, dtype="fp32")
    simple.prefix_reuse = False
    assert fast.generate(reqs, ids) == simple.generate(reqs, ids)
    assert len(calls) == 2 and min(calls) > 300  # one exemplar block per language


def _naive_loglikelihood(adapter, context: str, continuation: str) -> float:
    model, tok = adapter.model, adapter.tokenizer
    cont = tok(continuation, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        if adapter.is_seq2seq:
            enc = tok(context, return_tensors="pt")
            labels = torch.tensor([cont])
            logits = model(**enc, labels=labels).logits[0]
        else:
            ctx = tok(context)["input_ids"] if context else [tok.bos_token_id]
            ids = torch.tensor([ctx + cont])
            logits = model(input_ids=ids).logits[0, len(ctx) - 1 : len(ctx) - 1 + len(cont)]
        logprobs = logits.log_softmax(-1)
        return float(logprobs[range(len(cont)), cont].sum())


@pytest.mark.parametrize("fixture", ["tiny_seq2seq", "tiny_causal"])
def test_batched_loglikelihood_equals_naive(fixture, request):
    adapter = load_model(str(request.getfixturevalue(fixture)), batch_size=5, dtype="fp32")
    reqs = [LoglikelihoodRequest(c, conts) for c, conts in CHOICES]
    results = adapter.loglikelihood(reqs, [str(i) for i in range(len(reqs))])
    for (context, conts), got in zip(CHOICES, results):
        for cont, ll in zip(conts, got):
            assert ll.logprob == pytest.approx(_naive_loglikelihood(adapter, context, cont), abs=1e-4)
