"""Bad-input probes against the ``rai-multi`` entry point, each in its own process.

Each probe sets up a broken input (a binary data file, a corrupt metrics.json, a suite
with ``limit = -1``, an output path that is a folder, a full disk, Ctrl-C ...), runs one
CLI command in a separate process, and checks what the user gets: exit 2 with exactly one
``error:`` line and no traceback (or the documented exit 0 / 130), plus any after-check
(the earlier run still intact, files readable per the umask, no temp files left).

By default every probe runs in a child forked from a driver that has imported
``rai_multi.cli.main`` once (the import of torch costs tens of seconds on a shared CPU);
``--spawn`` runs ``python -m rai_multi.cli.main`` afresh for every probe instead.

    PYTHONPATH=. python benchmarks/bad_input_probes.py [--spawn] [-k SUBSTRING]

Prints one line per probe and ``N passed, M failed``; exit 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BINARY = b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary \xc3\x28\n"
RULE = '[[rule]]\ntask = "mgsm"\nmetric = "accuracy"\nslice = "all"\n'


@dataclass
class Probe:
    name: str
    setup: Callable[[Path], list]          # workdir -> argv (after "rai-multi")
    expect: str = "error"                  # error | ok | interrupt
    needle: str = ""                       # must be in the error line (or in stderr for ok)
    after: Callable[[Path], str | None] | None = None  # returns a failure reason or None
    env: dict[str, str] = field(default_factory=dict)
    hook: str = ""                         # python run in the child before main() (fork mode)


# ------------------------------------------------------------------ shared setup
class World:
    """Sample data, a tiny model and two finished runs, built once and copied per probe."""

    def __init__(self, root: Path):
        from rai_multi.models.tiny import build_tiny_model
        from rai_multi.samples import write_sample_data

        self.root = root
        self.data = write_sample_data(root / "data")
        self.model = build_tiny_model(root / "model", "tiny-causal")


WORLD: World | None = None


def fresh(work: Path) -> Path:
    """A private copy of the sample data in ``work``."""
    assert WORLD is not None
    target = work / "data"
    shutil.copytree(WORLD.data, target)
    return target


def preds(path: Path, n: int = 5, answer: str = "The answer is 7.") -> Path:
    path.write_text("".join(json.dumps({"id": f"mgsm/en/{i}", "output": answer}) + "\n" for i in range(n)),
                    encoding="utf-8")
    return path


def any_preds(work: Path) -> Path:
    path = work / "any.jsonl"
    path.write_text('{"id": "x", "output": "y"}\n', encoding="utf-8")
    return path


def two_runs(work: Path) -> Path:
    """runs/ with complete MGSM runs of 'base' and 'cand' (written in-process: setup, not a probe)."""
    from rai_multi.models.replay import ReplayAdapter
    from rai_multi.runner import RunOptions, evaluate
    from rai_multi.tasks.mgsm import MgsmTask

    data = work / "data" if (work / "data").is_dir() else fresh(work)
    out = work / "runs"
    for name, answer in (("base", "The answer is 7."), ("cand", "The answer is 8.")):
        adapter = ReplayAdapter.from_file(preds(work / f"{name}.jsonl", answer=answer), name)
        evaluate(MgsmTask(langs=["en"], data_dir=data), adapter, RunOptions(out, name, progress=False))
    return out


def run_of(model_dir: Path, base: str = "mgsm-native_cot") -> Path:
    """The run folder ``<task>-<setting>-<config hash>`` under a model's folder."""
    found = sorted(p for p in model_dir.glob(f"{base}-*") if (p / "manifest.json").is_file())
    return found[0] if found else model_dir / f"{base}-missing"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def broken(rel: str, content: bytes | None = None) -> Callable[[Path], Path]:
    """Setup helper: copy the data and overwrite one file (binary by default)."""
    def make(work: Path) -> Path:
        data = fresh(work)
        write(data / rel, BINARY if content is None else content)
        return data
    return make


def edit_metrics(work: Path, change: Callable[[dict], None]) -> None:
    path = run_of(work / "runs" / "cand") / "metrics.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


