#!/usr/bin/env bash
# The GPU checks of training at CosmoGrid scale, prepared as one script (docs/pipeline.md,
# "GPU check"). Made to fit in about 8 minutes on one H200, setup included.
#
#   bash bench/gpu_check.sh --prepare     # once, on a machine with PyPI: the wheels into .whl/
#   bash bench/gpu_check.sh               # on the CUDA machine (the device tool: carry .whl)
#   bash bench/gpu_check.sh --n 2000 --device cpu --python .venv/bin/python   # CPU dry run
#
# Steps, most telling first; each runs under the time left of --budget seconds (counted from
# the start) and is skipped when less than a minute is left:
#   1. write --n 4-bin 66x66 patches (+ --val) in the patch-file contract (bench/_gpu_epoch.py)
#   2. the CNN, one epoch, bf16 autocast, streamed from the file by --workers loader processes
#   3. SOP (20 groups of 6-px cells, the defaults) around that CNN, one epoch
#   4. SOP step / (G x backbone step), bench/sop_overhead.py
#   5. the CNN and SOP with --compile
#   6. the CNN with the split in RAM (--in-memory): streamed / in-RAM on the GPU
#   7. with two GPUs visible (two CPU ranks on --device cpu): the CNN under torchrun on 2 ranks
# Each training step prints one JSON line (bench/_gpu_epoch.py: epoch wall time, steady
# samples/s after 20 warm-up steps, peak GPU memory); a summary of the ratios closes the run.
# With $OUT set (the device tool), the lines and the log are copied there.
#
# The package runs from this checkout (PYTHONPATH) on the machine's own python and torch; of
# its training imports only entmax is not on the device image, so --prepare downloads its
# wheel (pure python) and the check installs it from .whl/ into a scratch folder when missing.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=100000 VAL=4096 DEVICE=cuda PY=python3 BUDGET=420 BATCH=128 WORKERS=8 WARMUP=20 WORK=""
PREPARE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --n) N=$2; shift 2 ;;
    --val) VAL=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --python) PY=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --prepare) PREPARE=1; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
cd "$REPO"

if [ "$PREPARE" = 1 ]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  ENTMAX=$(grep -E '^entmax==' constraints.txt | head -1)
  "$PY" -m pip download --no-deps --only-binary=:all: -d .whl "${ENTMAX:-entmax==1.3}"
  ls -l .whl
  exit 0
fi

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ "$DEVICE" = cpu ]; then export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}; fi
if ! "$PY" -c 'import entmax' 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "gpu_check.sh: entmax is missing and .whl/ holds no wheel; run" \
      "'bash bench/gpu_check.sh --prepare' where PyPI is reachable, and carry .whl" >&2
    exit 2
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu_check_site .whl/*.whl
  export PYTHONPATH="/tmp/gpu_check_site:$PYTHONPATH"
fi

if [ -z "$WORK" ]; then WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX"); fi
mkdir -p "$WORK"
RESULTS="$WORK/gpu_check.jsonl" LOG="$WORK/gpu_check.log"
: > "$RESULTS"
exec > >(tee -a "$LOG") 2>&1

finish() {
  if [ -n "${OUT:-}" ]; then cp "$RESULTS" "$LOG" "$OUT"/ 2>/dev/null || true; fi
}
trap finish EXIT

"$PY" - "$DEVICE" <<'EOF'
import sys, torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"{torch.cuda.device_count()} GPU(s): "
      + ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))
if sys.argv[1].startswith("cuda") and not torch.cuda.is_available():
    sys.exit("gpu_check.sh: --device cuda, but torch sees no GPU")
EOF
GPUS=$("$PY" -c 'import torch; print(torch.cuda.device_count())')

# step NAME COMMAND...: run COMMAND under the time left; its JSON lines go to $RESULTS.
step() {
  local name=$1; shift
  local left=$((BUDGET - SECONDS))
  if [ "$left" -lt 60 ]; then
    echo "== $name: skipped (${left}s of the ${BUDGET}s budget left)"
    echo "{\"step\": \"$name\", \"skipped\": true}" >> "$RESULTS"
    return 0
  fi
  echo "== $name (at ${SECONDS}s, limit ${left}s)"
  local t0=$SECONDS rc=0
  timeout "$left" "$@" > "$WORK/$name.out" 2>&1 || rc=$?
  grep -v '^{' "$WORK/$name.out" | tail -n 15 || true
  grep '^{' "$WORK/$name.out" | sed "s/^{/{\"step\": \"$name\", /" | tee -a "$RESULTS" || true
  echo "== $name: exit $rc after $((SECONDS - t0))s"
}

EPOCH=(bench/_gpu_epoch.py train --data "$WORK/data" --device "$DEVICE" --batch "$BATCH"
       --workers "$WORKERS" --warmup "$WARMUP")
step write "$PY" bench/_gpu_epoch.py write --out "$WORK/data" --n "$N" --val "$VAL"
step cnn "$PY" "${EPOCH[@]}" --out "$WORK/cnn" --model cnn
BACKBONE="$WORK/cnn/model.pt"
step sop "$PY" "${EPOCH[@]}" --out "$WORK/sop" --model sop --backbone "$BACKBONE"
REPEATS=10
if [ "$DEVICE" = cpu ]; then REPEATS=2; fi
step sop_overhead "$PY" bench/sop_overhead.py --device "$DEVICE" --repeats "$REPEATS"
step cnn_compile "$PY" "${EPOCH[@]}" --out "$WORK/cnn_compile" --model cnn --compile
step sop_compile "$PY" "${EPOCH[@]}" --out "$WORK/sop_compile" --model sop --compile \
  --backbone "$BACKBONE"
step cnn_in_memory "$PY" "${EPOCH[@]}" --out "$WORK/cnn_ram" --model cnn --in-memory
if [ "$GPUS" -ge 2 ] || [ "$DEVICE" = cpu ]; then
  step cnn_ddp2 "$PY" -m torch.distributed.run --standalone --nproc-per-node 2 \
    "${EPOCH[@]}" --out "$WORK/cnn_ddp2" --model cnn
else
  echo "== cnn_ddp2: skipped ($GPUS GPU visible; it needs two)"
fi
touch "$WORK/sop_overhead.out"
"$PY" - "$RESULTS" "$WORK/sop_overhead.out" <<'EOF'
import json, re, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows[r["step"]] = r
rate = lambda k: rows.get(k, {}).get("samples_per_s")
print("== summary")
for k, r in rows.items():
    if "samples_per_s" in r:
        print(f"{k:>14}: {r['samples_per_s']:>10.1f} samples/s (batch {r['batch']}, "
              f"{r['ranks']} rank(s)), epoch {r['epoch_s']} s, peak GPU {r['peak_gpu_gb']} GB")
def ratio(name, a, b, scale=1.0):
    if rate(a) and rate(b):
        print(f"{name}: {rate(a) / (scale * rate(b)):.3f}")
ratio("SOP / CNN samples/s", "sop", "cnn")
ratio("compiled / eager CNN", "cnn_compile", "cnn")
ratio("compiled / eager SOP", "sop_compile", "sop")
ratio("streamed / in-RAM CNN", "cnn", "cnn_in_memory")
ratio("2 ranks / (2 x 1 rank) CNN", "cnn_ddp2", "cnn", 2.0)
for m in re.finditer(r"(\w+): backbone step .*SOP / \(G x backbone\) = ([0-9.]+)",
                     open(sys.argv[2]).read()):
    print(f"SOP step / (G x backbone step) on {m.group(1)}: {m.group(2)}")
EOF
echo "== done in ${SECONDS}s; results in $RESULTS"
