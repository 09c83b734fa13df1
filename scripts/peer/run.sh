#!/usr/bin/env bash
# khulasa against a PyTorch peer, measured in the same run on this machine:
# the encoder on the same texts and batch shapes, and the pipeline on the
# same generated corpus. Prints both sides and the ratios.
#
#   scripts/peer/run.sh [ARTICLES]      (default 1000)
#
# The peer (torch, transformers) goes into a throwaway virtualenv,
# KHULASA_PEER_VENV (default target/peer-venv, several GB), installed with
# pip from the package registry. Nothing of it is committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-1000}"
venv="${KHULASA_PEER_VENV:-target/peer-venv}"
threads="${KHULASA_PEER_THREADS:-$(nproc)}"
out=target/peer
mkdir -p "$out"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch, transformers' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet torch==2.15.0 transformers==5.23.0 numpy
fi

cargo run --release --quiet -- model fetch
echo "== khulasa encoder"
cargo bench --quiet --bench encoder -- --write-texts "$out/encoder-texts.json" | tee "$out/ours-encoder.txt"
echo "== khulasa pipeline, $n articles"
cargo bench --quiet --bench archive -- "$n" local | tee "$out/ours-pipeline.txt"
echo "== PyTorch peer"
"$venv/bin/python" scripts/peer/peer.py --model models/multilingual-e5-small \
  --texts "$out/encoder-texts.json" --corpus "target/bench-corpus-$n.jsonl" \
  --threads "$threads" 2>/dev/null | tee "$out/peer.json"

python3 - "$out" <<'EOF'
import json, re, sys
out = sys.argv[1]
peer = json.loads(open(f"{out}/peer.json").read().strip().splitlines()[-1])
ours = {}
for line in open(f"{out}/ours-encoder.txt"):
    m = re.match(r"\s*(\d+)×(\d+)\s.*?([\d.]+) tokens/s", line)
    if m:
        ours[f"{m[1]}x{m[2]}"] = float(m[3])
print(f"\nPyTorch {peer['torch']}, {peer['threads']} threads")
print(f"{'encoder':<10} {'khulasa':>10} {'PyTorch':>10} {'ratio':>7}   (tokens/s)")
for e in peer["encoder"]:
    k = ours[e["shape"]]
    print(f"{e['shape']:<10} {k:>10.0f} {e['tokens_per_s']:>10.0f} {k / e['tokens_per_s']:>6.2f}x")
line = open(f"{out}/ours-pipeline.txt").read()
m = re.search(r"\(([\d.]+) articles/s\)", line)
k, p = float(m[1]), peer["pipeline"]["articles_per_s"]
print(f"{'pipeline':<10} {k:>10.2f} {p:>10.2f} {k / p:>6.2f}x   (articles/s, {peer['pipeline']['articles']} articles)")
EOF
