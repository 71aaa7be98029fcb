"""The one model spec (parsing, checks, canonical form), suite rows that make the same spec,
the vLLM import guard, device choice per local rank, the GPU load dtype, and the auto batch's
GPU memory cap and out-of-memory backoff (no GPU needed: the GPU facts are passed in)."""

from __future__ import annotations

import pytest
import torch

from rai_multi.errors import ConfigError, ModelLoadError, RaiMultiError
from rai_multi.models.auto_batch import DecodeBytes, OomBackoff, auto_decode_rows, is_out_of_memory, memory_rows
from rai_multi.models.device import choose_device, load_dtype
from rai_multi.models.spec import ModelSpec, load_backend, parse_model
from rai_multi.suite import load_suite


@pytest.mark.parametrize("text, backend, source", [
    ("./models/x", "hf", "./models/x"), ("google/gemma-3-270m", "hf", "google/gemma-3-270m"),
    ("demo:gemma3-270m", "hf", "demo:gemma3-270m"), ("vllm:meta/llama", "vllm", "meta/llama"),
    ("openai:gpt-x", "openai", "gpt-x"), ("openai-chat:gpt-x", "openai-chat", "gpt-x"),
])
def test_prefixes_choose_the_backend(text, backend, source):
    spec = parse_model(text)
    assert (spec.backend, spec.source) == (backend, source)


def test_bad_fields_are_config_errors():
    with pytest.raises(ConfigError, match="concurrency"):
        parse_model("openai:m", concurrency=0)
    with pytest.raises(ConfigError, match="base_url/api_key_env apply to openai"):
        parse_model("./m", base_url="http://h")
    with pytest.raises(ConfigError, match="dtype is the server's business"):
        parse_model("openai:m", dtype="bf16")
    with pytest.raises(ConfigError, match="empty"):
        parse_model("openai:")
    with pytest.raises(ConfigError, match="unknown model field"):
        parse_model("./m", tensor_parallel=2)
    with pytest.raises(ModelLoadError, match="unknown device"):
        parse_model("./m", device="gpu0")


def test_canonical_form_leaves_out_key_concurrency_and_port():
    a = parse_model("openai:m", base_url="http://h:1/v1", concurrency=2, api_key_env="K1")
    b = parse_model("openai:m", base_url="http://h:2/v1", concurrency=16, api_key_env="K2")
    assert a.canonical_hash() == b.canonical_hash()
    assert parse_model("openai:m", revision="r2").canonical_hash() != a.canonical_hash()
    assert parse_model("vllm:m", max_model_len=2048).canonical() != parse_model("vllm:m").canonical()


def test_vllm_import_guard_is_one_clear_error():
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed here: the guard cannot be exercised")
    except ImportError:
        pass
    with pytest.raises(ModelLoadError, match=r"vllm:\.\.\. needs the vllm package"):
        load_backend(parse_model("vllm:some/model", tensor_parallel_size=2, max_model_len=1024))


def test_replay_is_not_loaded_here():
    with pytest.raises(ModelLoadError, match="score commands"):
        load_backend(ModelSpec(source="preds.jsonl", backend="replay"))


SUITE = """
baseline = "local"
[[model]]
name = "local"
source = "{local}"
[[model]]
name = "served"
source = "openai:my-model"
base_url = "http://127.0.0.1:8000/v1"
api_key_env = "MY_KEY"
concurrency = 8
revision = "2024-06"
{extra}
[[task]]
type = "mgsm"
"""


def test_suite_rows_make_the_cli_spec(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SUITE.format(local=tmp_path, extra=""))
    suite = load_suite(path)
    served = suite.model("served").model_spec()
    assert served == parse_model("openai:my-model", base_url="http://127.0.0.1:8000/v1", api_key_env="MY_KEY",
                                 concurrency=8, revision="2024-06")
    assert suite.model("local").model_spec().backend == "hf"


@pytest.mark.parametrize("extra, message", [
    ('tensor_parallel_size = "2"', "'tensor_parallel_size' must be int"),
    ("max_model_len = 0", "max_model_len must be a positive"),
    ('device = "tpu"', "unknown device"),
])
def test_suite_rows_are_checked(tmp_path, extra, message):
    path = tmp_path / "s.toml"
    path.write_text(SUITE.format(local=tmp_path, extra=extra))
    with pytest.raises(ConfigError, match=message):
        load_suite(path)


