#!/usr/bin/env bash
# GPU benchmark sweep: train and infer for SRResNet and SRGAN x4, float32 and mixed precision, with and
# without XLA, then SRResNet batch sizes for peak throughput. One JSON line per run on stdout (a failed
# run prints {"error": ...} and the sweep goes on); logs on stderr. Run from the repository root:
#
#   bash benchmarks/gpu.sh | tee gpu-results.jsonl
#
# Environment: PYTHON (default: python), STEPS (timed steps per train run, default 20), BATCHES (SRResNet
# batch sweep, default "8 16 32 64 128"), PRECISIONS (default "float32 mixed_float16 mixed_bfloat16").
# About 10 minutes on one H100; record the output and the card's name in docs/performance.md.
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
STEPS=${STEPS:-20}
BATCHES=${BATCHES:-8 16 32 64 128}
PRECISIONS=${PRECISIONS:-float32 mixed_float16 mixed_bfloat16}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

run() {  # run ARGS...: one benchmark; its JSON line, or an error line naming the arguments
  local out
  if out=$("$PY" -m benchmarks "$@" 2> >(tail -n 20 >&2)) && [ -n "$out" ]; then
    printf '%s\n' "$out"
  else
    printf '{"error": "benchmark failed", "args": "%s"}\n' "$*"
  fi
}

if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
    | sed 's/^\(.*\), \(.*\), \(.*\)$/{"gpu": "\1", "memory": "\2", "driver": "\3"}/'
fi

for model in srresnet srgan; do
  for precision in $PRECISIONS; do
    for jit in "" --jit; do
      run train --model "$model" --scale 4 --batch 8 --hr-crop 180 --steps "$STEPS" --warmup 3 \
        --precision "$precision" $jit
    done
  done
done

# The batch that maximises SRResNet throughput (the issue's % of bf16 peak is quoted at it).
for batch in $BATCHES; do
  run train --model srresnet --scale 4 --batch "$batch" --hr-crop 180 --steps "$STEPS" --warmup 3 \
    --precision mixed_bfloat16 --jit
done

# Inference goes through sr_keras.infer.inference (no XLA switch there): whole 512x512 LR image and 256 tiles.
for model in srresnet srgan; do
  for precision in $PRECISIONS; do
    for tile in 0 256; do
      run infer --model "$model" --scale 4 --lr-size 512 --tile "$tile" --repeats 5 --precision "$precision" \
        --tile-memory 0
    done
  done
done
