"""Shared fixtures: the real data dir (skip with a reason when absent) and tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rai_multi.models.tiny import build_tiny_model

_DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STRICT_ENV = "RAI_MULTI_STRICT_DATA"  # set by .ci/run: the real-data tests must run


def strict_data() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real benchmark files (RAI_MULTI_DATA, else ../shared/data beside the repo).
    Absent data skips the tests that need it, except in strict mode (RAI_MULTI_STRICT_DATA=1,
    as CI runs), where it fails them: a green CI run has run every real-data test."""
    raw = os.environ.get("RAI_MULTI_DATA")
    path = Path(raw) if raw else _DEFAULT_DATA
    if not path.is_dir():
        message = f"real benchmark data not found (set RAI_MULTI_DATA; looked in {path})"
        if strict_data():
            pytest.fail(f"{message}; {STRICT_ENV} is set, so this fails instead of skipping", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def tiny_seq2seq(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_seq2seq"), "tiny-seq2seq")


@pytest.fixture(scope="session")
def tiny_causal(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_causal"), "tiny-causal")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own generation cache unless it sets RAI_MULTI_CACHE itself."""
    monkeypatch.delenv("RAI_MULTI_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_sliding(tmp_path_factory) -> Path:
    """A tiny Gemma 3 text model: sliding-window layers beside full-attention ones."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from rai_multi.models.tiny import build_tokenizer

    out = tmp_path_factory.mktemp("tiny_sliding")
    tok = build_tokenizer("causal")
    config = Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=4,
                              layer_types=["sliding_attention", "full_attention"], max_position_embeddings=512,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                              bos_token_id=tok.bos_token_id)
    torch.manual_seed(0)
    Gemma3ForCausalLM(config).eval().save_pretrained(out)
    tok.save_pretrained(out)
    return out
