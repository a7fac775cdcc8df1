"""What the overestimation probe costs: a default dqn_cartpole.py run with the probe on and off, side by side.

    python benchmarks/bench_probe.py [--rounds 2] [--seed 1] [-- extra flags for both]

Each round runs `--probe-states 1000` (the default: mean and max Q on 1,000 fixed states, every 1,000 steps)
and `--probe-states 0`, one after the other in this one command, and reads each run's CPU time (user +
system, from wait4: about what the run takes alone, whatever else the machine does). It prints both, their
ratio, and whether the two runs' episode returns are identical (they must be: the probe draws nothing
from the training stream).
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(seed, probe_states, extra):
    with tempfile.TemporaryDirectory() as cwd:
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "dqn_cartpole.py"), "--seed", str(seed),
                                 "--probe-states", str(probe_states), "--no-save-model", *extra],
                                cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"error: the run with --probe-states {probe_states} failed")
        (episodes,) = glob.glob(os.path.join(cwd, "runs", "*", "episodes.csv"))
        with open(episodes) as f:
            returns = [line.split(",")[1] for line in f.read().splitlines()[1:]]
        return usage.ru_utime + usage.ru_stime, returns


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    argv = sys.argv[1:]
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    a = p.parse_args(own)
    on, off = [], []
    for r in range(a.rounds):
        seconds_on, returns_on = run(a.seed, 1000, extra)
        seconds_off, returns_off = run(a.seed, 0, extra)
        on.append(seconds_on)
        off.append(seconds_off)
        print(f"round {r + 1}: probe on {seconds_on:.1f} s, off {seconds_off:.1f} s (CPU time); "
              f"same episode returns: {returns_on == returns_off} ({len(returns_on)} episodes)", flush=True)
    print(f"median CPU time: on {sorted(on)[len(on) // 2]:.1f} s, off {sorted(off)[len(off) // 2]:.1f} s; "
          f"ratio on / off {sum(on) / sum(off):.3f}")


if __name__ == "__main__":
    main()
