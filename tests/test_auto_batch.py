"""--batch-size auto (models/auto_batch.py): the bytes a decode step reads, worked out by hand
from the tiny models' shapes; the rows rule by hand; the adapter's batches following it; the
option's parsing in the CLI and in suites."""

from __future__ import annotations

import pytest
import torch

from rai_multi.cli.common import parse_batch_size
from rai_multi.errors import ConfigError
from rai_multi.models import hf
from rai_multi.models.auto_batch import DecodeBytes, auto_decode_rows, decode_bytes
from rai_multi.models.loading import load_model
from rai_multi.records import GenerationRequest


def test_decode_bytes_of_the_tiny_causal_model_by_hand(tiny_causal):
    """tiny-causal: hidden 32, MLP 64, 4 heads of 8, 2 key/value heads, 2 layers, untied
    output layer. Streamed per step: per layer q (32x32), k and v (32x16 each), o (32x32),
    gate and up (32x64 each), down (64x32) and two norms (32 each); the final norm (32) and
    the output layer (vocab x 32); not the input embeddings. fp32: 4 bytes each."""
    adapter = load_model(str(tiny_causal), dtype="fp32")
    vocab = adapter.model.config.vocab_size
    per_layer = 32 * 32 + 2 * 32 * 16 + 32 * 32 + 2 * 32 * 64 + 64 * 32 + 2 * 32
    want_weights = (2 * per_layer + 32 + vocab * 32) * 4
    got = decode_bytes(adapter.model)
    assert got == DecodeBytes(weights=want_weights, kv_per_token=2 * 2 * 2 * 8 * 4)  # layers x (k, v) x heads x dim
    assert decode_bytes(load_model(str(tiny_causal), dtype="bf16").model).weights == want_weights // 2


def test_decode_bytes_of_the_tiny_seq2seq_model_by_hand(tiny_seq2seq):
    """tiny-seq2seq: d_model 32, d_ff 64 (ReLU: wi, wo), 4 heads of 8, 2 decoder layers.
    Streamed per step: the decoder (per layer self-attention q, k, v, o and cross-attention
    q, k, v, o, each 32x32; wi 32x64 and wo 64x32; three norms) with its final norm, and
    the output layer; not the encoder. Keys/values per encoder token: the cross-attention
    ones, layers x (k, v) x 32."""
    adapter = load_model(str(tiny_seq2seq), dtype="fp32")
    model = adapter.model
    vocab = model.config.vocab_size
    per_layer = 8 * 32 * 32 + 2 * 32 * 64 + 3 * 32
    relative_bias = 32 * 4  # the first decoder layer's relative position buckets x heads
    want = (2 * per_layer + 32 + relative_bias + vocab * 32) * 4
    got = decode_bytes(model)
    assert got.kv_per_token == 2 * 2 * 32 * 4
    assert got.weights == want, (got.weights, want)


@pytest.mark.parametrize("own,rows", [(100, 64), (500, 40), (2000, 16), (0, 64)])
def test_rows_keep_the_batch_keys_and_values_near_twice_the_weights(own, rows):
    """2 x 1,000,000 weight bytes / (own tokens x 100 bytes), between 16 and 64 on a CPU."""
    assert auto_decode_rows(own, DecodeBytes(weights=1_000_000, kv_per_token=100), gpu=False) == rows


def test_auto_batches_follow_the_rule_and_samples_share_the_rows(tiny_causal, monkeypatch):
    adapter = load_model(str(tiny_causal), dtype="fp32")
    assert adapter.batch_size is None
    sizes: list[int] = []
    real = adapter._decode
    monkeypatch.setattr(adapter, "_decode", lambda units, s, k: sizes.append(sum(len(u.rows) for u in units) * k)
                        or real(units, s, k))
    monkeypatch.setattr(hf, "auto_decode_rows", lambda own, cost: 6)
    reqs = [GenerationRequest(f"prompt number {i} " * (1 + i % 3), max_new_tokens=3) for i in range(14)]
    adapter.generate(reqs, [str(i) for i in range(14)])
    assert sizes == [6, 6, 2]
    sizes.clear()
    sampled = [GenerationRequest(r.prompt, max_new_tokens=3, do_sample=True, num_samples=3) for r in reqs[:5]]
    adapter.generate(sampled, [str(i) for i in range(5)])
    assert sizes == [6, 6, 3]  # two prompts (six rows) a batch, the last prompt alone


@pytest.mark.parametrize("value,want", [("auto", None), (None, None), ("AUTO", None), ("8", 8), (8, 8)])
def test_batch_size_option_parses(value, want):
    assert parse_batch_size(value) == want


@pytest.mark.parametrize("value", ["0", "-3", "many", "2.5", True])
def test_bad_batch_size_is_a_clear_error(value):
    with pytest.raises(ConfigError, match="--batch-size must be a positive whole number or 'auto'"):
        parse_batch_size(value)


def test_suite_batch_size_defaults_to_auto(tmp_path):
    from rai_multi.suite import load_suite

    text = ('baseline = "a"\n[[model]]\nname = "a"\nsource = "x"\n{extra}\n[[model]]\nname = "b"\nsource = "y"\nbatch_size = 4\n'
            '[[task]]\ntype = "mgsm"\n')
    path = tmp_path / "s.toml"
    path.write_text(text.format(extra=""), encoding="utf-8")
    models = load_suite(path).models
    assert [m.batch_size for m in models] == [None, 4]
    path.write_text(text.format(extra='batch_size = "auto"'), encoding="utf-8")
    assert load_suite(path).models[0].batch_size is None
    path.write_text(text.format(extra="batch_size = 0"), encoding="utf-8")
    with pytest.raises(ConfigError, match="'batch_size' must be a positive int or \"auto\""):
        load_suite(path)
