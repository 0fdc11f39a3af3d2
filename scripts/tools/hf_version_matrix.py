#!/usr/bin/env python3
"""The exported SUPRA folder (`supra export`) under each transformers version we claim, in throwaway virtual
environments: 4.57.6 (latest 4.x), 5.0.0 and the newest 5.x on the package index.

  python3 scripts/tools/hf_version_matrix.py                         # builds a tiny export with $SUPRA_BIN
  python3 scripts/tools/hf_version_matrix.py --export DIR            # checks an existing export
  python3 scripts/tools/hf_version_matrix.py --versions 4.57.6,latest --shipped-code

Each version gets a venv (no system site packages) under ${SUPRA_VENV_CACHE:-~/.cache/supra/venvs}, made once with
`pip install torch==2.13.0 transformers==X safetensors` and reused while its marker file says the install completed.
A version that cannot be installed (or resolved) is a failure row, never a skip.

The reference is computed once in this (the main) environment: fp32 logits and greedy ids from `supra logits`
(argmax of full-sequence logits, token by token) when the supra binary is found ($SUPRA_BIN, --supra or
build/supra), else from the main environment's transformers without cache (the table says which). In each venv the
worker (this file, --worker) then checks:
  tokenizer    AutoTokenizer.from_pretrained(dir, trust_remote_code=False): a standard transformers class, no
               prompt, no remote code run, the ids of tokenizer.json; and whether AutoTokenizer.from_pretrained(dir)
               (no trust_remote_code argument) prompts (reported: transformers 5 reads config.json's auto_map
               before the tokenizer files, so it prompts for any remote-code model)
  weights      AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True): every tensor equal to the
               safetensors (no init after load), nothing missing
  logits       use_cache=False and cached prefill vs the reference, relative error <= 1e-5
  decode       prefill + one-token steps == full forward, the cache passed as past_key_values=, cache= and
               cache_params= (the names transformers versions use)
  greedy       generate() ids == reference; tokens fed per decode step == 1 (a forward pre-hook counts them)
  mask         the same with an explicit attention_mask
  padded       a left-padded batch == each prompt alone, 1 token per step
  no-cache     generate(use_cache=False) ids == cached ids (each step re-reads the sequence, as for any model)
  continue     generate(sequences, past_key_values=<cache returned by a first generate>) == one generate, 1 token
               per step
  beam         num_beams=3 with the cache == without (the cache is reordered with the beams)
  pipeline     pipeline("text-generation") ids == generate(), 1 token per step
Exit status 0 when every check of every version passes, else 1 (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "scripts" / "shipped" / "hf_supra"
TORCH_VERSION = "2.13.0"
DEFAULT_VERSIONS = "4.57.6,5.0.0,latest"
TOL = 1e-5
NEW_TOKENS = 10
PROMPT_LEN = 10
TOKENIZER_TEXT = "w5 w17 w42 w9 w100"
CHECKS = ["tokenizer", "weights", "logits", "decode", "greedy", "mask", "padded", "no-cache", "continue", "beam",
          "pipeline"]


# ==============================================================================================================
# The worker: runs inside a venv (imports only what the venv has: torch, transformers, safetensors, tokenizers)


class _Fed:
    """Counts the tokens each forward of `model` is fed (input_ids or inputs_embeds length)."""

    def __init__(self, model):
        self.lengths: list[int] = []
        self.handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        x = kwargs.get("input_ids")
        if x is None and args:
            x = args[0]
        if x is None:
            x = kwargs.get("inputs_embeds")
        self.lengths.append(int(x.shape[1]))

    def take(self) -> list[int]:
        out, self.lengths = self.lengths, []
        return out

    def close(self):
        self.handle.remove()


def _rel_err(a, b) -> float:
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max()).item()


def _steps_ok(lengths: list[int], prompt_len: int, steps: int) -> bool:
    return lengths == [prompt_len] + [1] * (steps - 1)


def _check_tokenizer(export: Path) -> tuple[bool, str]:
    import builtins

    from transformers import AutoTokenizer

    if not (export / "tokenizer.json").is_file() and not (export / "tokenizer.model").is_file():
        return False, "the export has no tokenizer files"
    prompts: list[str] = []
    real_input = builtins.input

    def fake_input(text=""):
        prompts.append(text)
        raise EOFError("no interactive input in the version matrix")

    def remote_modules():
        return {m for m in sys.modules if m.startswith("transformers_modules")}

    builtins.input = fake_input
    try:
        before = remote_modules()
        tok = AutoTokenizer.from_pretrained(str(export), trust_remote_code=False)
        ran_remote = remote_modules() - before
        prompted_explicit = len(prompts)
        tok2 = AutoTokenizer.from_pretrained(str(export))
        prompted_default = len(prompts) - prompted_explicit
    finally:
        builtins.input = real_input
    cls = type(tok)
    problems = []
    if not cls.__module__.startswith("transformers."):
        problems.append(f"class {cls.__module__}.{cls.__name__} is not a transformers class")
    if ran_remote:
        problems.append(f"remote code ran: {sorted(ran_remote)}")
    if prompted_explicit:
        problems.append("prompted although trust_remote_code=False")
    if type(tok2) is not cls:
        problems.append(f"without trust_remote_code: {type(tok2).__name__}")
    if (export / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        want = Tokenizer.from_file(str(export / "tokenizer.json")).encode(TOKENIZER_TEXT, add_special_tokens=False).ids
        got = tok(TOKENIZER_TEXT, add_special_tokens=False)["input_ids"]
        if got != want:
            problems.append(f"ids {got} != tokenizer.json's {want}")
    detail = f"{cls.__name__}; AutoTokenizer(dir) " + ("prompts (config.json auto_map)" if prompted_default
                                                        else "does not prompt")
    return not problems, "; ".join(problems + [detail])


def run_checks(export: str | Path, ref: dict, tokenizer_check: bool = True) -> list[dict]:
    """The checks of one transformers version against `ref` ({prompt, prompt_b, logits, greedy, greedy_b});
    returns [{name, ok, detail}] in CHECKS order (a check that raised fails with the exception)."""
    import torch

    export = Path(export)
    results: dict[str, dict] = {}

    def record(name, fn):
        try:
            ok, detail = fn()
        except Exception as e:  # a crash is a failed check, with its reason
            ok, detail = False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        results[name] = {"name": name, "ok": bool(ok), "detail": detail}

    if tokenizer_check:
        record("tokenizer", lambda: _check_tokenizer(export))  # first: before any remote code is imported

    import transformers
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    state: dict = {}

    def load():
        major_minor = tuple(int(x) for x in transformers.__version__.split(".")[:2])
        dtype_kw = "dtype" if major_minor >= (4, 56) else "torch_dtype"
        model = AutoModelForCausalLM.from_pretrained(str(export), trust_remote_code=True,
                                                     **{dtype_kw: torch.float32}).eval()
        state["model"] = model
        stored = {}
        for f in sorted(export.glob("*.safetensors")):
            stored.update(load_file(str(f)))
        have = model.state_dict()
        missing = sorted(set(have) - set(stored))
        unexpected = sorted(set(stored) - set(have))
        differ = sorted(k for k in set(have) & set(stored) if not torch.equal(have[k], stored[k]))
        ok = not missing and not unexpected and not differ
        return ok, (f"{len(have)} tensors equal" if ok else
                    f"missing {missing[:3]}, unexpected {unexpected[:3]}, differ {differ[:3]}")

    record("weights", load)
    model = state.get("model")
    if model is None:
        for name in CHECKS:
            results.setdefault(name, {"name": name, "ok": False, "detail": "model did not load"})
        return [results[n] for n in CHECKS if n in results]

    prompt, prompt_b = ref["prompt"], ref["prompt_b"]
    ids = torch.tensor([prompt])
    want = torch.tensor(ref["logits"], dtype=torch.float32)
    fed = _Fed(model)

    def logits():
        with torch.no_grad():
            full = model(ids, use_cache=False).logits[0]
            cached = model(ids, use_cache=True).logits[0]
        e1, e2 = _rel_err(full, want), _rel_err(cached, want)
        return max(e1, e2) <= TOL, f"rel err {e1:.1e} (no cache), {e2:.1e} (cached prefill)"

    record("logits", logits)

    def decode():
        with torch.no_grad():
            full = model(ids, use_cache=False).logits[0]
            split = PROMPT_LEN // 2
            names = ["past_key_values", "cache", "cache_params"]
            errs = []
            for name in names:
                out = model(ids[:, :split], use_cache=True)
                cache, steps = _out_cache(out), [out.logits[0]]
                for t in range(split, PROMPT_LEN):
                    out = model(ids[:, t : t + 1], use_cache=True, **{name: cache})
                    cache = _out_cache(out)
                    steps.append(out.logits[0])
                errs.append(_rel_err(torch.cat(steps), full))
                if cache.get_seq_length() != PROMPT_LEN:
                    return False, f"cache length {cache.get_seq_length()} after {PROMPT_LEN} tokens ({name}=)"
        fed.take()
        return max(errs) <= TOL, "rel err " + ", ".join(f"{e:.1e} ({n}=)" for e, n in zip(errs, names))

    record("decode", decode)

    gen = dict(max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)

    def greedy():
        fed.take()
        out = model.generate(ids, **gen)[0].tolist()
        lengths = fed.take()
        ok = out == ref["greedy"] and _steps_ok(lengths, PROMPT_LEN, NEW_TOKENS)
        state["greedy"] = out
        return ok, f"fed per forward {lengths}" + ("" if out == ref["greedy"] else f"; ids {out} != {ref['greedy']}")

    record("greedy", greedy)

    def with_mask():
        fed.take()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), **gen)[0].tolist()
        lengths = fed.take()
        ok = out == ref["greedy"] and _steps_ok(lengths, PROMPT_LEN, NEW_TOKENS)
        return ok, f"fed per forward {lengths}" + ("" if out == ref["greedy"] else f"; ids {out}")

    record("mask", with_mask)

    def padded():
        pad = len(prompt_b) - len(prompt)
        batch = torch.tensor([[0] * pad + prompt, prompt_b])
        mask = torch.tensor([[0] * pad + [1] * len(prompt), [1] * len(prompt_b)])
        fed.take()
        out = model.generate(batch, attention_mask=mask, **gen)
        lengths = fed.take()
        a, b = out[0, pad:].tolist(), out[1].tolist()
        ok = a == ref["greedy"] and b == ref["greedy_b"] and _steps_ok(lengths, len(prompt_b), NEW_TOKENS)
        return ok, f"fed per forward {lengths}" + ("" if a == ref["greedy"] else "; padded row differs") + (
            "" if b == ref["greedy_b"] else "; unpadded row differs")

    record("padded", padded)

    def no_cache():
        fed.take()
        out = model.generate(ids, use_cache=False, **gen)[0].tolist()
        lengths = fed.take()
        want_lengths = list(range(PROMPT_LEN, PROMPT_LEN + NEW_TOKENS))
        ok = out == ref["greedy"] and lengths == want_lengths
        return ok, f"fed per forward {lengths}" + ("" if out == ref["greedy"] else f"; ids {out}")

    record("no-cache", no_cache)

    def continue_():
        half = NEW_TOKENS // 2
        first = model.generate(ids, return_dict_in_generate=True, **{**gen, "max_new_tokens": half})
        fed.take()
        name = "cache" if "cache" in first else "past_key_values"  # the version's own name for it
        out = model.generate(first.sequences, **{name: first[name]},
                             **{**gen, "max_new_tokens": NEW_TOKENS - half})[0].tolist()
        lengths = fed.take()
        ok = out == ref["greedy"] and lengths == [1] * (NEW_TOKENS - half)
        return ok, f"fed per forward {lengths}" + ("" if out == ref["greedy"] else f"; ids {out}")

    record("continue", continue_)

    def beam():
        batch = torch.tensor([prompt, prompt_b[: len(prompt)]])
        fed.take()
        with_cache = model.generate(batch, num_beams=3, num_return_sequences=2, **gen)
        lengths = fed.take()
        without = model.generate(batch, num_beams=3, num_return_sequences=2, use_cache=False, **gen)
        fed.take()
        ok = torch.equal(with_cache, without) and lengths[1:] == [1] * (len(lengths) - 1)
        return ok, f"fed per forward {lengths}" + ("" if torch.equal(with_cache, without) else "; ids differ")

    record("beam", beam)

    def pipe():
        from transformers import AutoTokenizer, pipeline

        tok = AutoTokenizer.from_pretrained(str(export), trust_remote_code=False)
        p = pipeline("text-generation", model=model, tokenizer=tok)
        enc = tok(TOKENIZER_TEXT, return_tensors="pt")
        n = enc["input_ids"].shape[1]
        fed.take()
        res = p(TOKENIZER_TEXT, max_new_tokens=NEW_TOKENS, do_sample=False, return_tensors=True)
        lengths = fed.take()
        got = list(res[0]["generated_token_ids"])
        want_ids = model.generate(enc["input_ids"], attention_mask=enc["attention_mask"], **gen)[0].tolist()
        fed.take()
        ok = got == want_ids and _steps_ok(lengths, n, NEW_TOKENS)
        return ok, f"fed per forward {lengths}" + ("" if got == want_ids else f"; ids {got} != {want_ids}")

    if (export / "tokenizer.json").is_file() or (export / "tokenizer.model").is_file():
        record("pipeline", pipe)
    else:
        results["pipeline"] = {"name": "pipeline", "ok": False, "detail": "the export has no tokenizer"}
    fed.close()
    return [results[n] for n in CHECKS if n in results]


def _out_cache(out):
    """The cache of a model or generate() output under the installed version's name (no deprecation warning)."""
    for name in ("cache", "past_key_values"):
        if name in out:
            return out[name]
    raise KeyError("no cache in the output")


