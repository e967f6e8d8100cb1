#!/usr/bin/env bash
# Runs facegate and the reference pipeline (face_recognition 1.3.0 = dlib HOG + 5-point predictor +
# the same dlib ResNet) on the same photos in the same run: verification accuracy of both and the
# reference's time per photo. The reference lives in a private venv (~/.cache/facegate/ref-venv).
#
# Usage: scripts/compare_reference.sh [DATASET_DIR [PAIRS_CSV]]
#   default: ../shared/faces/deepface_celebs with its pairs.csv (development photos, not shipped)
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-../shared/faces/deepface_celebs}"
pairs="${2:-$root/pairs.csv}"
. scripts/ref_venv.sh
out="$(mktemp -d)"
cargo build --release --quiet -p facegate-enroll
echo "== facegate embed (int8, the default)"
time target/release/facegate embed "$root" > "$out/facegate.jsonl" || true
echo "== facegate embed (f32 reference network)"
target/release/facegate --models models/manifest.toml --embedder dlib_resnet_v1_f32 embed "$root" > "$out/facegate_f32.jsonl" || true
echo "== face_recognition (dlib) reference"
"$ref_venv/bin/python" scripts/dlib_reference.py "$root" > "$out/reference.jsonl"
pairs_arg=()
[ -f "$pairs" ] && pairs_arg=(--pairs "$pairs")
for which in facegate facegate_f32 reference; do
    echo "== $which"
    python3 scripts/eval_verification.py "$out/$which.jsonl" --root "$root" "${pairs_arg[@]}"
done
echo "(embeddings kept in $out)"