def accuracy(doc: dict) -> dict:
    return next(m for m in doc["metrics"] if m["name"] == "accuracy" and m["slice"] == "all")


def suite(work: Path, task: str = "", model: str = "", top: str = "") -> Path:
    return write(work / "suite.toml", f'{top}baseline = "a"\n[[model]]\nname = "a"\nsource = "/nowhere/a"\n{model}\n'
                                      '[[model]]\nname = "b"\nsource = "/nowhere/b"\n'
                                      f'[[task]]\ntype = "mgsm"\n{task}\n')


def gate_argv(work: Path, body: str, *extra) -> list:
    return ["gate", work / "runs", "--policy", write(work / "policy.toml", body), *extra]


def report_argv(work: Path, output: Path | None = None) -> list:
    return ["report", work / "runs", "--baseline", "base", "-o", output or work / "r" / "report.html"]


def score_bias(bench: str) -> Callable[[Path, Path], list]:
    return lambda work, data: ["score", "bias", "--benchmarks", bench, "-p", any_preds(work), "--data-dir", data,
                               "--out", work / "o"]


def with_data(make_data: Callable[[Path], Path], argv: Callable[[Path, Path], list]) -> Callable[[Path], list]:
    return lambda work: argv(work, make_data(work))


def model_argv(command: list) -> Callable[[Path, Path], list]:
    assert WORLD is not None or True
    return lambda work, data: [*command, "--model", WORLD.model, "--data-dir", data, "--out", work / "o"]  # type: ignore[union-attr]


def holistic(work: Path) -> Path:
    data = fresh(work)
    write(data / "holistic_bias" / "descriptors.json", BINARY)
    write(data / "holistic_bias" / "nouns.json", "{}")
    write(data / "holistic_bias" / "sentence_templates.json", "[]")
    return data


def bbq_field(field_name: str, value) -> Callable[[Path], Path]:
    def make(work: Path) -> Path:
        data = fresh(work)
        path = data / "bbq" / "Age.jsonl"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        rows[2][field_name] = value
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return data
    return make


def text_edit(rel: str, old: str, new: str, times: int = 1) -> Callable[[Path], Path]:
    def make(work: Path) -> Path:
        data = fresh(work)
        path = data / rel
        path.write_text(path.read_text(encoding="utf-8").replace(old, new, times), encoding="utf-8")
        return data
    return make


def long_csv_field(work: Path) -> Path:
    data = fresh(work)
    with open(data / "crows_pairs" / "crows_pairs_anonymized.csv", "a", encoding="utf-8") as fh:
        fh.write('9,"' + "x" * 200_000 + '",b,stereo,age,[],w,[]\n')
    return data


def runaway_quote(work: Path) -> Path:
    data = fresh(work)
    tsv = data / "winogender" / "all_sentences.tsv"
    lines = tsv.read_text(encoding="utf-8").splitlines()
    tsv.write_text("\n".join([lines[0], '"' + lines[1]] + lines[2:] * 3000) + "\n", encoding="utf-8")
    return data


