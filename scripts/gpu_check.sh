#!/usr/bin/env bash
# fpharness on a real NVIDIA GPU in one command: a fresh venv over the python that already has
# a CUDA build of torch, the CUDA transfer tests, exhaustive float32 torch.softplus on cuda,
# timed, and every torch and jax built-in on cuda (suites/gpu.toml). docs/gpu.md says
# what it measures; --help says how to call it. Without a GPU it validates the suite, says so
# in one line and exits 0.
#
# Exit: 0 when the harness worked (whatever the precision verdicts: a cell over budget is a
# finding about a framework, not a failure of this script), 1 for a harness failure (a
# command that crashed, results that are missing, no cuda cell that ran, a transfer test
# that failed, a cell that hit an internal error), 2 when it cannot start (a bad option, a
# suite that does not validate, a python without CUDA torch, a missing dependency).
#
# Not set -e: every phase's exit code is judged by the summary, and a failing phase must not
# stop the phases after it from producing what they can.
set -uo pipefail

PROG="gpu_check"
CALLER_DIR="$PWD"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    cat <<'EOF'
usage: bash scripts/gpu_check.sh [--out DIR] [--suite FILE] [--jobs N] [--skip-exhaustive]
                                 [--skip-tests] [--dry-run] [-h | --help]

Runs fpharness's CUDA cells on this machine's NVIDIA GPU and writes everything under one
folder. Phases, each timed (timings.tsv):
  setup        a fresh venv (--system-site-packages, and the packages of the python that has
               a CUDA torch), fpharness installed with pip install --no-deps
               --no-build-isolation -e . (offline), its dependencies checked (a missing one
               comes from .whl/ if there, else from the package index when it is reachable)
  environment  GPU name, driver, python, torch/jax versions and their CUDA devices
               (environment.json)
  tests        the CUDA transfer tests: every float16/bfloat16 pattern and random
               float32/float64 patterns to the GPU and back bit for bit, layouts, gradients
               (pytest -m cuda tests/frameworks; transfer-tests.log)
  exhaustive   fpharness check torch.softplus --oracle softplus --dtype float32 --device cuda
               --inputs exhaustive: all 2**32 inputs, timed
               (softplus-float32-exhaustive.json and .log)
  suite        fpharness run suites/gpu.toml: every torch and jax built-in on cuda in
               float16, bfloat16 and float32, exhaustive 16-bit and special inputs, forward
               and gradient, and CUDA against the CPU (gpu.json, gpu.html, run.log)
  summary      summary.md: the tables for docs/gpu.md, and the verdict on the harness

options:
  --out DIR          output folder (default: $FPHARNESS_GPU_OUT, else results/gpu)
  --suite FILE       the suite to run (default: suites/gpu.toml)
  --jobs N, -j N     worker processes for references and cells (default: every core)
  --skip-exhaustive  leave out the exhaustive float32 cell (all 2**32 inputs)
  --skip-tests       leave out the CUDA transfer tests
  --dry-run          validate the suite and the exhaustive command, print the plan and the
                     phases; make no venv, run and write nothing
  -h, --help         this text

environment:
  FPHARNESS_GPU_PYTHON  the python whose torch is a CUDA build (default: python3)
  FPHARNESS_GPU_VENV    where the fresh venv goes (default: .venv-gpu in the repository;
                        an existing venv there is replaced)
  FPHARNESS_GPU_OUT     the output folder, as --out
  FPHARNESS_GPU         auto (default: nvidia-smi must list a GPU), 0 (act as if there were
                        none) or 1 (skip detection and run; without a GPU every cuda cell is
                        skipped and the summary reports a harness failure)

exit: 0 the harness worked (precision findings do not count), 1 a harness failure,
2 it could not start. Without a GPU: one line, exit 0 once the suite validates.
EOF
}

# one line on stderr, exit 2: the script could not start
refuse() {
    echo "$PROG: $1" >&2
    exit 2
}

# an option's value, absolute against the caller's directory (we cd to the repository)
absolute() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s\n' "$CALLER_DIR/$1" ;;
    esac
}