def worker_main(args) -> int:
    import torch
    import transformers

    torch.set_num_threads(1)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    except Exception:
        pass
    ref = json.loads(Path(args.ref).read_text())
    results = run_checks(args.export, ref)
    Path(args.out).write_text(json.dumps({"transformers": transformers.__version__, "torch": torch.__version__,
                                          "python": sys.version.split()[0], "checks": results}, indent=1))
    return 0


# ==============================================================================================================
# The driver: main environment


def _run(cmd, log: Path | None = None, timeout: int = 1800, env=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env=env)
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ {' '.join(map(str, cmd))}\n{proc.stdout}{proc.stderr}\n[exit {proc.returncode}]\n")
    return proc


def _last_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("WARNING: Location")]
    for line in reversed(lines):
        if line.startswith("ERROR") or "Error" in line:
            return line[:200]
    return lines[-1][:200] if lines else "no output"


def resolve_versions(spec: str) -> list[tuple[str, str | None, str]]:
    """[(label, version or None, why not)] for a comma list of versions and 'latest' (the newest 5.x)."""
    out = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        if item != "latest":
            out.append((item, item, ""))
            continue
        proc = _run([sys.executable, "-m", "pip", "index", "versions", "transformers"], timeout=300)
        m = re.search(r"Available versions:\s*(.+)", proc.stdout)
        found = []
        if m:
            for v in m.group(1).split(","):
                v = v.strip()
                if re.fullmatch(r"5\.\d+\.\d+", v):
                    found.append(tuple(int(x) for x in v.split(".")))
        if found:
            newest = ".".join(map(str, max(found)))
            out.append((f"{newest} (newest 5.x)", newest, ""))
        else:
            why = "cannot list transformers versions: " + _last_error(proc.stdout + proc.stderr)
            out.append(("newest 5.x", None, why))
    return out


