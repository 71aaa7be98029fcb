"""A tiny GGUF file written here with the `gguf` package loads through load_model, the
same code path as the demo models (dequantise once, cache as safetensors, fingerprint by
the file's hash), and computes the same logits as the model it was written from."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rai_multi.models.loading import load_model
from rai_multi.models.tiny import build_tiny_model


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's Q/K row order (the inverse of what transformers undoes on load)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(model_dir, path, add_bos: bool | None = None) -> None:
    """A float32 llama GGUF of ``model_dir``; ``add_bos`` writes tokenizer.ggml.add_bos_token
    (llama.cpp's servers read it; the tiny tokenizer itself prepends <s>)."""
    import gguf
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    cfg = model.config
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    specials = {a["content"] for a in tok["added_tokens"]}
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(cfg.rope_theta if hasattr(cfg, "rope_theta") else 10000.0)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_vocab_size(cfg.vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in specials else 1 for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab["<s>"])
    w.add_eos_token_id(vocab["</s>"])
    w.add_pad_token_id(vocab["<pad>"])
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    sd = {k: v.float().numpy() for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        w.add_tensor(f"blk.{i}.attn_q.weight", _permute(sd[p + "self_attn.q_proj.weight"], cfg.num_attention_heads))
        w.add_tensor(f"blk.{i}.attn_k.weight", _permute(sd[p + "self_attn.k_proj.weight"], cfg.num_key_value_heads))
        w.add_tensor(f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        w.add_tensor(f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        w.add_tensor(f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_tiny_gguf_loads_through_the_demo_code_path(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("RAI_MULTI_MODEL_CACHE", str(tmp_path / "cache"))
    source = build_tiny_model(tmp_path / "tiny", "tiny-causal")
    gguf_path = tmp_path / "tiny-llama.gguf"
    write_llama_gguf(source, gguf_path)
    # fp32 so the logits can be compared exactly ("auto" may pick bf16 on a CPU with bf16 units)
    adapter = load_model(str(gguf_path), dtype="fp32")
    assert adapter.fingerprint.startswith("gguf:")
    converted = list((tmp_path / "cache").glob("gguf-*"))
    assert len(converted) == 1 and (converted[0] / "config.json").is_file()
    reference = AutoModelForCausalLM.from_pretrained(source).eval()
    ids = torch.tensor([adapter.tokenizer("The answer is 11.")["input_ids"]])
    with torch.inference_mode():
        ours = adapter.model(input_ids=ids).logits
        theirs = reference(input_ids=ids).logits
    assert torch.allclose(ours, theirs, atol=1e-4)
    again = load_model(str(gguf_path), dtype="fp32")  # second load: from the safetensors cache
    assert again.fingerprint == adapter.fingerprint
    assert len(list((tmp_path / "cache").glob("gguf-*"))) == 1


def test_bad_gguf_is_a_clear_error(tmp_path, monkeypatch):
    from rai_multi.errors import ModelLoadError

    monkeypatch.setenv("RAI_MULTI_MODEL_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file")
    with pytest.raises(ModelLoadError, match="cannot read GGUF file"):
        load_model(str(bad))
    assert not list((tmp_path / "cache").glob("gguf-*"))