def damaged_model(damage: str) -> Callable[[Path], list]:
    def make(work: Path) -> list:
        assert WORLD is not None
        data = fresh(work)
        model = work / "model"
        shutil.copytree(WORLD.model, model)
        weights = model / "model.safetensors"
        raw = weights.read_bytes()
        weights.write_bytes(raw[: len(raw) // 2] if damage == "truncated" else b"\x00garbage" * 10)
        return ["eval", "mgsm", "--model", model, "--langs", "en", "--limit", "1", "--data-dir", data, "--out", work / "o"]
    return make


def eval_mgsm(work: Path, data: Path, *extra) -> list:
    assert WORLD is not None
    return ["eval", "mgsm", "--model", WORLD.model, "--langs", "en", "--limit", "2", "--max-new-tokens", "2",
            "--shots", "0", "--data-dir", data, "--out", work / "o", "--name", "tiny", *extra]


def corrupt_cache(work: Path) -> list:
    data = fresh(work)
    write(work / "o" / ".cache" / "generations.sqlite", b"not a database" * 100)
    return eval_mgsm(work, data)


def cache_rebuilt(work: Path) -> str | None:
    if not list((work / "o" / ".cache").glob("generations.sqlite.corrupt-*")):
        return "corrupt cache not moved aside"
    with sqlite3.connect(work / "o" / ".cache" / "generations.sqlite") as conn:
        n = conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    return None if n == 2 else f"rebuilt cache holds {n} answers, expected 2"


def failed_rerun(work: Path) -> list:
    runs = two_runs(work)
    run = run_of(runs / "base")
    (work / "before.json").write_text(json.dumps({p.name: p.read_text() for p in run.iterdir()}))
    return ["score", "mgsm", "-p", preds(work / "partial.jsonl", n=3), "--langs", "en", "--data-dir", work / "data",
            "--out", runs, "--name", "base"]


def old_run_intact(work: Path) -> str | None:
    run = run_of(work / "runs" / "base")
    now = {p.name: p.read_text() for p in run.iterdir()}
    if now != json.loads((work / "before.json").read_text()):
        return "the finished run changed"
    leftovers = [p.name for p in run.parent.iterdir() if p.name != run.name]
    return f"left behind: {leftovers}" if leftovers else None


def stale_leftovers(work: Path) -> list:
    runs = two_runs(work)
    dead = 2**22 + 12345
    write(run_of(runs / "base") / f".metrics.json.{dead}.abc.tmp", "half")
    (runs / "base" / f".{run_of(runs / 'base').name}.staging-{dead}").mkdir()
    return ["score", "mgsm", "-p", preds(work / "again.jsonl"), "--langs", "en", "--data-dir", work / "data",
            "--out", runs, "--name", "base"]


def no_leftovers(work: Path) -> str | None:
    found = [str(p) for p in (work / "runs").rglob(".*") if ".cache" not in p.parts]
    return f"left behind: {found}" if found else None


def full_disk(work: Path) -> list:
    two_runs(work)
    mount = work / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True).returncode:
        raise SkipProbe("cannot mount a tmpfs (not root)")
    return report_argv(work, mount / "report.html")


def read_only(work: Path) -> list:
    two_runs(work)
    mount = work / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(mount)], capture_output=True).returncode:
        raise SkipProbe("cannot mount a read-only tmpfs (not root)")
    return report_argv(work, mount / "report.html")


def umask_022(work: Path) -> list:
    two_runs(work)
    return report_argv(work, work / "r" / "report.html")


def modes_644(work: Path) -> str | None:
    bad = [f"{p.name}:{oct(stat.S_IMODE(p.stat().st_mode))}" for p in (work / "r").iterdir()
           if stat.S_IMODE(p.stat().st_mode) != 0o644]
    return f"modes: {bad}" if bad else None


def md_escaped(work: Path) -> list:
    from rai_multi.models.replay import ReplayAdapter
    from rai_multi.runner import RunOptions, evaluate
    from rai_multi.tasks.mgsm import MgsmTask

    data = fresh(work)
    for name in ("base", "ev|l <b>x</b> [click](http://x)"):
        adapter = ReplayAdapter.from_file(preds(work / "p.jsonl"), name)
        evaluate(MgsmTask(langs=["en"], data_dir=data), adapter, RunOptions(work / "runs", name, progress=False))
    return [*report_argv(work), "--note", "a|b <script>"]


def md_clean(work: Path) -> str | None:
    text = (work / "r" / "report.md").read_text(encoding="utf-8")
    if "<b>" in text or "<script>" in text or re.search(r"(?<!\\)\]\(", text):
        return "raw HTML or a live link in report.md"
    return None if "ev\\|l" in text else "| in a model name not escaped"


class SkipProbe(Exception):
    pass


INTERRUPT_IN_GENERATE = (
    "from rai_multi.models.hf import HFAdapter\n"
    "import os, signal\n"
    "_real = HFAdapter.generate\n"
    "_n = [0]\n"
    "def _gen(self, r, i):\n"
    "    _n[0] += 1\n"
    "    if _n[0] == 2: os.kill(os.getpid(), signal.SIGINT)\n"
    "    return _real(self, r, i)\n"
    "HFAdapter.generate = _gen\n"
)
INTERRUPT_IN_LOAD = (
    "import os, signal, rai_multi.models.loading as L\n"
    "def _load(*a, **k):\n"
    "    os.kill(os.getpid(), signal.SIGINT)\n"
    "L.load_model = _load\n"
)


