#!/usr/bin/env bash
# Train-step timing on a GPU machine that has JAX (with CUDA) but no TensorFlow and no network, e.g. a
# managed H100/H200 image. SRResNet and SRGAN x4, built exactly as the training scripts build them
# (sr_keras.train.loop.build_srresnet_trainer, sr_keras.train.gan.build_srgan_trainer; JAX steps are XLA-compiled),
# stepped by Keras' fit() on fixed random batches: batch 16 / HR 96 and batch 8 / HR 180, float32 and
# mixed_bfloat16. One JSON line per run on stdout ({"error": ...} for a failed run, and the sweep goes
# on); logs on stderr. Run from anywhere:
#
#   bash benchmarks/gpu_jax.sh | tee gpu-jax-results.jsonl
#
# Wheels: the script brings only the pure-Python wheels such an image lacks (keras, optree, namex: about
# 3 MB), from benchmarks/wheels/ next to it, installed with --no-index --no-deps into a temporary folder on
# PYTHONPATH (nothing is installed into the machine's environment). Fetch them beforehand, on a machine
# with network, for the GPU machine's Python version and platform (they are not committed):
#
#   pip download --no-deps -d benchmarks/wheels keras==3.15.1 optree namex
#
# (optree has compiled wheels: add --python-version 3.X --platform manylinux2014_x86_64 --only-binary=:all:
# when the two machines differ.) If the image also lacks one of h5py, rich, absl-py, scikit-image, scipy or
# pillow, the first line says which; download its wheel into the same folder.
#
# Environment: PYTHON (default: python3), STEPS (timed steps, default 20), WARMUP (untimed steps first,
# compilation included, default 3), MODELS (default "srresnet srgan"), PRECISIONS (default
# "float32 mixed_bfloat16"), SHAPES (batch/HR pairs, default "16/96 8/180").
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/.."
PY=${PYTHON:-python3}
STEPS=${STEPS:-20}
WARMUP=${WARMUP:-3}
MODELS=${MODELS:-srresnet srgan}
PRECISIONS=${PRECISIONS:-float32 mixed_bfloat16}
SHAPES=${SHAPES:-16/96 8/180}
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1

SITE=$(mktemp -d)
trap 'rm -rf "$SITE"' EXIT
if ls "$HERE"/wheels/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --target "$SITE" "$HERE"/wheels/*.whl >&2 \
    || { echo '{"error": "installing benchmarks/wheels/*.whl failed"}'; exit 1; }
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"

missing=$("$PY" - <<'EOF'
import importlib.util
need = ("jax", "keras", "optree", "namex", "h5py", "rich", "absl", "numpy", "skimage", "scipy", "PIL")
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
EOF
)
if [ -n "$missing" ]; then
  printf '{"error": "missing Python modules: %s (add their wheels to benchmarks/wheels)"}\n' "$missing"
  exit 1
fi
"$PY" -c 'import jax, json, keras; print(json.dumps({"devices": [d.device_kind for d in jax.devices()], "jax": jax.__version__, "keras": keras.__version__}))'

step() {  # step MODEL BATCH HR PRECISION: one timed run in its own process (the dtype policy is global)
  "$PY" - "$@" <<'EOF'
import json, sys, time

import jax
import keras
import numpy as np

from sr_keras.train import distribute, gan, loop, losses
from sr_keras.archs.config import GeneratorConfig

model_name, batch, hr, precision = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
steps, warmup = int(sys.argv[5]), int(sys.argv[6])
keras.utils.set_random_seed(0)
distribute.set_precision(precision)
config = GeneratorConfig(4)
if model_name == "srresnet":
    model, _ = loop.build_srresnet_trainer(config)
else:  # the report's SRGAN: VGG19 content loss (random weights time the same), report discriminator
    model = gan.build_srgan_trainer(loop.make_generator(config), hr, losses.VGGContentLoss(weights="random"), 4)
rng = np.random.default_rng(0)
pair = (rng.random((batch, hr // 4, hr // 4, 3), np.float32), rng.random((batch, hr, hr, 3), np.float32))


class Fixed(keras.utils.PyDataset):
    def __init__(self):
        super().__init__()

    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        return pair


times = []


class StepTimer(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float(next(iter(logs.values())))  # the step is done once its result is on the host
        times.append(time.perf_counter() - self.t0)


model.fit(Fixed(), epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[StepTimer()])
timed = np.array(times[warmup:])
step_s = float(np.median(timed))
stats = jax.devices()[0].memory_stats() or {}
print(json.dumps({
    "benchmark": "train_jax", "model": model_name, "scale": 4, "batch": batch, "hr_crop": hr, "precision": precision,
    "step_s": round(step_s, 4), "patches_per_s": round(batch / step_s, 2), "step_s_min": round(float(timed.min()), 4),
    "first_step_s": round(times[0], 2), "steps": steps, "warmup": warmup, "device": jax.devices()[0].device_kind,
    "peak_mem_mb": round(stats.get("peak_bytes_in_use", 0) / 2**20, 1), "jax": jax.__version__,
    "keras": keras.__version__}), flush=True)
EOF
}

for model in $MODELS; do
  for precision in $PRECISIONS; do
    for shape in $SHAPES; do
      batch=${shape%/*} hr=${shape#*/}
      if ! out=$(step "$model" "$batch" "$hr" "$precision" "$STEPS" "$WARMUP" 2> >(tail -n 20 >&2)) || [ -z "$out" ]; then
        out=$(printf '{"error": "run failed", "model": "%s", "batch": %s, "hr_crop": %s, "precision": "%s"}' \
          "$model" "$batch" "$hr" "$precision")
      fi
      printf '%s\n' "$out"
    done
  done
done
