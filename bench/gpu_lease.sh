#!/bin/bash
# One device call on a lent GPU host: install the carried wheels, run bench/gpu.py first (GPU time is short:
# the numbers come before anything else), then tests/test_gpu.py (the CUDA tests) with whatever time is left.
# Prepare here first (the host reaches no registry, and ../shared does not travel):
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl diffusers==0.42.1 transformers==5.24.0 importlib_metadata \
#       python-dotenv==1.2.4 mtcnn==1.0.0 joblib==1.6.0 cloudpickle lz4==4.4.5
#   mkdir -p .gpu/shared/docs && cp -r ../shared/prnet .gpu/shared/ \
#       && cp ../shared/docs/prnet-checkpoint-variables.tsv .gpu/shared/docs/
#
# (mtcnn and its readers give bench/gpu.py the real PyTorch MTCNN; without them a stand-in times detection)
# then run `bash bench/gpu_lease.sh` on the host, carrying .whl and .gpu (both git-ignored). TOTAL_S is the
# whole call's budget (default 580 s); the bench gets all of it but a margin and skips the sections that would
# start too late; the tests run after it when at least TESTS_MIN_S (default 100) are left, else say so.
# ONLY=tests runs the tests alone (a second call of the same lease). BENCH_ARGS adds options (a short lease:
# --samples 2 --skip eager-service; a second call with time left: --channels-last times T2F_CHANNELS_LAST=compiled,
# a compile of its own; --graphs-single times T2F_COMPILE=graphs-single). $OUT gets gpu.md (rewritten after each
# section), bench.log, restart.log, pytest.log, versions.txt and nvidia-smi.txt.
# BENCH_ARGS=--smoke PY=.venv/bin/python runs the same steps on a CPU as a dry run.
set -o pipefail
start=$SECONDS
total=${TOTAL_S:-580}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if [ -d .whl ]; then
  # Each wheel alone: one built for another Python (lz4 is cp312, for the GPU host) is skipped, not fatal.
  for wheel in .whl/*.whl; do
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$wheel" \
      || echo "skipped $(basename "$wheel") (not for this Python)"
  done
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PYTHONPATH:$PWD T2F_SHARED_DIR=${T2F_SHARED_DIR:-$PWD/.gpu/shared} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1  # the host's own pytest plugins, if any, stay out
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
${PY:-python3} -c "import torch, diffusers, transformers, os; print(torch.__version__, torch.version.cuda, diffusers.__version__, transformers.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0), os.cpu_count())" 2>&1 | tee "$OUT/versions.txt"
echo "setup took $((SECONDS-start)) s"
if [ "${ONLY:-}" != "tests" ]; then
  left=$(( total - (SECONDS-start) - 10 ))
  # Sections start until --budget-s; the restart child is stopped at --deadline-s, which leaves the bench's
  # own start-up (imports, ~15 s) and the table's last write inside `timeout`.
  timeout $left ${PY:-python3} bench/gpu.py --budget-s $(( left - 90 )) --deadline-s $(( left - 25 )) \
    --out "$OUT/gpu.md" $BENCH_ARGS > "$OUT/bench.log" 2>&1
  echo "bench exit $? after $((SECONDS-start)) s"
  # Each line once: the bench prints its whole table after every section.
  grep -hE "warm-up took|Traceback|Error|failed" "$OUT/bench.log" "$OUT/restart.log" 2>/dev/null | awk '!seen[$0]++' | head -20
fi
left=$(( total - (SECONDS-start) - 5 ))
if [ "$left" -ge "${TESTS_MIN_S:-100}" ]; then
  timeout "$left" ${PY:-python3} -m pytest -c /dev/null --rootdir . -q -p no:cacheprovider tests/test_gpu.py > "$OUT/pytest.log" 2>&1
  echo "pytest exit $? after $((SECONDS-start)) s"; tail -4 "$OUT/pytest.log"
else
  echo "only $left s left: tests/test_gpu.py not run (ONLY=tests runs them in a call of their own)" | tee "$OUT/pytest.log"
fi
[ -f "$OUT/gpu.md" ] && cat "$OUT/gpu.md"
