#!/usr/bin/env bash
# GPU check, for the day a GPU is there: every DQN script trains a tiny budget with --cuda and saves its model,
# the saved model is evaluated again from its run folder (the summary's `again:` command, run as printed, where
# the script prints one) and must give the same headline number; then the Atari speed benchmark runs on the GPU.
#
#   bash benchmarks/gpu_check.sh                    # one line per check (ok / FAIL), a count at the end
#   BENCH_FLAGS="--repeats 5 --end-to-end-steps 300" bash benchmarks/gpu_check.sh   # a shorter benchmark
#
# Without a GPU each script falls back to the CPU with a note, and the lines say so: the checks still run
# (about 5 minutes on 2 CPU cores), but only a run on a GPU checks the GPU path. Exit code: the number of FAILs.
#
# The lent GPU machine has torch but neither gymnasium nor ale-py, and no network: carry their wheels in .whl/
# (git-ignored; the pip download command is in docs/dqn_atari.md). When .whl/ (or $WHEELS) exists, they are
# installed first into a temp dir put on PYTHONPATH, for this check only.
#   WHEELS=/tmp/whl311 bash benchmarks/gpu_check.sh   # another wheel folder (here: the Python 3.11 set)
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$(command -v python || command -v python3)}  # the GPU machine has only python3
WHEELS=${WHEELS:-$ROOT/.whl}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failures=0

report() {  # report CHECK STATUS DETAIL
    printf '%-4s  %-42s %s\n' "$2" "$1" "$3"
    [ "$2" = ok ] || failures=$((failures + 1))
}

if [ -d "$WHEELS" ]; then
    T=$WORK/site-packages
    if out=$("$PY" -m pip install -q --no-index --no-deps --target "$T" "$WHEELS"/*.whl 2>&1); then
        export PYTHONPATH=$T${PYTHONPATH:+:$PYTHONPATH}
        report "install $(basename "$WHEELS")/*.whl" ok "$(cd "$WHEELS" && ls ./*.whl | sed 's|^./||; s/-py3-none.*//; s/-cp3.*//' | tr '\n' ' ')-> $T on PYTHONPATH; $("$PY" -c 'import ale_py, gymnasium; print("ale_py", ale_py.__version__, "from", ale_py.__file__)' 2>&1 | tail -1)"
    else
        report "install $(basename "$WHEELS")/*.whl" FAIL "$(echo "$out" | grep -m1 -i error || echo "$out" | tail -1)"
    fi
fi

headline() {  # the first number of the `result:` line (scripts before issue 10: the final model's `eval` line)
    local line
    line=$(grep -m1 '^result:' "$1" || grep -m1 '^eval (final model):' "$1" || grep '^eval' "$1" | tail -1)
    echo "$line" | sed -E 's/^[^:]*: *(-?[0-9.]+).*/\1/'
}

where() {  # where a run ran, from its stderr
    if grep -q "no GPU is available" "$1"; then echo "on the CPU: no GPU here"; else echo "on the GPU"; fi
}

check_script() {  # check_script SCRIPT TRAINING-FLAGS...
    local script=$1 stem=${1%.py} dir="$WORK/${1%.py}" rc model h1 h2 again
    shift
    mkdir -p "$dir"
    (cd "$dir" && timeout 1200 "$PY" "$ROOT/$script" --cuda --save-model "$@" >train.out 2>train.err)
    rc=$?
    if [ $rc -ne 0 ]; then
        report "$script: train --cuda" FAIL "exit code $rc: $(tail -1 "$dir/train.err")"
        return
    fi
    model=$(cd "$dir" && ls runs/*/"$stem".pt 2>/dev/null | head -1)
    h1=$(headline "$dir/train.out")
    if [ -z "$model" ]; then
        report "$script: train --cuda" FAIL "no runs/<run>/$stem.pt was saved"
        return
    fi
    report "$script: train --cuda, save" ok "result $h1, $model ($(where "$dir/train.err"))"

    # evaluate the saved model again, as a user would: the printed command if there is one
    again=$(grep -m1 '^again:' "$dir/train.out" | sed -E 's/^again: *//')
    if [ -n "$again" ]; then
        again=${again/#python $script/\"$PY\" \"$ROOT/$script\"}
    else
        again="\"$PY\" \"$ROOT/$script\" --eval-model $model"
    fi
    (cd "$dir" && eval "timeout 600 $again --cuda" >eval.out 2>eval.err)
    rc=$?
    h2=$(headline "$dir/eval.out")
    if [ $rc -ne 0 ]; then
        report "$script: --eval-model --cuda" FAIL "exit code $rc: $(tail -1 "$dir/eval.err")"
    elif [ "$h1" != "$h2" ]; then
        report "$script: --eval-model --cuda" FAIL "result $h2, not the run's $h1"
    else
        report "$script: --eval-model --cuda" ok "result $h2 again ($(where "$dir/eval.err"))"
    fi
}

echo "GPU: $("$PY" -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "none (the --cuda runs fall back to the CPU)")' 2>&1 | tail -1)"
CARTPOLE=(--total-timesteps 3000 --learning-starts 500 --buffer-size 10000 --eval-episodes 2)
for script in dqn_cartpole.py double_dqn.py dueling_dqn.py per_dqn.py; do
    check_script "$script" "${CARTPOLE[@]}"
done
check_script dqn_atari.py --total-timesteps 2000 --learning-starts 1000 --buffer-size 2000 --eval-episodes 1 \
    --eval-max-frames 2000

bench() {  # bench NAME FLAGS...: the Atari speed benchmark, float32 or --bf16
    local name=$1; shift
    # shellcheck disable=SC2086  # BENCH_FLAGS holds several flags
    (cd "$WORK" && timeout 1200 "$PY" "$ROOT/benchmarks/bench_atari_speed.py" --cuda "$@" ${BENCH_FLAGS:-} >bench.out 2>bench.err)
    local rc=$?
    if [ $rc -eq 0 ] && grep -q "end to end" "$WORK/bench.out"; then
        report "$name" ok "$(grep -m1 composed "$WORK/bench.out" | sed 's/^ *//'); $(grep "end to end" "$WORK/bench.out" | sed -E 's/.*: //') end to end ($(where "$WORK/bench.err"))"
        sed 's/^/      /' "$WORK/bench.out"
    else
        report "$name" FAIL "exit code $rc: $(tail -1 "$WORK/bench.err")"
    fi
}
bench "bench_atari_speed.py --cuda"
if "$PY" -c "import sys; sys.path.insert(0, '$ROOT'); import torch, dqn_atari; sys.exit(not dqn_atari.bf16_supported(True))"; then
    bench "bench_atari_speed.py --cuda --bf16" --bf16
else
    echo "      (--bf16: no fast bfloat16 on this device; not benchmarked)"
fi

echo "$failures check(s) failed"
exit "$failures"
