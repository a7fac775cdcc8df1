"""CPU time of a script's default run beside the same script at another commit, in one command, as a ratio.

    python benchmarks/bench_default_run.py                           # dqn_cartpole.py --seed 1, now and at bb6176f
    python benchmarks/bench_default_run.py --against HEAD~3 --seeds 1 2 --rounds 2

The script at `--against` is taken from git (`git show COMMIT:SCRIPT`) into a temporary folder, so a clone
reproduces the comparison; bb6176f is the code before the defaults were set to meet Lecture 03's criterion.
The two versions run one after the other, alternating, each as its own process with one torch thread; the CPU
time is the process's user + system time (os.wait4), which another job on the machine disturbs less than the
wall time. Each run also reports the episode at which its 100-episode mean of training returns first reached
195 (the lecture's "solved") and its kept model's score. The ratio is the median over the pairs.
"""
import argparse
import csv
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def episodes_to_mean(returns, threshold=195.0, window=100):
    """The first episode k >= window whose last `window` training returns average at least `threshold`."""
    returns = np.asarray(returns, dtype=float)
    if len(returns) < window:
        return None
    means = np.convolve(returns, np.ones(window) / window, mode="valid")  # means[i]: episodes i+1 .. i+window
    reached = np.flatnonzero(means >= threshold)
    return int(reached[0] + window) if len(reached) else None


def run(script_path, seed, extra):
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, script_path, "--seed", str(seed), "--no-save-model", *extra], cwd=tmp,
                                stdout=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1"))
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"error: {script_path} --seed {seed} failed")
        (run_dir,) = glob.glob(os.path.join(tmp, "runs", "*"))
        with open(os.path.join(run_dir, "episodes.csv"), newline="") as f:
            returns = [float(row["episodic_return"]) for row in csv.DictReader(f)]
        with open(os.path.join(run_dir, "eval.json")) as f:
            saved = json.load(f)
            kept = saved.get("kept_mean", saved.get("mean", saved.get("final_mean")))  # older runs: "mean" was kept
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "episodes_to_195": episodes_to_mean(returns), "kept": kept}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--script", default="dqn_cartpole.py")
    p.add_argument("--against", default="bb6176f", help="the commit whose version of the script runs beside this one")
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--rounds", type=int, default=1, help="pairs of runs per seed")
    p.add_argument("extra", nargs="*", help="flags after -- go to both versions")
    a = p.parse_args()
    shown = subprocess.run(["git", "show", f"{a.against}:{a.script}"], cwd=ROOT, capture_output=True, text=True)
    if shown.returncode != 0:
        sys.exit(f"error: cannot read {a.script} at {a.against}: {shown.stderr.strip()}")
    with tempfile.TemporaryDirectory() as tmp:
        reference = os.path.join(tmp, a.script)
        with open(reference, "w") as f:
            f.write(shown.stdout)
        ratios = []
        for seed in a.seeds:
            for _ in range(a.rounds):
                before, now = run(reference, seed, a.extra), run(os.path.join(ROOT, a.script), seed, a.extra)
                ratios.append(now["cpu_s"] / before["cpu_s"])
                for name, result in [(f"{a.script} at {a.against}", before), (f"{a.script} now", now)]:
                    print(f"seed {seed:>3}  {name:30s} CPU {result['cpu_s']:6.1f} s | 100-episode mean of 195 at episode "
                          f"{result['episodes_to_195'] or 'never'} | kept model {result['kept']:.1f}", flush=True)
    print(f"CPU time now / at {a.against}: {np.median(ratios):.2f} (median of {len(ratios)} pairs: "
          f"{', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
