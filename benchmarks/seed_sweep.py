"""Run a script over several seeds (two processes at a time, one thread each) and report its greedy evaluations.

    python benchmarks/seed_sweep.py dqn_cartpole.py --seeds 1-10 [--jobs 2] [--json out.jsonl] [-- extra flags]

One line per seed: the final model's greedy evaluation, the kept best model's (the run's `eval:` line) and
the step it was kept at, the first step at which the last 20 training episodes averaged --threshold, the
wall time, and the run's CPU time (user + system: about what the run takes
alone on an idle core, whatever else this machine is doing). Then a summary for each of the two models:
how many seeds reached --threshold (475), the median, mean and min. Run logs go to runs/ under the cwd.
"""
import argparse
import concurrent.futures
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time


def parse_seeds(text):
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def steps_to_reach(episodes_csv, threshold, window=20):
    """The first global step at which the last `window` training episodes average `threshold` (None: never)."""
    rows = list(csv.DictReader(open(episodes_csv)))
    returns = [float(r["episodic_return"]) for r in rows]
    for i in range(window - 1, len(rows)):
        if sum(returns[i + 1 - window: i + 1]) / window >= threshold:
            return int(rows[i]["global_step"])
    return None


def run_one(script, seed, extra, threshold):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.time()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, script, "--seed", str(seed), *extra], env=env, text=True,
                                stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # wait4 (not proc.wait) also returns the child's CPU time
        out.seek(0)
        text = out.read()
    final = re.search(r"eval \(final model\): ([-\d.]+)", text)
    best = re.search(r"^eval: ([-\d.]+) ± [\d.]+ over \d+ greedy episodes(?: \(the best model, kept at step (\d+))?",
                     text, re.M)
    row = {"seed": seed, "wall_s": round(time.time() - start, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
           "final": float(final.group(1)) if final else None, "best": float(best.group(1)) if best else None,
           "best_step": int(best.group(2)) if best and best.group(2) else None}
    run_dir = re.search(r"logs in (\S+)/", text)
    if run_dir and os.path.exists(os.path.join(run_dir.group(1), "episodes.csv")):
        row["steps_to_threshold"] = steps_to_reach(os.path.join(run_dir.group(1), "episodes.csv"), threshold)
    if os.waitstatus_to_exitcode(status) != 0 or not best:
        row["error"] = (text.strip().splitlines() or ["?"])[-1]
    return row


def summarize(name, scores, threshold):
    scores = [s for s in scores if s is not None]
    if not scores:
        return f"{name}: no results"
    return (f"{name}: {sum(s >= threshold for s in scores)}/{len(scores)} seeds >= {threshold:g}; median "
            f"{statistics.median(scores):.1f}, mean {statistics.mean(scores):.1f}, min {min(scores):.1f}")


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
    rows = []
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        for row in pool.map(lambda s: run_one(a.script, s, extra, a.threshold), parse_seeds(a.seeds)):
            rows.append(row)
            print(f"seed {row['seed']:>3}: final {row['final']}  best {row['best']} (kept at step {row['best_step']})  "
                  f"steps to {a.threshold:g} {row.get('steps_to_threshold')}  wall {row['wall_s']:.0f}s  cpu {row['cpu_s']:.0f}s  "
                  f"{row.get('error', '')}", flush=True)
    print(f"{a.script} {' '.join(extra)}")
    for model in ["final", "best"]:
        print("  " + summarize(f"{model} model", [r[model] for r in rows], a.threshold))
    cpu = [r["cpu_s"] for r in rows]
    print(f"  cpu time per run: median {statistics.median(cpu):.0f}s, max {max(cpu):.0f}s")
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps({"script": a.script, "extra": extra, "rows": rows}) + "\n")


if __name__ == "__main__":
    main()
