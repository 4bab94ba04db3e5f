#!/usr/bin/env bash
# The GPU verification in one command (issue 13): on a machine with an NVIDIA GPU and CuPy,
#   tests/gpu/run_device_checks.sh [REPORT_DIR] [--wheels DIR]
# runs every GPU test case (the cupy-backend cases of the whole suite and the tests marked gpu, in six
# parallel pytest processes) and bench/gpu_train_step.py, and writes a short report to REPORT_DIR
# (default: $OUT, else ./gpu-report): report.md (the summary), preflight.txt, precompile.log, tests.log,
# bench.log, bench.json. Every step has a time limit, so the whole run ends within 8 minutes, CuPy's
# kernel compilation included (done first, in parallel, into CuPy's disk cache). --wheels DIR installs
# missing Python packages from wheels carried in DIR (no network needed). Exit status: 0 when every
# test passed and the bench ran, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-gpu-report}"
wheels=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) wheels="$2"; shift 2 ;;
    *) out="$1"; shift ;;
  esac
done
mkdir -p "$out"
export CUPY_CACHE_DIR="${CUPY_CACHE_DIR:-/tmp/minigrad-cupy-cache}" MINIGRAD_GPU_ONLY=1 PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
start=$(date +%s)
stamp() { echo "$(( $(date +%s) - start ))s"; }

# 1. what is here (at most 30 s)
{
  echo "# preflight $(date -u)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -3
  [ -n "$wheels" ] && "$py" -m pip install -q --no-index --find-links "$wheels" -r /dev/stdin <<< \
    "$(printf '%s\n' pytest pyyaml safetensors tqdm tokenizers hypothesis ml_dtypes)" 2>&1 | tail -3
  timeout 30 "$py" - <<'PY'
import importlib
for name in ("numpy", "cupy", "numba", "torch", "transformers", "ml_dtypes", "safetensors", "tokenizers", "yaml",
             "tqdm", "hypothesis", "pytest"):
    try:
        m = importlib.import_module(name)
        print(f"{name} {getattr(m, '__version__', '?')}")
    except Exception as e:
        print(f"{name} MISSING ({type(e).__name__}: {e})")
import minigrad
print("cupy backend:", minigrad.backend.cuda_unavailable() or "usable")
try:
    import torch
    print("torch cuda:", torch.cuda.is_available(), torch.version.cuda)
except Exception as e:
    print("torch cuda: no", e)
PY
} > "$out/preflight.txt" 2>&1
echo "preflight done at $(stamp)"

# 2. compile every CUDA module in parallel into CuPy's cache, then warm CuPy's own kernels (at most 70 s)
timeout 70 "$py" tests/gpu/precompile.py > "$out/precompile.log" 2>&1
precompile_rc=$?
echo "precompile rc=$precompile_rc at $(stamp)"

# 3. the GPU cases of the suite, six processes at once (at most 240 s)
groups=(
  "tests/test_kernels_cuda.py tests/test_cuda_sources.py"
  "tests/test_ops_elementwise.py tests/test_ops_reduce.py tests/test_ops_shape.py"
  "tests/test_ops_index.py tests/test_autograd.py tests/test_gradcheck.py tests/test_errors.py"
  "tests/test_kernels_cpu.py tests/test_ops_nn.py tests/test_ops_dtypes.py tests/test_properties.py tests/test_simple_composites.py tests/test_viz.py tests/test_memory.py"
  "tests/test_llama_parity.py tests/test_generate.py tests/test_optim.py tests/test_train.py tests/test_train_devices.py tests/test_nn_module.py"
)
listed=" ${groups[*]} "
rest=""
for f in tests/test_*.py; do  # every other test file, so a GPU case added anywhere is run
  case "$listed" in *" $f "*) ;; *) rest="$rest $f" ;; esac
done
groups+=("${rest# }")
pids=()
for i in "${!groups[@]}"; do
  # shellcheck disable=SC2086
  timeout 240 "$py" -m pytest -o addopts="" -q -rfEs -p no:cacheprovider ${groups[$i]} > "$out/tests-$i.tmp" 2>&1 &
  pids+=($!)
done
test_rc=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"; rc=$?
  [ $rc -ne 0 ] && [ $rc -ne 5 ] && test_rc=1   # 5: no test selected in that group
  echo "== group $i (rc=$rc): ${groups[$i]}" >> "$out/tests.log"
  cat "$out/tests-$i.tmp" >> "$out/tests.log"; rm -f "$out/tests-$i.tmp"
done
echo "tests rc=$test_rc at $(stamp)"

# 4. the benchmark (at most 130 s)
timeout 130 "$py" bench/gpu_train_step.py --steps 8 --profile --json "$out/bench.json" > "$out/bench.log" 2>&1
bench_rc=$?
echo "bench rc=$bench_rc at $(stamp)"

# 5. the report
{
  echo "# GPU device checks, $(date -u)"
  echo
  echo "Total $(stamp); precompile rc=$precompile_rc, tests rc=$test_rc, bench rc=$bench_rc."
  echo
  echo '## Machine'; echo '```'; cat "$out/preflight.txt"; echo '```'
  echo '## Precompile'; echo '```'; tail -3 "$out/precompile.log"; grep '^FAIL' "$out/precompile.log" | head -20; echo '```'
  echo '## Tests (each group: its summary line, then failures)'; echo '```'
  grep -E '^== group|passed|failed|skipped|deselected|error|^FAILED|^ERROR|^SKIPPED' "$out/tests.log" | head -80; echo '```'
  echo '## Bench'; echo '```'; tail -12 "$out/bench.log"; echo '```'
} > "$out/report.md"
cat "$out/report.md"
[ $test_rc -eq 0 ] && [ $bench_rc -eq 0 ] && [ $precompile_rc -eq 0 ]
