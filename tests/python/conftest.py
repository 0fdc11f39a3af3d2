"""Shared fixtures for the Python cross-checks of the `supra` binary against Hugging Face transformers.

Environment:
    SUPRA_BIN         path of the built `supra` executable; tests that run it are skipped when unset or missing.
    SUPRA_SHARED_DIR  the shared data folder (default: <repo>/../shared); stories260K tests are skipped without
                      models/stories260K/stories260K.bin in it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
for _sub in ("tools", "reference", "shipped"):  # scripts/ by role: shipped code, test references, tools
    if str(SCRIPTS / _sub) not in sys.path:
        sys.path.insert(0, str(SCRIPTS / _sub))

import hf_logits as _hf_logits  # noqa: E402
import make_tiny_hf  # noqa: E402


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - transformers missing is reported by the tests themselves
        pass


_quiet_transformers()
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


# --------------------------------------------------------------------------------------------------------------
# The binary


@pytest.fixture(scope="session")
def supra_bin() -> str:
    path = os.environ.get("SUPRA_BIN")
    if not path:
        pytest.skip("SUPRA_BIN is not set: point it at the built supra binary (e.g. SUPRA_BIN=build/supra)")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip(f"SUPRA_BIN={path} is not an executable file: build supra first (cmake --build build)")
    return os.path.abspath(path)


@pytest.fixture(scope="session")
def run_supra(supra_bin: str) -> Callable[..., subprocess.CompletedProcess]:
    """run_supra("logits", "--model", d, ...) -> CompletedProcess (text, captured, 120 s timeout)."""

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [supra_bin, *map(str, args)], capture_output=True, text=True, timeout=120
        )

    return run


@pytest.fixture(scope="session")
def supra_logits(run_supra, tmp_path_factory) -> Callable[..., torch.Tensor]:
    """supra_logits(model_path, tokens, dtype="f32") -> logits [T, vocab] float32, via `supra logits`."""
    from safetensors import safe_open

    out_dir = tmp_path_factory.mktemp("supra_logits")
    counter = [0]

    def run(model: str | Path, tokens: list[int], dtype: str = "f32") -> torch.Tensor:
        counter[0] += 1
        out = out_dir / f"logits_{counter[0]}.safetensors"
        args = ["logits", "--model", str(model), "--tokens", ",".join(map(str, tokens)), "--out", str(out)]
        if dtype != "f32":
            args += ["--dtype", dtype]
        proc = run_supra(*args)
        assert proc.returncode == 0, f"supra {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
        with safe_open(str(out), framework="pt") as f:
            keys = list(f.keys())
            assert keys == ["logits"], f"expected exactly one tensor 'logits' in {out}, got {keys}"
            logits = f.get_tensor("logits")
        assert logits.dtype == torch.float32, f"logits stored as {logits.dtype}, expected float32"
        assert logits.dim() == 2 and logits.shape[0] == len(tokens), f"bad logits shape {tuple(logits.shape)}"
        return logits

    return run


# --------------------------------------------------------------------------------------------------------------
# Models


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Callable[[str], Path]:
    """tiny_model(variant) -> folder of the tiny HF checkpoint (seed 0), created once per session."""
    root = tmp_path_factory.mktemp("tiny_hf")
    cache: dict[str, Path] = {}

    def get(variant: str) -> Path:
        if variant not in cache:
            cache[variant] = Path(make_tiny_hf.make_model(variant, str(root / variant), seed=0))
        return cache[variant]

    return get


@pytest.fixture(scope="session")
def hf_reference() -> Callable[..., torch.Tensor]:
    """hf_reference(model_dir, tokens, dtype="f32") -> HF logits [T, vocab] float32 (models cached)."""
    models: dict[tuple[str, str], object] = {}

    def get(model_dir: str | Path, tokens: list[int], dtype: str = "f32") -> torch.Tensor:
        key = (str(model_dir), dtype)
        if key not in models:
            models[key] = _hf_logits.load_model(str(model_dir), dtype)
        return _hf_logits.logits_for(models[key], tokens)

    return get


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return Path(os.environ.get("SUPRA_SHARED_DIR", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def stories_bin(shared_dir: Path) -> Path:
    path = shared_dir / "models" / "stories260K" / "stories260K.bin"
    if not path.is_file():
        pytest.skip(f"stories260K not found at {path} (set SUPRA_SHARED_DIR to the shared folder)")
    return path


@pytest.fixture(scope="session")
def stories_hf(stories_bin: Path, tmp_path_factory) -> Path:
    """stories260K converted to an HF folder with scripts/tools/llama2c_to_hf.py."""
    import llama2c_to_hf

    out = tmp_path_factory.mktemp("stories260K_hf")
    llama2c_to_hf.convert(str(stories_bin), str(out))
    return out

