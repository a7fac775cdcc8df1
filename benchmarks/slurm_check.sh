#!/bin/bash
# A sweep through SLURM, end to end, on this machine alone: bash benchmarks/slurm_check.sh (as root, Debian/Ubuntu).
#
# Installs slurm-wlm and munge if they are missing, starts munged and a one-node SLURM (slurmctld and slurmd on
# this host, 2 CPUs, one partition "check", no cgroups), submits a 4-run sweep of tiny dqn_cartpole.py runs with
# `run_seeds.py --slurm --submit` (one array task per run, at most MAX_RUNNING at once), waits for the job, checks
# that `run_seeds.py --summary-only` reports all 4 runs, and stops SLURM and munged again. The runs go to a fresh
# folder (RESULTS, default a new /tmp/slurm_check.XXXX), never into benchmarks/results. Not part of the test suite:
# it needs root and installs packages. docs/sweeps.md shows its output.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
RESULTS=${RESULTS:-$(mktemp -d /tmp/slurm_check.XXXX)}
MAX_RUNNING=${MAX_RUNNING:-1}  # 1: one training process at a time on this shared machine
HOST=$(hostname)
PYTHON=${PYTHON:-python3}
TINY=(--total-timesteps 2000 --learning-starts 500 --check-frequency 1000 --eval-episodes 2 --check-episodes 2)
t0=$(date +%s)
say() { echo "[slurm_check $(( $(date +%s) - t0 ))s] $*"; }

if [ "$(id -u)" != 0 ]; then echo "error: run as root (it installs packages and starts SLURM's daemons)" >&2; exit 2; fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: a key of its own, the daemon as the munge user
mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
chown -R munge: /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 400 /etc/munge/munge.key
su munge -s /bin/sh -c /usr/sbin/munged
MUNGED_PID=$(cat /run/munge/munged.pid)

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=check
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$HOST CPUs=2 RealMemory=20000 State=UNKNOWN
PartitionName=check Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

stop() {
    scontrol shutdown >/dev/null 2>&1 || true
    for _ in $(seq 20); do pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break; sleep 0.5; done
    kill "$MUNGED_PID" 2>/dev/null || true
    say "SLURM and munged stopped"
}
trap stop EXIT
say "$(sbatch --version), $(munged --version 2>&1 | head -1), node $HOST"
slurmctld
slurmd
for _ in $(seq 60); do
    sinfo -h -o %T 2>/dev/null | grep -qx idle && break
    sleep 1
done
say "sinfo: $(sinfo -h -o '%P %D %C %T' 2>&1)"
sinfo -h -o %T | grep -qx idle || { echo "error: the node never became idle (see /var/log/slurm/)" >&2; exit 1; }

SWEEP=(dqn_cartpole.py --seeds 1-4 --root "$RESULTS")
say "python benchmarks/run_seeds.py ${SWEEP[*]} --slurm --submit --max-running $MAX_RUNNING --time 00:10:00 --partition check -- ${TINY[*]}"
out=$(OMP_NUM_THREADS=1 "$PYTHON" benchmarks/run_seeds.py "${SWEEP[@]}" --slurm --submit --max-running "$MAX_RUNNING" \
      --time 00:10:00 --partition check -- "${TINY[@]}")
echo "$out" | sed "s|^|    |"
JOB=$(echo "$out" | sed -n 's/^Submitted batch job \([0-9]*\)$/\1/p')
[ -n "$JOB" ] || { echo "error: no job id from sbatch" >&2; exit 1; }
sbatch_file=$(echo "$out" | sed -n 's/^wrote \(\S*\.sbatch\).*/\1/p')
say "the array script, $sbatch_file:"
sed "s|^|    |" "$sbatch_file"
while squeue -h -j "$JOB" 2>/dev/null | grep -q .; do
    say "squeue: $(squeue -h -j "$JOB" -o '%i %T' | tr '\n' ' ')"
    sleep 5
done
say "job $JOB has left the queue"
say "again with --slurm (runs already finished are not submitted again):"
OMP_NUM_THREADS=1 "$PYTHON" benchmarks/run_seeds.py "${SWEEP[@]}" --slurm -- "${TINY[@]}" | sed "s|^|    |"
say "python benchmarks/run_seeds.py ${SWEEP[*]} --summary-only -- ${TINY[*]}"
OMP_NUM_THREADS=1 "$PYTHON" benchmarks/run_seeds.py "${SWEEP[@]}" --summary-only -- "${TINY[@]}" | sed "s|^|    |"
runs=$("$PYTHON" -c "import json, sys; print(json.load(open(sys.argv[1]))[0]['runs'])" "$RESULTS/summary.json")
if [ "$runs" != 4 ]; then echo "error: the summary reports $runs runs, not 4" >&2; exit 1; fi
say "ok: the summary reports all 4 runs ($RESULTS)"
