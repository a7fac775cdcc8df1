"""Train scripts over a list of seeds, then summarise them with 95% bootstrap intervals over seeds.

    python benchmarks/run_seeds.py dqn_cartpole.py double_dqn.py dueling_dqn.py per_dqn.py --seeds 1-10,101-110 --jobs 2
    python benchmarks/run_seeds.py dqn_cartpole.py --env-id Acrobot-v1 --seeds 1-5 -- --total-timesteps 100000

Each run is its own process (one thread) in benchmarks/results/runs/<script>/<env-id>/seed-<n>/, and a run whose
eval.json exists is skipped, so a sweep that was stopped goes on where it was. Flags after `--` go to every run.
The summary, per script and env and per seed group (1-10 and 101-110 are two groups: the defaults were chosen
looking at seeds 1-10, so 101-110 are the fresh seeds), reports for the kept model and the final network: how
many seeds reached the threshold, the mean, the interquartile mean and a 95% bootstrap interval of the mean over
seeds; the steps and wall time to the first greedy check at the threshold; CPU time and steps per second of CPU time. It goes to
benchmarks/results/summary.json and a markdown table on stdout. The curves the figures need are copied to
benchmarks/results/curves/<script>__<env-id>.csv (small: committed, so benchmarks/plot_results.py redraws every
figure from a clone); the run folders themselves are not committed.
"""
import argparse
import concurrent.futures
import csv
import glob
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
FROZENLAKE = "q_learning_frozenlake.py"  # tabular: its score is a success rate, its budget episodes, no checks
THRESHOLDS = {"FrozenLake-v1": 0.74, "CartPole-v1": 475.0, "Acrobot-v1": -100.0, "MountainCar-v0": -110.0, "LunarLander-v3": 200.0}
DEFAULT_ENVS = {"dqn_cartpole.py": "CartPole-v1", "double_dqn.py": "CartPole-v1", "dueling_dqn.py": "CartPole-v1",
                "per_dqn.py": "CartPole-v1", FROZENLAKE: "FrozenLake-v1"}


def parse_seed_groups(text):
    """'1-10,101-110' -> [[1..10], [101..110]]: each comma-separated part is a group reported on its own."""
    groups = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        groups.append(list(range(int(lo), int(hi or lo) + 1)))
    return groups


def run_dir_of(script, env_id, seed, root=RESULTS):
    return os.path.join(root, "runs", script.removesuffix(".py"), env_id, f"seed-{seed}")


def finished(cwd):
    return sorted(glob.glob(os.path.join(cwd, "runs", "*", "eval.json")))


def run_one(script, env_id, seed, extra, root):
    cwd = run_dir_of(script, env_id, seed, root)
    if finished(cwd):
        return "skipped"
    os.makedirs(cwd, exist_ok=True)
    for old in glob.glob(os.path.join(cwd, "runs", "*")):  # a run that was stopped half-way starts again
        subprocess.run(["rm", "-rf", old])
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.time()
    with open(os.path.join(cwd, "stdout.txt"), "w") as out:
        env_flags = [] if script == FROZENLAKE else ["--env-id", env_id]  # FrozenLake's map is --map-name
        proc = subprocess.Popen([sys.executable, os.path.join(ROOT, script), *env_flags, "--seed", str(seed), *extra],
                                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # wait4 (not proc.wait) also gives the child's CPU time
    info = {"wall_s": round(time.time() - start, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "exit_code": os.waitstatus_to_exitcode(status)}
    with open(os.path.join(cwd, "run.json"), "w") as f:
        json.dump(info, f)
    return f"exit {info['exit_code']}, {info['wall_s']:.0f}s"


def interquartile_mean(values):
    """The mean of the middle half (rliable's IQM): drops the lowest and highest quarter of the seeds."""
    values = np.sort(np.asarray(values, dtype=float))
    cut = int(len(values) * 0.25)
    return float(values[cut: len(values) - cut].mean())


def bootstrap_interval(values, rng, resamples=10_000, level=0.95):
    """Percentile bootstrap of the mean over seeds: resample the seeds with replacement."""
    values = np.asarray(values, dtype=float)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    return [float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, (1 + level) / 2))]