# ------------------------------------------------------------------ devices and dtypes
@pytest.mark.parametrize("requested, env, count, want", [
    (None, {}, 0, "cpu"), (None, {"LOCAL_RANK": "1"}, 0, "cpu"),
    (None, {}, 2, "cuda:0"), (None, {"LOCAL_RANK": "1"}, 2, "cuda:1"), ("cuda", {"LOCAL_RANK": "3"}, 4, "cuda:3"),
    ("cuda:1", {"LOCAL_RANK": "0"}, 2, "cuda:1"), ("cpu", {"LOCAL_RANK": "1"}, 2, "cpu"),
])
def test_each_rank_gets_its_own_gpu(requested, env, count, want):
    assert choose_device(requested, env, cuda_count=count) == want


def test_device_errors():
    with pytest.raises(ModelLoadError, match="cuda:2 is not visible"):
        choose_device(None, {"LOCAL_RANK": "2"}, cuda_count=2)
    with pytest.raises(ModelLoadError, match="no CUDA GPU"):
        choose_device("cuda", {}, cuda_count=0)
    with pytest.raises(ModelLoadError, match="LOCAL_RANK must be"):
        choose_device(None, {"LOCAL_RANK": "x"}, cuda_count=1)


def test_gpu_loads_in_the_target_dtype_cpu_in_float32():
    assert load_dtype("cuda:0", "auto", "torch.bfloat16") == "bfloat16"
    assert load_dtype("cuda:0", "auto", "float16") == "float16"
    assert load_dtype("cuda:0", "auto", "float32") == "bfloat16"
    assert load_dtype("cuda:1", "fp16") == "float16" and load_dtype("cuda:0", "fp32") == "float32"
    assert load_dtype("cpu", "bf16", "bfloat16") == "float32"
    with pytest.raises(ModelLoadError, match="int8"):
        load_dtype("cuda:0", "int8")


# ------------------------------------------------------------------ GPU batch sizing
def test_gpu_rows_capped_by_free_memory():
    cost = DecodeBytes(weights=10**9, kv_per_token=1000)
    # 100 prompt tokens -> 100 kB of keys/values per row, x2 for growth; half of 1 GB free: 2500 rows
    assert memory_rows(10**9, 100 * 1000) == 2500
    assert auto_decode_rows(100, cost, gpu=True, free_bytes=10**9) == 256  # ROWS_GPU's top
    assert auto_decode_rows(100, cost, gpu=True, free_bytes=4 * 10**6) == 10  # 0.5 * 4e6 // 2e5
    assert auto_decode_rows(100, cost, gpu=True, free_bytes=10**5) == 1  # below one row: still one


def test_oom_backoff_halves_and_stops_at_one():
    backoff = OomBackoff()
    assert backoff.rows(64) == 64
    backoff.failed(64)
    assert backoff.rows(64) == 32 and backoff.rows(10) == 10
    backoff.failed(32)
    backoff.failed(16)
    assert backoff.rows(64) == 8
    with pytest.raises(RaiMultiError, match="out of GPU memory with one prompt"):
        backoff.failed(1)
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory")) and not is_out_of_memory(ValueError())


def test_generation_retries_a_batch_that_ran_out_of_memory(tiny_causal):
    """A fake decoder that raises torch.cuda.OutOfMemoryError for batches of more than 3
    prompts: every prompt still gets the same answer as an unconstrained run."""
    from rai_multi.models.loading import load_model
    from rai_multi.records import GenerationRequest

    requests = [GenerationRequest(f"Question {i}: the answer is", max_new_tokens=4) for i in range(10)]
    ids = [str(i) for i in range(10)]
    want = load_model(str(tiny_causal), batch_size=10, dtype="fp32").generate(requests, ids)
    adapter = load_model(str(tiny_causal), batch_size=10, dtype="fp32")
    real, sizes = adapter._decode, []

    def decode(units, sampling, k):
        rows = sum(len(u.rows) for u in units)
        sizes.append(rows)
        if rows > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        return real(units, sampling, k)

    adapter._decode = decode
    assert adapter.generate(requests, ids) == want
    assert sizes[:3] == [10, 5, 2] and set(sizes[3:]) <= {2}  # halved twice, then the cap holds