def ensure_venv(cache: Path, version: str, log: Path) -> tuple[Path | None, str]:
    """(python of the venv, '') or (None, why it could not be installed). Reused while its marker is complete."""
    py_tag = f"py{sys.version_info.major}.{sys.version_info.minor}"
    root = cache / f"transformers-{version}-torch-{TORCH_VERSION}-{py_tag}"
    python = root / "bin" / "python"
    marker = root / "supra-venv.json"
    want = {"transformers": version, "torch": TORCH_VERSION}
    if marker.is_file() and python.exists():
        try:
            if json.loads(marker.read_text()).get("requested") == want:
                return python, ""
        except ValueError:
            pass
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    proc = _run([sys.executable, "-m", "venv", root], log)  # no --system-site-packages: only what pip installs
    if proc.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        return None, "venv creation failed: " + _last_error(proc.stdout + proc.stderr)
    proc = _run([python, "-m", "pip", "install", "--disable-pip-version-check", f"torch=={TORCH_VERSION}",
                 f"transformers=={version}", "safetensors"], log)
    if proc.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        return None, "pip install failed: " + _last_error(proc.stdout + proc.stderr)
    proc = _run([python, "-c", "import torch, transformers, safetensors, tokenizers; "
                 "print(transformers.__version__, torch.__version__)"], log)
    got = proc.stdout.split()
    if proc.returncode != 0 or len(got) != 2 or got[0] != version:
        shutil.rmtree(root, ignore_errors=True)
        why = _last_error(proc.stdout + proc.stderr)
        return None, f"installed but not importable as transformers {version}: {why}"
    marker.write_text(json.dumps({"requested": want, "installed": {"transformers": got[0], "torch": got[1]},
                                  "created": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    return python, ""


def find_supra(given: str | None) -> str | None:
    for cand in (given, os.environ.get("SUPRA_BIN"), str(REPO / "build" / "supra")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    return None


def write_tokenizer(folder: Path, vocab_size: int) -> None:
    """A standard tokenizer (tokenizer.json, WordLevel over w3..w{vocab-1}) in `folder`, so the export copies it."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, vocab_size)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": "<unk>", "model_max_length": 256}, indent=1) + "\n")


def build_export(supra: str, work: Path) -> Path:
    sys.path.insert(0, str(REPO / "scripts" / "tools"))
    import make_tiny_hf

    base = Path(make_tiny_hf.make_model("llama_gqa_untied", str(work / "base"), seed=0))
    write_tokenizer(base, json.loads((base / "config.json").read_text())["vocab_size"])
    for cmd in (["convert", "--model", base, "--out", work / "conv", "--chunk-size", "4"],
                ["export", "--checkpoint", work / "conv", "--out", work / "export"]):
        proc = _run([supra, *cmd], timeout=300)
        if proc.returncode != 0:
            raise SystemExit(f"error: supra {cmd[0]} failed: {proc.stderr.strip()}")
    return work / "export"


def supra_logits(supra: str, model: Path, tokens: list[int], work: Path):
    import torch
    from safetensors.torch import load_file

    out = work / f"logits_{len(tokens)}_{abs(hash(tuple(tokens)))}.safetensors"
    proc = _run([supra, "logits", "--model", model, "--tokens", ",".join(map(str, tokens)), "--out", out], timeout=300)
    if proc.returncode != 0:
        raise SystemExit(f"error: supra logits failed: {proc.stderr.strip()}")
    return load_file(str(out))["logits"].to(torch.float32)


def make_reference(export: Path, supra: str | None, work: Path) -> tuple[dict, str]:
    import torch

    vocab = json.loads((export / "config.json").read_text())["vocab_size"]
    g = torch.Generator().manual_seed(1234)
    prompt = [1] + torch.randint(3, vocab, (PROMPT_LEN - 1,), generator=g).tolist()
    prompt_b = [1] + torch.randint(3, vocab, (PROMPT_LEN + 3,), generator=g).tolist()
    if supra:
        def logits_of(tokens):
            return supra_logits(supra, export, tokens, work)
        source = f"supra logits ({supra})"
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(export), trust_remote_code=True, dtype=torch.float32).eval()

        def logits_of(tokens):
            with torch.no_grad():
                return model(torch.tensor([tokens]), use_cache=False).logits[0].float()
        import transformers

        source = f"main environment, transformers {transformers.__version__}, use_cache=False (no supra binary)"

    def greedy(p):
        seq = list(p)
        for _ in range(NEW_TOKENS):
            seq.append(int(logits_of(seq)[-1].argmax()))
        return seq

    ref = {"prompt": prompt, "prompt_b": prompt_b, "logits": logits_of(prompt).tolist(), "greedy": greedy(prompt),
           "greedy_b": greedy(prompt_b)}
    return ref, source


def print_table(rows: list[dict], reference: str) -> None:
    labels = [r["label"] for r in rows]
    width = max(12, *(len(lb) for lb in labels))
    print(f"\nreference: {reference}; tolerance {TOL:g}; {NEW_TOKENS} new tokens\n")
    print(f"| {'check':<10} | " + " | ".join(f"{lb:<{width}}" for lb in labels) + " |")
    print(f"|{'-' * 12}|" + "|".join("-" * (width + 2) for _ in labels) + "|")
    install = [("ok" if r["python"] else "FAIL") for r in rows]
    print(f"| {'install':<10} | " + " | ".join(f"{v:<{width}}" for v in install) + " |")
    for name in CHECKS:
        cells = []
        for r in rows:
            c = r["checks"].get(name)
            cells.append("-" if c is None else ("pass" if c["ok"] else "FAIL"))
        print(f"| {name:<10} | " + " | ".join(f"{v:<{width}}" for v in cells) + " |")
    overall = ["PASS" if r["ok"] else "FAIL" for r in rows]
    print(f"| {'result':<10} | " + " | ".join(f"{v:<{width}}" for v in overall) + " |")
    print()
    for r in rows:
        if not r["python"]:
            print(f"FAIL {r['label']}: cannot install: {r['why']}")
            continue
        if r.get("why"):
            print(f"FAIL {r['label']}: {r['why']}")
        for name in CHECKS:
            c = r["checks"].get(name)
            if c is not None:
                print(f"{'ok  ' if c['ok'] else 'FAIL'} {r['label']} {name}: {c['detail']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--versions", default=DEFAULT_VERSIONS, help="comma list; 'latest' = newest 5.x on the index")
    ap.add_argument("--export", help="an exported folder (default: build a tiny one with the supra binary)")
    ap.add_argument("--supra", help="the supra binary (default: $SUPRA_BIN, then build/supra)")
    ap.add_argument("--shipped-code", action="store_true",
                    help="check a copy of the export with scripts/shipped/hf_supra/*.py in place of its modeling files")
    ap.add_argument("--venv-cache", default=os.environ.get("SUPRA_VENV_CACHE",
                                                           str(Path.home() / ".cache" / "supra" / "venvs")))
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ref", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args)

    supra = find_supra(args.supra)
    cache = Path(args.venv_cache).expanduser()
    with tempfile.TemporaryDirectory(prefix="supra-hf-matrix-") as tmp:
        work = Path(tmp)
        if args.export:
            export = Path(args.export).resolve()
            if not (export / "config.json").is_file():
                print(f"error: {export}: not an exported folder (no config.json)", file=sys.stderr)
                return 2
        elif supra:
            export = build_export(supra, work)
        else:
            print("error: no supra binary (set SUPRA_BIN or --supra) and no --export folder", file=sys.stderr)
            return 2
        if args.shipped_code:
            copy = work / "export-shipped-code"
            shutil.copytree(export, copy)
            for f in SHIPPED.glob("*.py"):
                shutil.copy(f, copy / f.name)
            export = copy
        else:
            stale = [f.name for f in SHIPPED.glob("*.py")
                     if not (export / f.name).is_file() or (export / f.name).read_bytes() != f.read_bytes()]
            if stale:
                print(f"note: {', '.join(stale)} in the export differ from scripts/shipped/hf_supra "
                      "(pass --shipped-code to check the repository's version)")
        print(f"export: {export}")
        ref, source = make_reference(export, supra, work)
        ref_file = work / "reference.json"
        ref_file.write_text(json.dumps(ref))

        rows = []
        for label, version, why in resolve_versions(args.versions):
            row = {"label": label, "version": version, "python": None, "why": why, "checks": {}, "ok": False}
            rows.append(row)
            if version is None:
                print(f"{label}: {why}")
                continue
            log = cache / f"transformers-{version}.log"
            cache.mkdir(parents=True, exist_ok=True)
            t0 = time.time()
            python, why = ensure_venv(cache, version, log)
            row["python"], row["why"] = (str(python) if python else None), why
            if python is None:
                print(f"{label}: cannot install ({why}); log: {log}")
                continue
            print(f"{label}: venv ready in {time.time() - t0:.0f} s ({python.parent.parent})")
            out = work / f"result-{version}.json"
            env = dict(os.environ, PYTHONNOUSERSITE="1", TRANSFORMERS_VERBOSITY="error",
                       HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(work / f"hf_modules-{version}"))
            env.pop("PYTHONPATH", None)
            try:
                proc = _run([python, Path(__file__).resolve(), "--worker", "--export", export, "--ref", ref_file,
                             "--out", out], log, timeout=900, env=env)
            except subprocess.TimeoutExpired:
                row["why"] = "the checks timed out (900 s)"
                continue
            if proc.returncode != 0 or not out.is_file():
                row["why"] = "the worker failed: " + _last_error(proc.stderr + proc.stdout)
                continue
            result = json.loads(out.read_text())
            row["installed"] = result["transformers"]
            row["checks"] = {c["name"]: c for c in result["checks"]}
            row["ok"] = all(c["ok"] for c in result["checks"]) and set(row["checks"]) == set(CHECKS)
        print_table(rows, source)
        if args.json:
            Path(args.json).write_text(json.dumps({"reference": source, "rows": rows}, indent=1))
    return 0 if rows and all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