def read_run(script, env_id, seed, root):
    cwd = run_dir_of(script, env_id, seed, root)
    done = finished(cwd)
    if not done:
        return None
    run_dir = os.path.dirname(done[-1])
    with open(done[-1]) as f:
        result = json.load(f)
    with open(os.path.join(run_dir, "args.json")) as f:
        args = json.load(f)
    with open(os.path.join(cwd, "run.json")) as f:
        info = json.load(f)
    if script == FROZENLAKE:  # "kept": the exact success probability of the greedy policy; "final": simulated
        return {"seed": seed, "kept": result["exact_this_policy"], "final": result["success_rate"], "checks": [],
                "run_dir": run_dir, "steps": args["episodes"], **info}
    with open(os.path.join(run_dir, "checks.csv"), newline="") as f:
        checks = list(csv.DictReader(f))
    return {"seed": seed, "kept": result["mean"], "final": result.get("final_mean", result["mean"]), "checks": checks,
            "run_dir": run_dir, "steps": args["total_timesteps"], **info}


def summarize(script, env_id, seeds, threshold, root, rng):
    runs = [run for run in (read_run(script, env_id, seed, root) for seed in seeds) if run]
    if not runs:
        return None
    summary = {"script": script, "env_id": env_id, "seeds": f"{seeds[0]}-{seeds[-1]}", "runs": len(runs),
               "threshold": threshold}
    for model in ["kept", "final"]:
        scores = [run[model] for run in runs]
        summary[model] = {"reached": sum(score >= threshold for score in scores), "mean": float(np.mean(scores)),
                          "iqm": interquartile_mean(scores), "ci95": bootstrap_interval(scores, rng),
                          "scores": scores}
    # A check plays twice the env's time limit on CartPole, so its score is compared per the same threshold scaled.
    first = []
    for run in runs:
        scale = 2.0 if env_id == "CartPole-v1" else 1.0  # checks play 1,000 steps there: 475 of 500 is 950 of 1,000
        at = [row for row in run["checks"] if float(row["score"]) >= threshold * scale]
        first.append((int(at[0]["global_step"]), float(at[0]["elapsed_s"])) if at else None)
    reached = [f for f in first if f]
    summary["first_check_at_threshold"] = {
        "runs": len(reached), "median_steps": float(np.median([f[0] for f in reached])) if reached else None,
        "median_wall_s": float(np.median([f[1] for f in reached])) if reached else None}
    # CPU time (user + system) is about what a run takes alone on an idle core, whatever else the machine did
    summary["sps_median"] = float(np.median([run["steps"] / run["cpu_s"] for run in runs]))
    summary["cpu_s_median"] = float(np.median([run["cpu_s"] for run in runs]))
    summary["wall_s_median"] = float(np.median([run["wall_s"] for run in runs]))
    return summary