def probes() -> list[Probe]:
    p: list[Probe] = []
    # non-UTF-8 / binary files in every reader
    for bench, rel in (("bbq", "bbq/Age.jsonl"), ("winogender", "winogender/all_sentences.tsv"),
                       ("winobias", "winobias/pro_stereotyped_type1.txt.test")):
        p.append(Probe(f"binary {bench} file", with_data(broken(rel), score_bias(bench)), needle="not UTF-8"))
    p += [
        Probe("binary RTP file", with_data(broken("realtoxicityprompts/toxic.jsonl"), lambda w, d: [
            "score", "toxicity", "-p", any_preds(w), "--data-dir", d, "--out", w / "o"]), needle="not UTF-8"),
        Probe("binary MGSM tsv", with_data(broken("mgsm/mgsm_en.tsv"), lambda w, d: [
            "score", "mgsm", "--langs", "en", "-p", any_preds(w), "--data-dir", d, "--out", w / "o"]), needle="not UTF-8"),
        Probe("binary TyDiQA json", with_data(broken("tydiqa_goldp/dev/english.json"), lambda w, d: [
            "score", "tydiqa", "--langs", "en", "-p", any_preds(w), "--data-dir", d, "--out", w / "o"]), needle="not UTF-8"),
        Probe("binary predictions", lambda w: ["score", "mgsm", "--langs", "en", "-p", write(w / "p.jsonl", BINARY),
                                               "--data-dir", fresh(w), "--out", w / "o"], needle="not UTF-8"),
        Probe("binary policy", lambda w: ["gate", w, "--policy", write(w / "policy.toml", BINARY)], needle="not UTF-8"),
        Probe("binary suite", lambda w: ["audit", write(w / "suite.toml", BINARY)], needle="not UTF-8"),
        Probe("binary CrowS-Pairs csv", with_data(broken("crows_pairs/crows_pairs_anonymized.csv"),
                                                  model_argv(["eval", "bias", "--benchmarks", "crows_pairs"])),
              needle="not UTF-8"),
        Probe("binary Davidson csv", with_data(broken("davidson_hate_offensive/labeled_data.csv"),
                                               model_argv(["eval", "toxicity-cls", "--limit", "4"])), needle="not UTF-8"),
        Probe("binary HolisticBias json", with_data(holistic, model_argv(["eval", "identity-toxicity"])),
              needle="not UTF-8"),
        # CSV/TSV structure
        Probe("csv field over the limit", with_data(long_csv_field, model_argv(["eval", "bias", "--benchmarks", "crows_pairs"])),
              needle="longer than"),
        Probe("tsv runaway quote", with_data(runaway_quote, score_bias("winogender")), needle="all_sentences.tsv"),
        Probe("csv missing column", with_data(text_edit("davidson_hate_offensive/labeled_data.csv", ",class,", ",klass,"),
                                              model_argv(["eval", "toxicity-cls", "--limit", "4"])), needle="'class'"),
        Probe("tsv non-numeric column", with_data(text_edit("winogender/occupations-stats.tsv", "nurse\t90.0\t90.0",
                                                            "nurse\t90.0\tninety"), score_bias("winogender")),
              needle="bls_pct_female"),
        Probe("BBQ context = 12345", with_data(bbq_field("context", 12345), score_bias("bbq")), needle="'context'"),
        Probe("BBQ ans0 = null", with_data(bbq_field("ans0", None), score_bias("bbq")), needle="'ans0'"),
        # models and the cache
        Probe("truncated safetensors", damaged_model("truncated"), needle="cannot load model"),
        Probe("garbage safetensors", damaged_model("garbage"), needle="cannot load model"),
        Probe("corrupt generation cache", corrupt_cache, expect="ok", needle="warning: generation cache",
              after=cache_rebuilt),
        Probe("unknown demo model in eval", lambda w: ["eval", "bias", "--model", "demo:nope", "--benchmarks",
                                                       "winogender", "--data-dir", fresh(w), "--out", w / "o"],
              needle="unknown demo model 'nope'"),
        # runs
        Probe("failed re-run keeps the finished run", failed_rerun, needle="no prediction for 2", after=old_run_intact),
        Probe("re-run cleans stale temp/staging", stale_leftovers, expect="ok", after=no_leftovers),
        # report and gate on damaged runs
        Probe("gate: metrics.json not JSON", lambda w: (two_runs(w), write(
            run_of(w / "runs" / "cand") / "metrics.json", "{oops"), gate_argv(w, RULE + "min = 0\n"))[-1],
              needle="not valid JSON"),
        Probe("report: metrics.json binary", lambda w: (two_runs(w), write(
            run_of(w / "runs" / "cand") / "metrics.json", BINARY), report_argv(w))[-1], needle="not UTF-8"),
        Probe("gate: value true", lambda w: (two_runs(w), edit_metrics(w, lambda d: accuracy(d).update(value=True)),
                                             gate_argv(w, RULE + "min = 0.5\n"))[-1], needle="'value' must be a number"),
        Probe("gate: value \"0.9\"", lambda w: (two_runs(w), edit_metrics(w, lambda d: accuracy(d).update(value="0.9")),
                                              gate_argv(w, RULE + "min = 0.5\n"))[-1], needle="'value' must be a number"),
        Probe("gate: duplicated metric", lambda w: (two_runs(w), edit_metrics(
            w, lambda d: d["metrics"].insert(0, {**accuracy(d), "value": 1.0})), gate_argv(w, RULE + "min = 0.5\n"))[-1],
              needle="duplicated entry"),
        Probe("report: samples.jsonl corrupt", lambda w: (two_runs(w), write(
            run_of(w / "runs" / "cand") / "samples.jsonl", "{oops\n"), report_argv(w))[-1],
              needle="samples.jsonl:1"),
        Probe("gate: min = nan", lambda w: (two_runs(w), gate_argv(w, RULE + "min = nan\n"))[-1], needle="finite"),
        Probe("gate: max = inf", lambda w: (two_runs(w), gate_argv(w, RULE + "max = inf\n"))[-1], needle="finite"),
        # output paths
        Probe("--out is a file", lambda w: ["score", "mgsm", "-p", preds(w / "p.jsonl"), "--langs", "en", "--data-dir",
                                            fresh(w), "--out", write(w / "out.txt", "x")], needle="is a file"),
        Probe("-o is a directory", lambda w: (two_runs(w), (w / "r.html").mkdir(), report_argv(w, w / "r.html"))[-1],
              needle="is a directory"),
        Probe("--junit is a directory", lambda w: (two_runs(w), gate_argv(w, RULE + "min = 0\n", "--junit", w))[-1],
              needle="is a directory"),
        Probe("full disk (64k tmpfs)", full_disk, needle="no space left"),
        Probe("read-only folder", read_only, needle="read-only"),
        Probe("outputs follow umask 022", umask_022, expect="ok", after=modes_644),
        Probe("report.md escapes names, notes, |", md_escaped, expect="ok", after=md_clean),
        # suites
        Probe("suite limit = -1", lambda w: ["audit", suite(w, task="limit = -1")], needle="'limit' must be a positive"),
        Probe("suite limit = \"10\"", lambda w: ["audit", suite(w, task='limit = "10"')], needle="'limit' must be a positive"),
        Probe("suite shots = -2", lambda w: ["audit", suite(w, task="shots = -2")], needle="'shots' must be"),
        Probe("suite model dtype = fp64", lambda w: ["audit", suite(w, model='dtype = "fp64"')], needle="'dtype' must be"),
        Probe("suite seed = -1", lambda w: ["audit", suite(w, top="seed = -1\n")], needle="'seed' must be"),
        # Ctrl-C
        Probe("Ctrl-C during generation", lambda w: eval_mgsm(w, fresh(w), "--langs", "en,sw", "--limit", "4",
                                                              "--batch-size", "1"),
              expect="interrupt", needle="4 of 8 answers of mgsm are kept", hook=INTERRUPT_IN_GENERATE),
        Probe("Ctrl-C while loading the model", lambda w: eval_mgsm(w, fresh(w)), expect="interrupt",
              needle="no run had started", hook=INTERRUPT_IN_LOAD),
    ]
    return p


