"""Shared fixtures: the real data dir (skip with a reason when absent) and tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rai_multi.models.tiny import build_tiny_model

_DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real benchmark files (RAI_MULTI_DATA, else ../shared/data beside the repo)."""
    raw = os.environ.get("RAI_MULTI_DATA")
    path = Path(raw) if raw else _DEFAULT_DATA
    if not path.is_dir():
        pytest.skip(f"real benchmark data not found (set RAI_MULTI_DATA; looked in {path})")
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
