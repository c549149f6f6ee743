#!/usr/bin/env bash
# Wheels for bench/gpu_check.sh on a GPU machine without a package registry, prepared on a machine with one.
#
#   bash bench/prepare_wheels.sh [--python PYTHON] [--out DIR] [NAME ...]
#
# Downloads exactly the packages the project needs that the GPU machine's image lacks (bench/missing_packages.py:
# the project's requirements as installed in PYTHON, minus bench/gpu_image_packages.txt), each at the version
# installed here, as wheels for CPython 3.12 on manylinux x86-64, and builds this project's own wheel beside
# them. A package published only as a source archive is built here into a wheel when it is pure Python, and
# refused otherwise. NAME also carries a package the image has in a version too old. The folder (default .whl/,
# git-ignored) is emptied first, so it never holds two versions of one package; its contents and size are
# printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
python=python3
out=.whl
names=()
while (($#)); do
  case $1 in
    --python) python=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "prepare_wheels.sh: unknown option $1: expected --python PYTHON, --out DIR or package names" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
target=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312)
for n in $(seq 39 -1 17); do target+=(--platform "manylinux_2_${n}_x86_64"); done
target+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)

pins=$("$python" bench/missing_packages.py "${names[@]}")
rm -rf "$out" && mkdir -p "$out"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for pin in $pins; do
  if ! "$python" -m pip download -q --no-deps "${target[@]}" -d "$out" "$pin" 2>"$scratch/err"; then
    # No wheel for the machine: build one from the source archive, kept only if it is pure Python.
    "$python" -m pip wheel -q --no-deps --no-binary=:all: -w "$scratch/built" "$pin"
    built=$(ls "$scratch"/built/*.whl)
    case $built in
      *-py3-none-any.whl|*-py2.py3-none-any.whl) mv "$built" "$out/" ;;
      *) echo "prepare_wheels.sh: $pin has no wheel for CPython 3.12 manylinux x86-64, nor is it pure Python" >&2
         exit 1 ;;
    esac
  fi
done
"$python" -m pip wheel -q --no-deps -w "$out" .
echo "$out: $(ls "$out" | wc -l) wheels, $(du -sb "$out" | cut -f1) bytes ($(du -sh "$out" | cut -f1))"
ls -l "$out" | awk 'NR > 1 {printf "%10d  %s\n", $5, $9}'
