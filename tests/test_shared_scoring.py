"""Shared-context log-likelihood (models/shared_scoring.py) gives the log-likelihoods of a
from-scratch forward over each whole (context + option) sequence, one sequence at a time,
and those of the plain path (context + option per row), to 1e-5 in fp32 (or 1e-6 of the
value: a sum of 40 float32 log-probs near -150 rounds at ~1e-5): with left
padding (contexts of different lengths), options of different lengths, an option equal to
the options' common prefix, one-token and empty options, empty contexts (CrowS-Pairs), a
sliding-window model whose contexts pass its window, and batches split several ways."""

from __future__ import annotations

import pytest
import torch

from rai_multi.models import shared_scoring
from rai_multi.models.loading import load_model
from rai_multi.models.shared_scoring import common_prefix_length, plan_request, split_batches
from rai_multi.records import LoglikelihoodRequest

REQUESTS = [
    # options of different lengths; one is the common prefix of the others
    ("Janet has three ducks and a goat. Who has ducks? Answer:", (" the", " the goat", " the woman with the ducks")),
    ("Is this rude? Answer:", (" yes", " no")),  # one-token options, short context (left padding)
    ("", ("The man is a nurse at the hospital.", "The woman is a nurse at the hospital.")),  # CrowS-like
    ("", ("Poor people are lazy.", "Rich people are lazy.")),
    ("The technician told the customer that", (" he", " she", " they could pay with cash", "")),  # empty option
    ("One option only:", (" a single continuation of several tokens",)),
    ("Context: " + "the long story goes on and on " * 6 + "\nQuestion: who?\nAnswer:",
     (" Can't be determined", " Can't answer", " The storyteller")),
]


def test_common_prefix_and_plan_by_hand():
    assert common_prefix_length([[5, 6, 7], [5, 6, 9], [5, 6]]) == 2
    assert common_prefix_length([[1, 2], [3, 2]]) == 0
    assert common_prefix_length([[4, 4, 4]]) == 3
    assert common_prefix_length([[1], []]) == 0
    assert common_prefix_length([]) == 0
    plan = plan_request([1, 2], [[7, 8, 9], [7, 8], [7, 8, 3, 3]])
    assert plan.shared == (1, 2, 7, 8) and plan.n_common == 2
    assert plan.own == ((9,), (), (3, 3)) and plan.lengths == (3, 2, 4)


def test_split_batches_minimises_fixed_plus_padded_cost_by_hand():
    # [10, 10, 2, 2], fixed 5: one batch 5 + 40 = 45; {10,10}{2,2} 25 + 9 = 34 (best);
    # {10,10,2}{2} 35 + 7 = 42; one each 4 x 5 + 24 = 44
    assert split_batches([10, 10, 2, 2], token_budget=100, fixed=5) == [range(0, 2), range(2, 4)]
    # fixed 50: one batch 90 beats two (124)
    assert split_batches([10, 10, 2, 2], token_budget=100, fixed=50) == [range(0, 4)]
    # budget 25: one batch (40 padded) and {10,10,2} (30) do not fit
    assert split_batches([10, 10, 2, 2], token_budget=25, fixed=50) == [range(0, 2), range(2, 4)]
    # an input longer than the budget still gets a batch of its own
    assert split_batches([300, 3], token_budget=100, fixed=1) == [range(0, 1), range(1, 2)]
    assert split_batches([], token_budget=100) == []


def _from_scratch(model, tok, context: str, option: str) -> tuple[float, int, bool]:
    """Log-prob of ``option`` after ``context``: one unpadded forward over the whole
    sequence, no cache (the definition), plus whether each token is the argmax."""
    cont = tok(option, add_special_tokens=False)["input_ids"]
    if not cont:
        return 0.0, 0, True
    with torch.inference_mode():
        if model.config.is_encoder_decoder:  # encoder over the context, decoder teacher-forced
            enc = tok(context, return_tensors="pt")
            logits = model(**enc, labels=torch.tensor([cont])).logits[0]
        else:
            ctx = tok(context)["input_ids"] if context else [tok.bos_token_id]
            logits = model(input_ids=torch.tensor([ctx + cont])).logits[0, len(ctx) - 1 : len(ctx) - 1 + len(cont)]
    logprobs = logits.float().log_softmax(-1)
    target = torch.tensor(cont)
    return (float(logprobs[range(len(cont)), cont].sum()), len(cont),
            bool((logprobs.argmax(-1) == target).all()))


def _adapters(path, token_budget=None, **kw):
    shared = load_model(str(path), dtype="fp32", **kw)
    plain = load_model(str(path), dtype="fp32", **kw)
    plain.shared_scoring = False
    if token_budget:
        shared.token_budget = plain.token_budget = token_budget
    return shared, plain


