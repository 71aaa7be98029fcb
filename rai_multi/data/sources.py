"""Where each benchmark's data comes from: the local folder layout, the hub dataset and its
revision, and the license. One table, read by the task specs, so a report or manifest can
say exactly which bytes a run read.

The revisions are the loader modules' own constants (imported, not copied), so this table
cannot drift from what the loaders request. ``pinned`` is False where only a branch name
is known offline: those must be replaced by a commit sha looked up on the hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rai_multi.data import bbq, crows_pairs, mgsm, rtp, toxicity_cls, tydiqa, winobias, xcopa
from rai_multi.data.hub import is_commit_sha


@dataclass(frozen=True)
class DataSource:
    benchmark: str
    local_glob: str            # relative to the data directory; {a,b} alternatives allowed
    hub_id: str | None         # None: no hub copy that yields the same records
    hub_revision: str | None
    license: str
    hub_loader: str = ""       # the function that reads hub_id; "" where there is none
    note: str = ""

    @property
    def pinned(self) -> bool:
        """True when the hub revision is a commit sha (a branch name can move)."""
        return is_commit_sha(self.hub_revision)

    def local_files(self, data_dir: Path) -> list[Path]:
        """The files under ``data_dir`` that match ``local_glob`` (sorted, no duplicates)."""
        return sorted({p for pattern in expand_braces(self.local_glob) for p in data_dir.glob(pattern) if p.is_file()})


_BRACES = re.compile(r"\{([^{}]*)\}")


def expand_braces(pattern: str) -> list[str]:
    """``a/{x,y}.txt`` -> ``["a/x.txt", "a/y.txt"]`` (pathlib's glob has no brace syntax)."""
    match = _BRACES.search(pattern)
    if not match:
        return [pattern]
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [out for option in match.group(1).split(",") for out in expand_braces(head + option + tail)]


SOURCES: tuple[DataSource, ...] = (
    DataSource("mgsm", "mgsm/mgsm_*.tsv", mgsm.HUB_DATASET, mgsm.HUB_REVISION, "CC-BY-4.0",
               "rai_multi.data.mgsm.load_mgsm_hub", "exemplars: mgsm/exemplars.py locally, the train split on the hub"),
    DataSource("tydiqa", "tydiqa_goldp/{dev,train}/*.json", tydiqa.HUB_DATASET, tydiqa.HUB_REVISION, "Apache-2.0",
               "rai_multi.data.tydiqa.load_tydiqa_hub", "GoldP = the secondary_task config"),
    DataSource("xcopa", "xcopa/{val,test}.*.jsonl", xcopa.HUB_DATASET, xcopa.HUB_REVISION, "CC-BY-4.0",
               "rai_multi.data.xcopa.load_xcopa_hub"),
    DataSource("bbq", "bbq/*.jsonl", bbq.HUB_DATASET, bbq.HUB_REVISION, "CC-BY-4.0",
               "rai_multi.data.bbq.load_bbq_hub", "the full 11 categories; locally bbq_lite/*.json fills missing ones"),
    DataSource("bbq_lite", "bbq_lite/*.json", None, None, "Apache-2.0", "",
               "BIG-bench subset of BBQ, local only; the hub loader reads the full BBQ instead"),
    DataSource("crows_pairs", "crows_pairs/crows_pairs_anonymized.csv", crows_pairs.HUB_DATASET, crows_pairs.HUB_REVISION,
               "CC-BY-SA-4.0", "rai_multi.data.crows_pairs.load_crows_pairs_hub"),
    DataSource("winobias", "winobias/{pro,anti}_stereotyped_type{1,2}.txt.{dev,test}", winobias.HUB_DATASET,
               winobias.HUB_REVISION, "MIT", "rai_multi.data.winobias.load_winobias_hub",
               "hub rows are CoNLL tokens; occupation lists are collected from the referents"),
    DataSource("winogender", "winogender/{all_sentences,templates,occupations-stats}.tsv", None, None, "MIT", "",
               "no hub loader: the hub copies found (oskarvanderwal/winogender) lack the BLS occupation statistics "
               "the gotcha split needs"),
    DataSource("holistic_bias", "holistic_bias/{descriptors,nouns,sentence_templates}.json", None, None, "CC-BY-SA-4.0",
               "", "no hub loader: fairnlp/holistic-bias holds generated v1.0 sentences, not the v1.1 parts read here"),
    DataSource("rtp", "realtoxicityprompts/*.jsonl", rtp.HUB_DATASET, rtp.HUB_REVISION, "Apache-2.0",
               "rai_multi.data.rtp.load_rtp_hub", "the hub has the full 99k prompts; the local files are a subset"),
    DataSource("davidson", "davidson_hate_offensive/labeled_data.csv", toxicity_cls.DAVIDSON_HUB,
               toxicity_cls.DAVIDSON_REVISION, "MIT", "rai_multi.data.toxicity_cls.load_davidson_hub",
               "hub ids are row positions (davidson/row<N>): the hub has no index column and the csv's has gaps"),
)


def source(benchmark: str) -> DataSource:
    """The row for one benchmark (KeyError names the known ones)."""
    for row in SOURCES:
        if row.benchmark == benchmark:
            return row
    raise KeyError(f"no data source {benchmark!r}; known: {', '.join(r.benchmark for r in SOURCES)}")
