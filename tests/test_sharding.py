"""Data-parallel evaluation: two processes (torchrun, gloo) each generate their stride of
the samples into the shared cache, rank 0 writes one run directory, and the metrics equal
a single-process run's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rai_multi.store import RunDir


@pytest.mark.slow
def test_two_process_eval_equals_one_process(tiny_causal, data_dir, tmp_path):
    common = ["eval", "mgsm", "--model", str(tiny_causal), "--langs", "en,bn,sw", "--limit", "4", "--max-new-tokens", "6",
              "--data-dir", str(data_dir), "--name", "tiny", "--dtype", "fp32"]
    single = subprocess.run([sys.executable, "-m", "rai_multi.cli.main", *common, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    sharded = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m",
                              "rai_multi.cli.main", *common, "--out", str(tmp_path / "two")],
                             capture_output=True, text=True, timeout=300)
    assert sharded.returncode == 0, sharded.stderr[-2000:]
    one = RunDir(tmp_path / "one" / "tiny" / "mgsm-native_cot")
    two = RunDir(tmp_path / "two" / "tiny" / "mgsm-native_cot")
    assert two.read_manifest()["shards"] == 2
    assert one.read_metrics()["metrics"] == two.read_metrics()["metrics"]
    rows_one, rows_two = one.read_samples(), two.read_samples()
    assert [r["id"] for r in rows_two] == [r["id"] for r in rows_one]  # no duplicates, no gaps
    assert [r["outputs"] for r in rows_two] == [r["outputs"] for r in rows_one]
    assert json.dumps(rows_one, sort_keys=True) == json.dumps(rows_two, sort_keys=True)