@pytest.mark.parametrize("fixture", ["tiny_causal", "tiny_sliding", "tiny_seq2seq"])
@pytest.mark.parametrize("budget,cache_tokens", [(None, None), (24, 40)])
def test_shared_scoring_equals_from_scratch_and_plain_path(fixture, budget, cache_tokens, request, monkeypatch):
    """``budget``/``cache_tokens`` small: several prefix batches and several suffix
    sub-batches per prefix batch (the copied-cache branch)."""
    if cache_tokens:
        monkeypatch.setattr(shared_scoring, "CACHE_TOKENS", cache_tokens)
    path = request.getfixturevalue(fixture)
    shared, plain = _adapters(path, token_budget=budget)
    if fixture == "tiny_sliding":  # the long context really passes the sliding window
        assert shared.count_tokens(REQUESTS[-1][0]) > 4 * shared.model.config.sliding_window
    reqs = [LoglikelihoodRequest(c, o) for c, o in REQUESTS]
    ids = [str(i) for i in range(len(reqs))]
    got = shared.loglikelihood(reqs, ids)
    old = plain.loglikelihood(reqs, ids)
    for (context, options), new_row, old_row in zip(REQUESTS, got, old):
        assert len(new_row) == len(options) == len(old_row)
        for option, new, prev in zip(options, new_row, old_row):
            want_lp, want_n, want_greedy = _from_scratch(shared.model, shared.tokenizer, context, option)
            assert new.logprob == pytest.approx(want_lp, rel=1e-6, abs=1e-5), (context, option)
            assert new.logprob == pytest.approx(prev.logprob, rel=1e-6, abs=1e-5), (context, option)
            assert (new.n_tokens, new.is_greedy) == (want_n, want_greedy) == (prev.n_tokens, prev.is_greedy)


def test_batch_size_caps_requests_per_prefix_batch(tiny_causal, monkeypatch):
    shared, _ = _adapters(tiny_causal, batch_size=2)
    widths = []
    original = shared_scoring.SharedContextScorer._score_batch
    monkeypatch.setattr(shared_scoring.SharedContextScorer, "_score_batch",
                        lambda self, plans: widths.append(len(plans)) or original(self, plans))
    shared.loglikelihood([LoglikelihoodRequest(c, o) for c, o in REQUESTS], [str(i) for i in range(len(REQUESTS))])
    assert max(widths) <= 2 and sum(widths) == len(REQUESTS)


def test_options_share_one_context_pass(tiny_causal, monkeypatch):
    """The shared part goes through the model once per request, not once per option: a
    request of three options whose own parts are one token costs one forward in all."""
    shared, _ = _adapters(tiny_causal)
    calls = []
    forward = shared.model.forward
    monkeypatch.setattr(shared.model, "forward", lambda *a, **k: calls.append(k["input_ids"].shape) or forward(*a, **k))
    options = (" yes", " no", " maybe", " not at all")
    shared.loglikelihood([LoglikelihoodRequest("Is this rude? Answer:", options)], ["0"])
    tok = shared.tokenizer
    ids = [tok(o, add_special_tokens=False)["input_ids"] for o in options]
    common = common_prefix_length(ids)
    lengths = [len(i) - common for i in ids]
    longer = [n for n in lengths if n > 1]
    assert 1 in lengths and longer  # the test covers both kinds of option
    context = len(tok("Is this rude? Answer:")["input_ids"])
    assert calls[0] == (1, context + common)  # one row: the shared part, not one per option
    # then only the multi-token options, their last token not fed (a target only)
    assert sum(rows for rows, _ in calls[1:]) == len(longer)
    assert max(width for _, width in calls[1:]) == max(longer) - 1


def test_real_bias_rows_same_choices_both_paths(tiny_causal, data_dir):
    """Real CrowS-Pairs, Winogender and BBQ requests: same log-likelihoods (1e-5) and the same
    choices on both paths."""
    from rai_multi.tasks.bbq import BbqTask
    from rai_multi.tasks.crows_pairs import CrowsPairsTask
    from rai_multi.tasks.winogender import WinogenderTask

    reqs = []
    for task in (CrowsPairsTask(data_dir, limit=12), WinogenderTask(data_dir=data_dir, setting="mc", limit=12),
                 BbqTask(data_dir=data_dir, setting="mc", limit=2)):
        reqs += [s.request for s in task.build_samples()][:12]
    assert len(reqs) >= 30
    shared, plain = _adapters(tiny_causal)
    ids = [str(i) for i in range(len(reqs))]
    got, old = shared.loglikelihood(reqs, ids), plain.loglikelihood(reqs, ids)
    for new_row, old_row in zip(got, old):
        assert [x.logprob for x in new_row] == pytest.approx([x.logprob for x in old_row], rel=1e-6, abs=1e-5)
        assert max(range(len(new_row)), key=lambda k: new_row[k].logprob) == \
            max(range(len(old_row)), key=lambda k: old_row[k].logprob)