def export_curves(script, env_id, seeds, root):
    """One small CSV per script and env: checks, training episodes binned per 1% of the run, and the probe's Q."""
    out = os.path.join(root, "curves", f"{script.removesuffix('.py')}__{env_id}.csv")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seed", "kind", "global_step", "value", "value2"])
        for seed in seeds:
            run = read_run(script, env_id, seed, root)
            if not run:
                continue
            for row in run["checks"]:
                writer.writerow([seed, "check", row["global_step"], row["score"], row["kept"]])
            bin_size = max(1, run["steps"] // 100)
            bins = {}
            with open(os.path.join(run["run_dir"], "episodes.csv"), newline="") as episodes:
                for row in csv.DictReader(episodes):  # FrozenLake counts episodes, the DQN scripts env steps
                    step, value = (row["episode"], row["return"]) if script == FROZENLAKE else (row["global_step"], row["episodic_return"])
                    bins.setdefault((int(step) - 1) // bin_size, []).append(float(value))
            for b, returns in sorted(bins.items()):
                writer.writerow([seed, "episodes", (b + 1) * bin_size, round(float(np.mean(returns)), 2), len(returns)])
            if script == FROZENLAKE:
                continue
            with open(os.path.join(run["run_dir"], "train.csv"), newline="") as train:
                for row in csv.DictReader(train):
                    if row.get("probe_q_mean") not in (None, "", "nan"):
                        writer.writerow([seed, "probe_q", row["global_step"], round(float(row["probe_q_mean"]), 3),
                                         round(float(row["probe_q_max"]), 3)])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("scripts", nargs="+")
    p.add_argument("--env-id", help="default: each script's own (CartPole-v1)")
    p.add_argument("--seeds", default="1-10,101-110", help="comma-separated groups, each reported on its own")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    p.add_argument("--threshold", type=float, help="default: the env's (CartPole 475, Acrobot -100, MountainCar -110)")
    p.add_argument("--root", default=RESULTS, help="where runs/, curves/ and summary.json go")
    p.add_argument("--summary-only", action="store_true", help="train nothing: summarise the runs there are")
    argv = sys.argv[1:] if argv is None else argv
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    a = p.parse_args(own)
    groups = parse_seed_groups(a.seeds)
    jobs = [(script, a.env_id or DEFAULT_ENVS.get(script, "CartPole-v1"), seed) for script in a.scripts
            for group in groups for seed in group]
    if not a.summary_only:
        with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
            futures = {pool.submit(run_one, script, env_id, seed, extra, a.root): (script, env_id, seed)
                       for script, env_id, seed in jobs}
            for future in concurrent.futures.as_completed(futures):
                script, env_id, seed = futures[future]
                print(f"{script} {env_id} seed {seed}: {future.result()}", flush=True)

    rng = np.random.default_rng(0)  # the bootstrap's own generator: the same runs give the same intervals
    summaries = []
    for script, env_id in dict.fromkeys((script, env_id) for script, env_id, _ in jobs):
        threshold = a.threshold if a.threshold is not None else THRESHOLDS.get(env_id, 0.0)
        for group in groups:
            summary = summarize(script, env_id, group, threshold, a.root, rng)
            if summary:
                summaries.append(summary)
        export_curves(script, env_id, [seed for group in groups for seed in group], a.root)
    path = os.path.join(a.root, "summary.json")
    saved = []
    if os.path.exists(path):
        with open(path) as f:
            saved = [s for s in json.load(f) if (s["script"], s["env_id"], s["seeds"]) not in
                     {(t["script"], t["env_id"], t["seeds"]) for t in summaries}]
    with open(path, "w") as f:
        json.dump(saved + summaries, f, indent=1)
    print("| script | env | seeds | kept: reached, mean [95% CI], IQM | final: reached, mean [95% CI], IQM "
          "| first check at threshold: steps, wall | run (CPU time) | SPS (CPU time) |")
    print("|---|---|---|---|---|---|---|---|")
    for s in summaries:
        cells = []
        for model in ["kept", "final"]:
            m = s[model]
            d = 4 if abs(m["mean"]) < 2 else 1  # success rates (FrozenLake) need more digits than returns
            cells.append(f"{m['reached']}/{s['runs']}, {m['mean']:.{d}f} [{m['ci95'][0]:.{d}f}, {m['ci95'][1]:.{d}f}], {m['iqm']:.{d}f}")
        first = s["first_check_at_threshold"]
        at = (f"{first['median_steps']:,.0f}, {first['median_wall_s']:.0f} s ({first['runs']}/{s['runs']})"
              if first["runs"] else "never")
        print(f"| {s['script']} | {s['env_id']} | {s['seeds']} | {cells[0]} | {cells[1]} | {at} | {s['cpu_s_median']:.0f} s | {s['sps_median']:,.0f} |")


if __name__ == "__main__":
    main()
