#!/usr/bin/env bash
# The per-layer scale factor / offset table of FCN-8s (the layout of Table 2 of NVIDIA's
# DIGITS 5 article), then the crop offsets recomputed from scratch: strip them from a copy
# of the net, let `fcnkit offsets --fix` write them back (5, 9, 31), and check the result.
#
# Usage: examples/offsets_report.sh [NET.prototxt] [OUTDIR]   (default: the bundled FCN-8s)
set -euo pipefail
cd "$(dirname "$0")/.."
FCNKIT=${FCNKIT:-.venv/bin/fcnkit}
NET=${1:-fcnkit/data/voc-fcn8s-deploy.prototxt}
OUT=${2:-$(mktemp -d)}
mkdir -p "$OUT"

"$FCNKIT" offsets "$NET" --format html -o "$OUT/offsets.html"
"$FCNKIT" offsets "$NET" --format json -o "$OUT/offsets.json"

# a copy without the offsets (Caffe then crops at 0, which misaligns every skip)
grep -v 'offset:' "$NET" > "$OUT/stripped.prototxt"
if "$FCNKIT" offsets "$OUT/stripped.prototxt" --check > /dev/null; then
    echo "expected the stripped copy to fail the check" >&2
    exit 1
fi
"$FCNKIT" offsets "$OUT/stripped.prototxt" --fix -o "$OUT/fixed.prototxt"
"$FCNKIT" offsets "$OUT/fixed.prototxt" --check > /dev/null
echo "fixed offsets pass the check; reports in $OUT"
