"""Tiny random models built in-process (no hub): for tests, demos of the code path, and
speed benchmarks (speed does not depend on the weights, only on the shapes).

The tokenizer is a byte-level BPE trained on a few lines of multilingual text, so every
script round-trips; the models are randomly initialised T5 (seq2seq) or Llama (causal)
configurations saved with ``save_pretrained`` so they load like any local model.
"""

from __future__ import annotations

from pathlib import Path

_CORPUS = [
    "Question: Roger has 5 tennis balls. The answer is 11.",
    "Frage: Die Antwort ist 29. Pregunta: La respuesta es 39. Question : La réponse est 9.",
    "問題：答えは33です。 问题：答案是 8。 Задача: Ответ — 8. Swali: Jibu ni 5.",
    "প্রশ্ন: উত্তর হল ১১। ప్రశ్న: సమాధానం 29. โจทย์: คำตอบคือ 39",
    "The quick brown fox jumps over the lazy dog. yes no Yes No",
    "سؤال: الإجابة هي 5. Kysymys: Vastaus on 7. Pertanyaan: Jawabannya adalah 3. 질문: 답은 4입니다.",
]

# name -> (kind, config overrides)
SHAPES: dict[str, tuple[str, dict]] = {
    "tiny-seq2seq": ("seq2seq", dict(d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2, num_decoder_layers=2)),
    "tiny-causal": ("causal", dict(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                   num_key_value_heads=2, num_hidden_layers=2)),
    # Shaped like google/flan-t5-small (77M parameters with its 32k vocabulary).
    "flan-t5-small": ("seq2seq", dict(d_model=512, d_ff=1024, d_kv=64, num_heads=6, num_layers=8,
                                      num_decoder_layers=8, feed_forward_proj="gated-gelu",
                                      tie_word_embeddings=False, vocab_size=32128)),
    # Shaped like SmolLM2-135M (Llama architecture, 49k vocabulary).
    "smollm2-135m": ("causal", dict(hidden_size=576, intermediate_size=1536, num_attention_heads=9,
                                    num_key_value_heads=3, num_hidden_layers=30, vocab_size=49152,
                                    tie_word_embeddings=True)),
}


def build_tokenizer(kind: str, vocab_size: int = 600, corpus: list[str] | None = None):
    """Byte-level BPE tokenizer; seq2seq appends ``</s>``, causal prepends ``<s>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "</s>", "<s>", "<unk>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus or _CORPUS * 4, trainer=trainer)
    if kind == "seq2seq":
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
            model_max_length=512,
        )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", bos_token="<s>", unk_token="<unk>",
        model_max_length=2048,
    )


def build_tiny_model(
    out_dir: Path, shape: str = "tiny-seq2seq", seed: int = 0, corpus: list[str] | None = None, vocab_size: int = 600
) -> Path:
    """Save a randomly initialised model of ``shape`` (see SHAPES) plus tokenizer to ``out_dir``
    (tokenizer trained on ``corpus`` when given: realistic token counts for benchmarks)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

    kind, overrides = SHAPES[shape]
    tokenizer = build_tokenizer(kind, vocab_size, corpus)
    overrides = dict(overrides)
    vocab = max(overrides.pop("vocab_size", 0), len(tokenizer))
    torch.manual_seed(seed)
    if kind == "seq2seq":
        config = T5Config(
            vocab_size=vocab, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id, **overrides,
        )
        model = T5ForConditionalGeneration(config)
    else:
        config = LlamaConfig(
            vocab_size=vocab, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            bos_token_id=tokenizer.bos_token_id, max_position_embeddings=2048, **overrides,
        )
        model = LlamaForCausalLM(config)
    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
