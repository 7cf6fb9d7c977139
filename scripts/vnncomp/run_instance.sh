#!/usr/bin/env bash
# VNN-COMP interface: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULT_FILE TIMEOUT
# Writes sat/unsat/timeout/unknown/error (and the witness after sat) to RESULT_FILE.
set -u
if [ "$#" -ne 6 ] || [ "$1" != "v1" ]; then
  echo "usage: $0 v1 CATEGORY ONNX VNNLIB RESULT_FILE TIMEOUT" >&2
  exit 1
fi
PY="${VERINET_PYTHON:-python3}"
"$PY" -m verinet.cli verify "$3" "$4" --out "$5" --timeout "$6"
# verinet always writes a result file; exit 0 so the harness reads it.
[ -f "$5" ] || echo "error" > "$5"
exit 0
