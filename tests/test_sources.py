"""The data-sources table: one row per benchmark, its local layout finds the real files,
its revisions are the loaders' own."""

from __future__ import annotations

import pytest

from rai_multi.data import bbq, crows_pairs, mgsm, rtp, toxicity_cls, tydiqa, winobias, xcopa
from rai_multi.data.sources import SOURCES, DataSource, expand_braces, source

# File counts from the data folder's README (11 MGSM languages, 9 + 3 TyDiQA files, ...).
EXPECTED_FILES = {"mgsm": 11, "tydiqa": 12, "xcopa": 22, "bbq": 6, "bbq_lite": 9, "crows_pairs": 1, "winobias": 8,
                  "winogender": 3, "holistic_bias": 3, "rtp": 2, "davidson": 1}


def test_one_row_per_benchmark():
    names = [s.benchmark for s in SOURCES]
    assert len(names) == len(set(names)) and set(names) == set(EXPECTED_FILES)
    assert all(isinstance(s, DataSource) and s.license for s in SOURCES)


@pytest.mark.parametrize("name,count", sorted(EXPECTED_FILES.items()))
def test_local_glob_finds_the_real_files(data_dir, name, count):
    assert len(source(name).local_files(data_dir)) == count


def test_revisions_are_the_loaders_own():
    assert (source("xcopa").hub_id, source("xcopa").hub_revision) == (xcopa.HUB_DATASET, xcopa.HUB_REVISION)
    assert source("mgsm").hub_revision == mgsm.HUB_REVISION and source("tydiqa").hub_revision == tydiqa.HUB_REVISION
    assert source("bbq").hub_revision == bbq.HUB_REVISION and source("crows_pairs").hub_revision == crows_pairs.HUB_REVISION
    assert source("winobias").hub_revision == winobias.HUB_REVISION and source("rtp").hub_revision == rtp.HUB_REVISION
    assert source("davidson").hub_revision == toxicity_cls.DAVIDSON_REVISION
    # Only XCOPA's revision is a commit sha today; the others are branch names to pin online.
    assert [s.benchmark for s in SOURCES if s.pinned] == ["xcopa"]
    assert all((s.hub_id is None) == (s.hub_loader == "") for s in SOURCES)


def test_expand_braces_and_unknown():
    assert expand_braces("w/{pro,anti}_{1,2}.txt") == ["w/pro_1.txt", "w/pro_2.txt", "w/anti_1.txt", "w/anti_2.txt"]
    assert expand_braces("a/*.json") == ["a/*.json"]
    with pytest.raises(KeyError, match="known: mgsm"):
        source("nope")


def test_hub_loaders_named_in_the_table_exist():
    import importlib

    for row in SOURCES:
        if row.hub_loader:
            module, _, name = row.hub_loader.rpartition(".")
            assert callable(getattr(importlib.import_module(module), name)), row.hub_loader
