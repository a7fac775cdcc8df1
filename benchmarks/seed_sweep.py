"""Run a script over several seeds (two processes at a time, one thread each) and report its greedy evaluations.

    python benchmarks/seed_sweep.py dqn_cartpole.py --seeds 1-10 [--jobs 2] [-- extra flags for the script]

Prints one line per seed (eval mean, wall time) and a summary: how many seeds reached --threshold (475),
the median, mean and min. Each run's logs go to runs/ under the current directory as usual.
"""
import argparse
import concurrent.futures
import json
import os
import re
import statistics
import subprocess
import sys
import time


def parse_seeds(text):
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def run_one(script, seed, extra):
    t0 = time.time()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, script, "--seed", str(seed), *extra], capture_output=True, text=True, env=env)
    m = re.search(r"eval: ([-\d.]+) ± ([\d.]+)", out.stdout)
    if out.returncode != 0 or not m:
        return seed, None, time.time() - t0, (out.stderr.strip().splitlines() or ["?"])[-1]
    return seed, float(m.group(1)), time.time() - t0, ""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("script")
    p.add_argument("--seeds", default="1-10")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threshold", type=float, default=475.0)
    p.add_argument("--json", help="append the summary as one JSON line to this file")
    argv = sys.argv[1:]
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    a = p.parse_args(own)
    seeds = parse_seeds(a.seeds)
    results = {}
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        for seed, score, wall, err in pool.map(lambda s: run_one(a.script, s, extra), seeds):
            results[seed] = score
            print(f"seed {seed:>3}: eval {score if score is not None else 'FAILED ' + err}  ({wall:.0f}s)", flush=True)
    scores = [s for s in results.values() if s is not None]
    passed = sum(s >= a.threshold for s in scores)
    summary = {"script": a.script, "extra": extra, "seeds": seeds, "scores": [results[s] for s in seeds],
               "passed": passed, "median": statistics.median(scores) if scores else None,
               "mean": statistics.mean(scores) if scores else None, "min": min(scores) if scores else None}
    print(f"{a.script} {' '.join(extra)}: {passed}/{len(seeds)} seeds >= {a.threshold:g}; "
          f"median {summary['median']}, mean {summary['mean']}, min {summary['min']}")
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
