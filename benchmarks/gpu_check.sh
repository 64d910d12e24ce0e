#!/usr/bin/env bash
# One-shot GPU check for a session that is lent a CUDA device (not run where there is none).
# Runs the CUDA tests, then the GPU benchmarks: official and seed at 352x1216, fp32/fp16/bf16
# and fp16 + CUDA graph, network alone and full path, p50/p95 against eager fp32 on the same
# GPU. Sized for ~8 minutes from a cold start (tests <= 150 s, benchmarks <= 330 s; each table
# is printed as soon as it is measured, so a cut-short run keeps what it has). Everything goes
# to ${OUT:-gpu_check_out}/ (env.txt, tests.txt, bench_model_cuda.txt).
# Usage: bash benchmarks/gpu_check.sh [python]   (default: .venv/bin/python, else python3)
set -u
cd "$(dirname "$0")/.."
PY="${1:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
OUT_DIR="${OUT:-gpu_check_out}"
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{
  date -u; nvidia-smi || true
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
  "cudnn", torch.backends.cudnn.version(), "available", torch.cuda.is_available(),
  torch.cuda.get_device_name() if torch.cuda.is_available() else "")'
} > "$OUT_DIR/env.txt" 2>&1
cat "$OUT_DIR/env.txt"
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo 'no CUDA device: nothing to check' | tee -a "$OUT_DIR/env.txt"; exit 2
fi
# The CUDA tests (the CPU tests of test_model_engine_cuda.py too: quick, same conversion).
timeout 150 "$PY" -m pytest -q -rs -p no:cacheprovider test/test_model_engine_cuda.py \
  test/test_model_backends.py test/test_core_sparse.py test/test_model_engine.py \
  test/test_core_projection.py -k 'cuda or CUDA or reduced_precision' \
  2>&1 | tee "$OUT_DIR/tests.txt"
tests_rc=${PIPESTATUS[0]}
# The GPU benchmarks: official first (its fp16 full path has the < 10 ms target).
timeout 330 "$PY" benchmarks/bench_model.py --device cuda --variants official seed \
  --sizes 352x1216 --rounds 30 2>&1 | tee "$OUT_DIR/bench_model_cuda.txt"
bench_rc=${PIPESTATUS[0]}
echo "tests exit $tests_rc, benchmark exit $bench_rc" | tee -a "$OUT_DIR/env.txt"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
