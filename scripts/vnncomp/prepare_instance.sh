#!/usr/bin/env bash
# VNN-COMP interface: prepare_instance.sh v1 CATEGORY ONNX VNNLIB
# Kills leftover verinet processes and checks that the instance files exist.
set -u
if [ "$#" -ne 4 ] || [ "$1" != "v1" ]; then
  echo "usage: $0 v1 CATEGORY ONNX VNNLIB" >&2
  exit 1
fi
pkill -f "verinet.cli verify" 2>/dev/null || true
for f in "$3" "$4"; do
  if [ ! -f "$f" ]; then echo "missing file: $f" >&2; exit 1; fi
done
exit 0
