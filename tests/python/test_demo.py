"""scripts/demo.sh, the README's main job, on a shortened budget: the whole pipeline runs (data, teacher and step-0
evaluation, plain uptraining, the attention -> distill recipe, export, generation) and prints its table; the
distilled RNN ends far below the converted model at step 0 (a pipeline check, not a timing or a target)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_produces_its_table(supra_bin, stories_bin, tmp_path):
    env = dict(os.environ, SUPRA_BIN=supra_bin, SUPRA_DEMO_DIR=str(tmp_path / "demo"), SUPRA_DEMO_STEPS="24", SUPRA_DEMO_DOCS="256")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh"), str(stories_bin)], env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["model"]: r for r in json.loads((tmp_path / "demo" / "results.json").read_text())}
    assert list(rows) == ["teacher", "converted", "uptrained", "distilled"]
    assert rows["distilled"]["ppl"] < rows["converted"]["ppl"] / 10
    assert rows["uptrained"]["train_tokens"] == rows["distilled"]["train_tokens"] == 24 * 16 * 256  # same budget
    assert "distilled / teacher perplexity" in proc.stdout
    assert (tmp_path / "demo" / "export" / "config.json").exists()