# ------------------------------------------------------------------ running
def run_forked(argv: list[str], hook: str, umask: int | None) -> tuple[int, str]:
    """Run main() in a forked child with ``argv``; (exit code, stderr)."""
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(err_r)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(err_w, 2)
            if umask is not None:
                os.umask(umask)
            if hook:
                exec(hook, {})
            sys.argv = ["rai-multi", *argv]
            from rai_multi.cli.main import main

            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - a traceback is what the probe looks for
            import traceback

            traceback.print_exc()
            code = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    os.close(err_w)
    chunks = []
    while chunk := os.read(err_r, 65536):
        chunks.append(chunk)
    os.close(err_r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace")


def run_spawned(argv: list[str], hook: str, umask: int | None) -> tuple[int, str]:
    code = f"{hook}\nimport sys, runpy\nsys.argv = ['rai-multi', *{argv!r}]\nrunpy.run_module('rai_multi.cli.main', run_name='__main__')\n"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None, timeout=600)
    return proc.returncode, proc.stderr


def judge(probe: Probe, code: int, err: str, work: Path) -> str | None:
    lines = [line for line in re.split(r"[\r\n]", err) if line.strip()]
    if "Traceback" in err:
        return "traceback: " + err.strip().splitlines()[-1]
    if probe.expect == "error":
        errors = [line for line in lines if line.startswith("error:")]
        if code != 2 or len(errors) != 1:
            return f"exit {code}, {len(errors)} error line(s): {err.strip()[-300:]}"
        if probe.needle not in errors[0]:
            return f"message lacks {probe.needle!r}: {errors[0]}"
    elif probe.expect == "interrupt":
        inter = [line for line in lines if line.startswith("interrupted:")]
        if code != 130 or len(inter) != 1 or probe.needle not in inter[0]:
            return f"exit {code}: {err.strip()[-300:]}"
    else:
        if code != 0:
            return f"exit {code}: {err.strip()[-300:]}"
        if probe.needle and probe.needle not in err:
            return f"stderr lacks {probe.needle!r}"
    return probe.after(work) if probe.after else None


