"""Data-parallel evaluation: two processes (torchrun) each generate their stride of
the samples into the shared cache, rank 0 writes one run directory, and the metrics equal
a single-process run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rai_multi.errors import RaiMultiError
from rai_multi.models.scripted import ScriptedAdapter
from rai_multi.runner import RunOptions, Shard, _wait_for_shards, generate_responses
from rai_multi.store import RunDir
from rai_multi.tasks.mgsm import MgsmTask
from helpers import find_run


def _recording_adapter(asked: list[str]) -> ScriptedAdapter:
    def generate(request, sample_id):
        asked.append(sample_id)
        return [f"The answer is {len(asked)}."]

    adapter = ScriptedAdapter("rec", generate_fn=generate)
    adapter.cacheable = True
    return adapter


def test_late_rank_generates_its_own_stride_whatever_the_cache_holds(data_dir, tmp_path):
    # CI once hung here: rank 1 started after rank 0 had committed its answers, took its
    # stride of what was still missing (3 of 6) and left the other 3 to nobody.
    task = MgsmTask(langs=["en", "bn", "sw"], data_dir=data_dir, limit=4)
    samples = task.build_samples()
    ids = [s.id for s in samples]
    options = RunOptions(tmp_path, "rec", progress=False)
    asked0: list[str] = []
    asked1: list[str] = []
    generate_responses(task, _recording_adapter(asked0), samples, options, Shard(rank=0, world_size=2))
    generate_responses(task, _recording_adapter(asked1), samples, options, Shard(rank=1, world_size=2))
    assert sorted(asked0) == sorted(ids[0::2]) and sorted(asked1) == sorted(ids[1::2])
    found = _wait_for_shards(task, _recording_adapter([]), samples, options, stall_seconds=0.0)
    assert sorted(found) == sorted(ids)


def test_rank0_gives_up_with_a_clear_error_when_peers_stall(data_dir, tmp_path):
    task = MgsmTask(langs=["en", "bn", "sw"], data_dir=data_dir, limit=4)
    samples = task.build_samples()
    options = RunOptions(tmp_path, "rec", progress=False)
    generate_responses(task, _recording_adapter([]), samples, options, Shard(rank=0, world_size=2))
    with pytest.raises(RaiMultiError, match="6 of 12 answers still missing"):
        _wait_for_shards(task, _recording_adapter([]), samples, options, stall_seconds=0.2, poll_seconds=0.05)


@pytest.mark.slow
def test_two_process_eval_equals_one_process(tiny_causal, data_dir, tmp_path):
    common = ["eval", "mgsm", "--model", str(tiny_causal), "--langs", "en,bn,sw", "--limit", "4", "--max-new-tokens", "6",
              "--data-dir", str(data_dir), "--name", "tiny", "--dtype", "fp32"]
    single = subprocess.run([sys.executable, "-m", "rai_multi.cli.main", *common, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    # A stalled peer makes rank 0 fail with its own message well before the test's timeout.
    env = {**os.environ, "RAI_MULTI_SHARD_STALL_SECONDS": "120"}
    sharded = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m",
                              "rai_multi.cli.main", *common, "--out", str(tmp_path / "two")],
                             capture_output=True, text=True, timeout=300, env=env)
    assert sharded.returncode == 0, sharded.stderr[-2000:]
    one = RunDir(find_run(tmp_path / "one" / "tiny", "mgsm-native_cot"))
    two = RunDir(find_run(tmp_path / "two" / "tiny", "mgsm-native_cot"))
    assert two.read_manifest()["shards"] == 2
    assert one.read_metrics()["metrics"] == two.read_metrics()["metrics"]
    rows_one, rows_two = one.read_samples(), two.read_samples()
    assert [r["id"] for r in rows_two] == [r["id"] for r in rows_one]  # no duplicates, no gaps
    assert [r["outputs"] for r in rows_two] == [r["outputs"] for r in rows_one]
    assert json.dumps(rows_one, sort_keys=True) == json.dumps(rows_two, sort_keys=True)