# a path as messages and fpharness show it: relative inside the repository
shown() {
    case "$1" in
        "$ROOT"/*) printf '%s\n' "${1#"$ROOT"/}" ;;
        *) printf '%s\n' "$1" ;;
    esac
}

OUT="${FPHARNESS_GPU_OUT:-}"
SUITE=""
JOBS=""
DRY_RUN=0
SKIP_EXHAUSTIVE=0
SKIP_TESTS=0
OPTIONS="--out DIR, --suite FILE, --jobs N, --skip-exhaustive, --skip-tests, --dry-run, --help"
while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --out | --suite | --jobs | -j)
            [ $# -ge 2 ] && [ -n "$2" ] && [[ "$2" != -* ]] || refuse "$1 needs a value (see --help), e.g. $1 $(case "$1" in --out) echo results/gpu ;; --suite) echo suites/gpu.toml ;; *) echo 8 ;; esac)"
            case "$1" in --out) OUT="$2" ;; --suite) SUITE="$2" ;; *) JOBS="$2" ;; esac
            shift 2 ;;
        --out=*) OUT="${1#*=}"; shift ;;
        --suite=*) SUITE="${1#*=}"; shift ;;
        --jobs=*) JOBS="${1#*=}"; shift ;;
        --skip-exhaustive) SKIP_EXHAUSTIVE=1; shift ;;
        --skip-tests) SKIP_TESTS=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        *) refuse "unknown option '$1'; options: $OPTIONS" ;;
    esac
done
if [ -n "$JOBS" ] && ! [[ "$JOBS" =~ ^[1-9][0-9]*$ ]]; then
    refuse "--jobs '$JOBS' must be a whole number of processes, at least 1, e.g. --jobs 8"
fi
OUT="$(absolute "${OUT:-$ROOT/results/gpu}")"
SUITE="$(absolute "${SUITE:-$ROOT/suites/gpu.toml}")"
VENV="$(absolute "${FPHARNESS_GPU_VENV:-$ROOT/.venv-gpu}")"
PY="${FPHARNESS_GPU_PYTHON:-python3}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 1)}"
cd "$ROOT" || refuse "cannot enter the repository at $ROOT"
SUITE_SHOWN="$(shown "$SUITE")"
command -v "$PY" >/dev/null 2>&1 \
    || refuse "no python '$PY'; set FPHARNESS_GPU_PYTHON to the python that has a CUDA build of torch"

# -- is there a GPU? ---------------------------------------------------------------------------
# Sets GPU (1 or 0) and WHY (what was found, or why there is none). FPHARNESS_GPU overrides the
# detection, so that tests of the no-GPU path do not depend on the machine they run on.
GPU=0
FORCED=0
WHY=""
case "${FPHARNESS_GPU:-auto}" in
    0 | no | false) WHY="FPHARNESS_GPU=${FPHARNESS_GPU}" ;;
    1 | yes | true) GPU=1; FORCED=1; WHY="assumed: FPHARNESS_GPU=${FPHARNESS_GPU}" ;;
    auto)
        if ! command -v nvidia-smi >/dev/null 2>&1; then
            WHY="nvidia-smi not found"
        elif ! LISTED="$(nvidia-smi -L 2>&1)"; then
            WHY="nvidia-smi failed: $(printf '%s\n' "$LISTED" | head -n 1)"
        elif ! FIRST_GPU="$(printf '%s\n' "$LISTED" | grep -m 1 '^GPU ')"; then
            WHY="nvidia-smi lists no GPU"
        else
            GPU=1
            WHY="${FIRST_GPU%% (UUID*}"
        fi ;;
    *) refuse "FPHARNESS_GPU='${FPHARNESS_GPU}': give auto (the default), 0 (act as if there were no GPU) or 1 (skip detection)" ;;
esac

# fpharness from this checkout, in a python that may not have it installed (validation only)
checkout_fpharness() {
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m harness.cli "$@"
}

EXHAUSTIVE_ARGS=(check torch.softplus --oracle softplus --dtype float32 --device cuda --inputs exhaustive)

# -- without a GPU: validate the suite, say so in one line ---------------------------------------
if [ "$GPU" = 0 ] && [ "$DRY_RUN" = 0 ]; then
    LACKING="$("$PY" scripts/gpu_deps.py 2>&1)" || LACKING="(cannot read pyproject.toml: $LACKING)"
    if [ -n "$LACKING" ]; then
        refuse "no NVIDIA GPU here ($WHY), and $PY cannot validate $SUITE_SHOWN: it lacks $(echo $LACKING) (pip install -e . there, or set FPHARNESS_GPU_PYTHON)"
    fi
    if ! PLAN="$(checkout_fpharness run "$SUITE_SHOWN" --dry-run -q --json "$OUT/gpu.json" 2>&1)"; then
        refuse "no NVIDIA GPU here ($WHY), and $SUITE_SHOWN does not validate: $(printf '%s\n' "$PLAN" | tail -n 1)"
    fi
    echo "$PROG: no NVIDIA GPU here ($WHY); ${PLAN#dry run: }"
    exit 0
fi

# -- --dry-run: the plan and the phases, nothing made or run ---------------------------------------
if [ "$DRY_RUN" = 1 ]; then
    if [ "$GPU" = 1 ]; then echo "$PROG: GPU: $WHY"; else echo "$PROG: no NVIDIA GPU here ($WHY)"; fi
    checkout_fpharness run "$SUITE_SHOWN" --dry-run --json "$OUT/gpu.json" --html "$OUT/gpu.html" || exit 2
    if [ "$SKIP_EXHAUSTIVE" = 0 ]; then
        checkout_fpharness "${EXHAUSTIVE_ARGS[@]}" --dry-run --json "$OUT/softplus-float32-exhaustive.json" || exit 2
    fi
    cat <<EOF
$PROG: a real run would, with $PY and $JOBS jobs:
  setup        make a fresh venv at $(shown "$VENV") (--system-site-packages) and install fpharness into it
  environment  describe the GPU and the frameworks in $(shown "$OUT")/environment.json
  tests        $([ "$SKIP_TESTS" = 1 ] && echo "skipped (--skip-tests)" || echo "pytest -m cuda tests/frameworks > transfer-tests.log")
  exhaustive   $([ "$SKIP_EXHAUSTIVE" = 1 ] && echo "skipped (--skip-exhaustive)" || echo "fpharness ${EXHAUSTIVE_ARGS[*]} -> softplus-float32-exhaustive.json")
  suite        fpharness run $SUITE_SHOWN -> gpu.json, gpu.html, run.log
  summary      summary.md
EOF
    exit 0
fi

# -- with a GPU ---------------------------------------------------------------------------------
STARTED="${EPOCHREALTIME:-$(date +%s.%N)}"
now() { echo "${EPOCHREALTIME:-$(date +%s.%N)}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '[%6ss] %s\n' "$(since "$STARTED")" "$*"; }
# phase NAME START WHAT: record a finished phase's time
phase() {
    local took
    took="$(since "$2")"
    printf '%s\t%s\t%s\n' "$1" "$took" "$3" >>"$OUT/timings.tsv"
    say "$1 done in ${took}s: $3"
}

# the python must hold a CUDA build of torch: checked before anything is made
if ! TORCH="$("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda or "none")' 2>/dev/null)"; then
    refuse "$PY cannot import torch; set FPHARNESS_GPU_PYTHON to the python that has a CUDA build of torch"
fi
if [ "${TORCH##* }" = none ] && [ "$FORCED" = 0 ]; then
    refuse "a GPU is here ($WHY), but torch ${TORCH% *} in $PY is a CPU-only build (torch.version.cuda is None); set FPHARNESS_GPU_PYTHON to a python whose torch has CUDA"
fi
mkdir -p "$OUT" || refuse "cannot create the output folder $OUT"
: >"$OUT/timings.tsv"
: >"$OUT/setup.log"
# JAX and TensorFlow would each reserve most of the GPU in the first process to touch it; the
# adapters set the same (harness/frameworks/adapters.py, GPU_MEMORY_ENV); pytest's too
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"
export TF_FORCE_GPU_ALLOW_GROWTH="${TF_FORCE_GPU_ALLOW_GROWTH:-true}"
say "GPU: $WHY; python: $PY; output: $OUT"

# -- setup ----------------------------------------------------------------------------------------
T="$(now)"
if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
    refuse "FPHARNESS_GPU_VENV=$VENV exists and is not a virtual environment; remove it or set another path"
fi
# make_venv [--without-pip]: a venv whose python sees $PY's packages. --system-site-packages
# brings the base interpreter's; a venv made from inside a venv (/opt/torch/.venv) does not
# see that venv's own, so a .pth file adds them (each line runs at start-up; addsitedir also
# reads the .pth files among those packages).
make_venv() {
    rm -rf "$VENV"
    "$PY" -m venv --system-site-packages "$@" "$VENV" >>"$OUT/setup.log" 2>&1 || return 1
    VPY="$VENV/bin/python"
    SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || return 1
    "$PY" - "$SITE/fpharness-gpu-parent.pth" <<'PYEOF'
import site
import sys

if sys.prefix != sys.base_prefix:
    with open(sys.argv[1], "w", encoding="utf-8") as fh:
        for path in site.getsitepackages():
            fh.write(f"import site; site.addsitedir({path!r})\n")
PYEOF
}
# Without a pip of its own first: venv's bundled pip (and, before Python 3.12, an old
# setuptools) would shadow $PY's, and the offline editable install needs setuptools >= 77.
# Where $PY's packages have no pip, venv bootstraps one.
if ! make_venv --without-pip || ! "$VPY" -m pip --version >>"$OUT/setup.log" 2>&1; then
    make_venv || refuse "cannot make a venv with pip at $VENV with $PY (setup.log)"
fi
VTORCH="$("$VPY" -c 'import torch; print(torch.__version__, torch.version.cuda or "none")' 2>>"$OUT/setup.log")" \
    || refuse "the venv at $VENV cannot import torch, which $PY has (setup.log)"
[ "$VTORCH" = "$TORCH" ] || refuse "the venv sees torch $VTORCH, not $PY's torch $TORCH; remove other torch installs from the base python"
if "$VPY" -m pip install -q --no-deps --no-build-isolation --no-index -e "$ROOT" >>"$OUT/setup.log" 2>&1; then
    INSTALLED="pip install -e"
else
    # no setuptools >= 77 (pyproject.toml's license field) for an offline editable build:
    # the checkout on sys.path is what an editable install of this flat layout amounts to;
    # only the package metadata is missing (fpharness's version reads "unknown")
    printf '%s\n' "$ROOT" >"$SITE/fpharness-checkout.pth"
    INSTALLED="a .pth file to the checkout (pip install -e failed; see setup.log)"
fi
MISSING="$("$VPY" scripts/gpu_deps.py)" || refuse "cannot read pyproject.toml's dependencies (setup.log)"
if [ -n "$MISSING" ]; then
    # shellcheck disable=SC2086 # one requirement per word
    if [ -d "$ROOT/.whl" ]; then
        "$VPY" -m pip install -q --no-index --find-links "$ROOT/.whl" $MISSING >>"$OUT/setup.log" 2>&1
    else
        "$VPY" -m pip install -q --retries 0 --timeout 15 $MISSING >>"$OUT/setup.log" 2>&1
    fi
    STILL="$("$VPY" scripts/gpu_deps.py)"
    [ -z "$STILL" ] || refuse "fpharness needs $(echo $STILL), which is not installed, not in .whl/ and not on a reachable package index; put its wheel in .whl/ and run again"
fi
FAST="$("$VPY" scripts/gpu_deps.py --extra fast)"
if [ -n "$FAST" ] && [ -d "$ROOT/.whl" ]; then
    # shellcheck disable=SC2086
    "$VPY" -m pip install -q --no-index --find-links "$ROOT/.whl" $FAST >>"$OUT/setup.log" 2>&1
    FAST="$("$VPY" scripts/gpu_deps.py --extra fast)"
fi
NOTE=""
[ -z "$FAST" ] || NOTE="; without $(echo $FAST) the few references the fast tier leaves go to mpmath (slower)"
# the suite and the outputs, validated before minutes go into running anything
"$VPY" -m harness.cli run "$SUITE_SHOWN" --dry-run -q --json "$OUT/gpu.json" --html "$OUT/gpu.html" >/dev/null \
    || exit 2
phase setup "$T" "venv $(shown "$VENV"), torch ${TORCH% *} (CUDA ${TORCH##* }), fpharness by $INSTALLED$NOTE"

# -- environment ------------------------------------------------------------------------------------
T="$(now)"
ENV_ARGS=("$OUT/environment.json")
[ "$FORCED" = 1 ] || ENV_ARGS+=(--require-cuda)
"$VPY" -m harness.cli.gpu_check environment "${ENV_ARGS[@]}" || exit 2
phase environment "$T" "environment.json"

# -- the CUDA transfer tests ---------------------------------------------------------------------------
TESTS_RC="-"
if [ "$SKIP_TESTS" = 1 ]; then
    say "tests skipped (--skip-tests)"
elif ! "$VPY" -c 'import pytest' >/dev/null 2>&1; then
    say "tests skipped: pytest is not installed"
else
    T="$(now)"
    "$VPY" -m pytest -q -m cuda --junitxml "$OUT/transfer-tests.xml" tests/frameworks/test_frameworks.py \
        tests/frameworks/test_layouts.py tests/frameworks/test_autodiff.py >"$OUT/transfer-tests.log" 2>&1
    TESTS_RC=$?
    phase tests "$T" "pytest -m cuda exited with $TESTS_RC: $(tail -n 1 "$OUT/transfer-tests.log")"
fi

# -- exhaustive float32 -----------------------------------------------------------------------------------
# before the suite: it is one cell of bounded time (2**32 inputs), and the timing the issue asks for;
# the suite's length depends on how fast JAX compiles on this GPU
CHECK_RC="-"
if [ "$SKIP_EXHAUSTIVE" = 1 ]; then
    say "exhaustive float32 skipped (--skip-exhaustive)"
else
    T="$(now)"
    "$VPY" -m harness.cli "${EXHAUSTIVE_ARGS[@]}" --json "$OUT/softplus-float32-exhaustive.json" --no-progress \
        -j "$JOBS" >"$OUT/softplus-float32-exhaustive.log" 2>&1
    CHECK_RC=$?
    phase exhaustive "$T" "fpharness ${EXHAUSTIVE_ARGS[*]} exited with $CHECK_RC"
fi

# -- the suite ------------------------------------------------------------------------------------------
T="$(now)"
"$VPY" -m harness.cli run "$SUITE_SHOWN" --json "$OUT/gpu.json" --html "$OUT/gpu.html" --no-progress -j "$JOBS" \
    >"$OUT/run.log" 2>&1
RUN_RC=$?
phase suite "$T" "fpharness run $SUITE_SHOWN exited with $RUN_RC (run.log)"

# -- summary ------------------------------------------------------------------------------------------------
SUMMARY_ARGS=(--results "$OUT/gpu.json" --run-exit "$RUN_RC" --tests-exit "$TESTS_RC" --tests-xml "$OUT/transfer-tests.xml"
    --check-exit "$CHECK_RC"
    --timings "$OUT/timings.tsv" --environment "$OUT/environment.json" --markdown "$OUT/summary.md")
[ "$SKIP_EXHAUSTIVE" = 1 ] || SUMMARY_ARGS+=(--exhaustive "$OUT/softplus-float32-exhaustive.json")
"$VPY" -m harness.cli.gpu_check summary "${SUMMARY_ARGS[@]}"
VERDICT=$?
TOTAL="$(since "$STARTED")"
OVER=""
awk -v t="$TOTAL" 'BEGIN { exit !(t > 480) }' && OVER=" (over the 8-minute goal)"
say "total ${TOTAL}s$OVER; everything is in $OUT (summary.md first)"
[ "$VERDICT" = 0 ] || exit 1
exit 0