def main() -> int:
    global WORLD
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spawn", action="store_true", help="a fresh python process per probe (slow)")
    parser.add_argument("-k", default="", help="only probes whose name contains this")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    root = Path(tempfile.mkdtemp(prefix="rai-multi-probes-"))
    os.environ["RAI_MULTI_MODEL_CACHE"] = str(root / "model-cache")
    os.environ.pop("RAI_MULTI_CACHE", None)
    started = time.perf_counter()
    WORLD = World(root / "world")
    if not args.spawn:
        import rai_multi.cli.main  # noqa: F401 - imported once, inherited by every forked probe
    passed = failed = skipped = 0
    mounts: list[Path] = []
    try:
        for i, probe in enumerate(probes()):
            if args.k and args.k not in probe.name:
                continue
            work = root / f"p{i:02d}"
            work.mkdir()
            try:
                argv = [str(a) for a in probe.setup(work)]
            except SkipProbe as exc:
                skipped += 1
                print(f"SKIP  {probe.name}: {exc}")
                continue
            mounts += [m for m in (work / "disk", work / "ro") if m.exists()]
            umask = 0o022 if "umask" in probe.name else None
            code, err = (run_spawned if args.spawn else run_forked)(argv, probe.hook, umask)
            reason = judge(probe, code, err, work)
            if reason is None:
                passed += 1
                print(f"PASS  {probe.name}")
            else:
                failed += 1
                print(f"FAIL  {probe.name}: {reason}")
    finally:
        for mount in mounts:
            subprocess.run(["umount", str(mount)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    mode = "spawned processes" if args.spawn else "forked processes"
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else "")
          + f" ({mode}, {time.perf_counter() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
