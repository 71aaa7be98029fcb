"""A checkpoint whose tensors do not match its model class is an error naming the keys."""

from __future__ import annotations

import shutil

import pytest
import safetensors.torch as st
from typer.testing import CliRunner

from rai_multi.cli.main import app
from rai_multi.errors import ModelLoadError
from rai_multi.models.loading import load_model


def _edit_weights(src, dst, edit):
    shutil.copytree(src, dst)
    weights = st.load_file(str(dst / "model.safetensors"))
    edit(weights)
    st.save_file(weights, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def test_intact_checkpoint_loads(tiny_causal):
    assert load_model(str(tiny_causal), dtype="fp32").name == tiny_causal.name


def test_deleted_tensor_is_named(tiny_causal, tmp_path):
    key = "model.layers.0.mlp.up_proj.weight"
    broken = _edit_weights(tiny_causal, tmp_path / "deleted", lambda w: w.pop(key))
    with pytest.raises(ModelLoadError, match=rf"1 weight\(s\) missing .*{key}"):
        load_model(str(broken), dtype="fp32")


def test_renamed_tensor_is_named_both_ways(tiny_seq2seq, tmp_path):
    key = "decoder.block.0.layer.0.SelfAttention.k.weight"
    broken = _edit_weights(tiny_seq2seq, tmp_path / "renamed", lambda w: w.__setitem__(f"old.{key}", w.pop(key)))
    with pytest.raises(ModelLoadError) as err:
        load_model(str(broken), dtype="fp32")
    message = str(err.value)
    assert f"missing (would be randomly initialised): {key}" in message
    assert f"unexpected (not used by the model): old.{key}" in message


def test_cli_stops_before_evaluating(tiny_causal, tmp_path, data_dir):
    """The eval command raises the user error (main() prints it as one ``error:`` line,
    exit 2) and writes no run."""
    broken = _edit_weights(tiny_causal, tmp_path / "cli", lambda w: w.pop("model.norm.weight"))
    result = CliRunner().invoke(app, ["eval", "mgsm", "--model", str(broken), "--langs", "en", "--limit", "1",
                                      "--data-dir", str(data_dir), "--out", str(tmp_path / "runs")])
    assert isinstance(result.exception, ModelLoadError) and result.exception.exit_code == 2
    assert "model.norm.weight" in str(result.exception) and "\n" not in str(result.exception)
    assert not (tmp_path / "runs").exists()
