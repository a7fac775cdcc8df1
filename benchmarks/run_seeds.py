"""Train scripts over a list of seeds, then summarise them with 95% bootstrap intervals over seeds.

    python benchmarks/run_seeds.py dqn_cartpole.py double_dqn.py dueling_dqn.py per_dqn.py --seeds 1-10,101-110 --jobs 2
    python benchmarks/run_seeds.py dqn_cartpole.py --env-id Acrobot-v1 --seeds 1-5 -- --total-timesteps 100000
    python benchmarks/run_seeds.py benchmarks/lecture_dqn.py --seeds 1-10       # Lecture 03's DQN, measured the same way
    python benchmarks/run_seeds.py dqn_cartpole.py --seeds 1-20 --print-commands | parallel -j 8   # elsewhere
    python benchmarks/run_seeds.py dqn_cartpole.py --seeds 1-20 --slurm --submit --max-running 8 --time 00:30:00
    python benchmarks/run_seeds.py dqn_cartpole.py --seeds 1-20 --summary-only   # what finished, from any of them

A run is one script, env, set of flags and seed. Flags after `--` go to every run of the sweep and are part of
its identity: each run is its own process (one thread) in
benchmarks/results/runs/<script>/<env-id>/<flags-tag>/seed-<n>/, where the tag is "defaults" without flags,
else the flags made readable and cut short, then 8 hex digits of their SHA-256 (as typed: the same flags in
another order are another tag). A run whose eval.json exists is skipped, so a sweep that was stopped goes on
where it was, and runs with other flags never share a folder or a summary.

The summary, per script, env, flags and seed group (1-10 and 101-110 are two groups: the defaults were chosen
looking at seeds 1-10, so 101-110 are the fresh seeds), reports the budget (total timesteps, or episodes for
FrozenLake and the lecture's DQN) and for the kept model and the final network: how many seeds reached the
threshold, the mean, the interquartile mean and a 95% bootstrap interval of the mean over seeds; the steps and
wall time to the first greedy check at the threshold; CPU time and env steps per second of CPU time. On
CartPole-v1 it also reports Lecture 03's criterion ("solves CartPole, avg reward > 195, in < 200 episodes"): the
first training episode k >= 100 at which the mean return of episodes k-99..k is at least 195, how many seeds met
it within 200 episodes, and the median over seeds of k with a 95% bootstrap interval. Each summary's bootstrap
has its own generator, seeded from a SHA-256 of what it summarises (script, env, flags, seeds), so the same runs
give the same intervals whatever else is summarised with them. It all goes to benchmarks/results/summary.json
(per seed too) and a markdown table on stdout. The curves the figures need are copied to
benchmarks/results/curves/<script>__<env-id>.csv (<script>__<env-id>__<flags-tag>.csv with flags; small:
committed, so benchmarks/plot_results.py redraws every figure from a clone); the run folders are not committed.

--print-commands prints one self-contained shell line per run still to do (for GNU parallel or
`xargs -d '\\n' -P N -I{} sh -c {}`); --slurm writes one sbatch array script, one task per run still to do, and
prints its path (--submit also hands it to sbatch). Either way each line runs the script in the same run
folder through `run_seeds.py --measure`, which records the CPU time, so --summary-only summarises them as
though they had run here. docs/sweeps.md has the whole recipe.
"""
import argparse
import concurrent.futures
import csv
import glob
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from provenance import hashes, record  # noqa: E402  (each run records the blob hash of the script it ran)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
FROZENLAKE = "q_learning_frozenlake.py"  # tabular: its score is a success rate, its budget episodes, no checks
LECTURE = "benchmarks/lecture_dqn.py"  # Lecture 03's DQN: a budget of episodes, no checks, one greedy evaluation
THRESHOLDS = {"FrozenLake-v1": 0.74, "CartPole-v1": 475.0, "Acrobot-v1": -100.0, "MountainCar-v0": -110.0, "LunarLander-v3": 200.0}
DEFAULT_ENVS = {"dqn_cartpole.py": "CartPole-v1", "double_dqn.py": "CartPole-v1", "dueling_dqn.py": "CartPole-v1",
                "per_dqn.py": "CartPole-v1", FROZENLAKE: "FrozenLake-v1", LECTURE: "CartPole-v1"}
# Lecture 03: DQN "should solve CartPole (avg reward > 195) in < 200 episodes", with the usual 100-episode window.
LECTURE_BAR, LECTURE_WINDOW, LECTURE_EPISODES = 195.0, 100, 200
NEVER = float("inf")  # episodes to the criterion of a seed that never met it: more than any seed that did


class ArgumentParser(argparse.ArgumentParser):
    """argparse's own complaints end in one `error:` line too."""

    def error(self, message):
        fail(message)


def fail(message):
    """Bad input: one line on stderr and exit code 2, never a traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_seed_groups(text):
    """'1-10,101-110' -> [[1..10], [101..110]]: each comma-separated part is a group reported on its own."""
    groups = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match or int(match[2] or match[1]) < int(match[1]):
            fail(f"--seeds takes groups like 1-10,101-110 (each LO-HI with LO <= HI, or one seed), got {text!r}")
        groups.append(list(range(int(match[1]), int(match[2] or match[1]) + 1)))
    return groups


def flags_tag(extra):
    """The folder name of a set of flags: "defaults" for none, else a readable start and 8 hex digits of a hash.

    ['--total-timesteps', '1000', '--no-anneal-lr'] -> 'total-timesteps=1000_no-anneal-lr_<sha256[:8]>'. The hash
    is over the whole list, so flags that the cut drops, or that only differ in characters made readable, still
    give another tag. No "__" in it: the curves' file names split on that.
    """
    if not extra:
        return "defaults"
    parts = []
    for token in extra:
        word = re.sub(r"[^A-Za-z0-9.+=-]+", "-", token.lstrip("-") if token.startswith("--") else token).strip("-") or "-"
        if parts and not token.startswith("--") and parts[-1][1]:  # a flag's value joins it: name=value
            parts[-1] = (f"{parts[-1][0]}={word}", False)
        else:
            parts.append((word, token.startswith("--")))
    readable = "_".join(word for word, _ in parts)[:40].rstrip("_=-")
    digest = hashlib.sha256(json.dumps(list(extra)).encode()).hexdigest()[:8]
    return f"{readable}_{digest}" if readable else digest


def script_name(script):
    return os.path.basename(script).removesuffix(".py")


def run_dir_of(script, env_id, seed, extra=(), root=RESULTS):
    return os.path.join(root, "runs", script_name(script), env_id, flags_tag(extra), f"seed-{seed}")


def finished(cwd):
    return sorted(glob.glob(os.path.join(cwd, "runs", "*", "eval.json")))


def training_command(script, env_id, seed, extra):
    """The command that trains one run, with absolute paths (it runs with the run folder as its directory)."""
    env_flags = [] if script == FROZENLAKE else ["--env-id", env_id]  # FrozenLake's map is --map-name
    return [sys.executable, os.path.join(ROOT, script), *env_flags, "--seed", str(seed), *extra]


def measure(command, cwd="."):
    """Run one training command in `cwd`: the output goes to stdout.txt, and run.json gets its wall time, its CPU
    time (os.wait4 gives the child's) and exit code."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.time()
    with open(os.path.join(cwd, "stdout.txt"), "w") as out:
        try:
            proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        except OSError as e:
            fail(f"cannot start {command[0]}: {e}")
        _, status, usage = os.wait4(proc.pid, 0)
    info = {"wall_s": round(time.time() - start, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "exit_code": os.waitstatus_to_exitcode(status), "command": command,
            "sources": hashes([path for path in command[1:2] if path.endswith(".py")])}
    with open(os.path.join(cwd, "run.json"), "w") as f:
        json.dump(info, f)
    return info


def run_one(script, env_id, seed, extra, root):
    cwd = run_dir_of(script, env_id, seed, extra, root)
    if finished(cwd):
        return "skipped"
    os.makedirs(cwd, exist_ok=True)
    shutil.rmtree(os.path.join(cwd, "runs"), ignore_errors=True)  # a run that was stopped half-way starts again
    info = measure(training_command(script, env_id, seed, extra), cwd)
    return f"exit {info['exit_code']}, {info['wall_s']:.0f}s"


def shell_line(script, env_id, seed, extra, root):
    """One self-contained shell line that does what run_one does, from any directory on any machine that sees
    these paths: make the run folder, go there, drop what a stopped run left, one thread, measure the command."""
    cwd = run_dir_of(script, env_id, seed, extra, root)
    measured = [sys.executable, os.path.abspath(__file__), "--measure", *training_command(script, env_id, seed, extra)]
    return (f"mkdir -p {shlex.quote(cwd)} && cd {shlex.quote(cwd)} && rm -rf runs && OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "
            + shlex.join(measured))


def slurm_script(lines, root, max_running=None, time_limit=None, partition=None):
    """One sbatch array script: task i runs line i. Written under <root>/slurm/, named by a hash of its lines."""
    name = "sweep-" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:10]
    folder = os.path.join(root, "slurm")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.sbatch")
    array = f"0-{len(lines) - 1}" + (f"%{max_running}" if max_running else "")
    header = ["#!/bin/bash", "#SBATCH --job-name=run_seeds", f"#SBATCH --array={array}", "#SBATCH --cpus-per-task=1",
              "#SBATCH --ntasks=1", f"#SBATCH --output={os.path.join(folder, name)}-%a.out"]
    if time_limit:
        header.append(f"#SBATCH --time={time_limit}")
    if partition:
        header.append(f"#SBATCH --partition={partition}")
    body = ["# one run per array task; each writes its own run folder (stdout.txt, run.json, runs/...)",
            "commands=(", *[shlex.quote(line) for line in lines], ")",
            'bash -c "${commands[$SLURM_ARRAY_TASK_ID]}"']
    with open(path, "w") as f:
        f.write("\n".join(header + body) + "\n")
    return path


def interquartile_mean(values):
    """The mean of the middle half (rliable's IQM): drops the lowest and highest quarter of the seeds."""
    values = np.sort(np.asarray(values, dtype=float))
    cut = int(len(values) * 0.25)
    return float(values[cut: len(values) - cut].mean())


def bootstrap_rng(script, env_id, extra, seeds):
    """The bootstrap's generator for one summary, from a SHA-256 of what it summarises (Python's hash() of a str
    changes from process to process): the same runs give the same intervals, alone or after other groups."""
    key = json.dumps([script, env_id, list(extra), sorted(int(seed) for seed in seeds)])
    entropy = int.from_bytes(hashlib.sha256(key.encode()).digest()[:16], "big")
    return np.random.default_rng(np.random.SeedSequence(entropy))


def bootstrap_interval(values, rng, resamples=10_000, level=0.95):
    """Percentile bootstrap of the mean over seeds: resample the seeds with replacement."""
    values = np.asarray(values, dtype=float)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    return [float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, (1 + level) / 2))]


def wilson(k, n, z=1.96):
    """95% Wilson score interval of a proportion k/n: it stays inside [0, 1] and does not collapse at 0 or n."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def prob_improvement(x, y, rng, resamples=10_000):
    """P(X > Y) + P(X = Y) / 2 over pairs (x[i], y[i]) of the same seed, and a 95% percentile bootstrap interval
    (the seeds resampled with replacement, the pairs kept together)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    wins = (x > y) + 0.5 * (x == y)
    means = wins[rng.integers(0, len(wins), size=(resamples, len(wins)))].mean(axis=1)
    return float(wins.mean()), [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def median_with_never(values, rng, resamples=10_000, level=0.95):
    """Median over seeds of episodes to a criterion, None (never met) counting as more than any number: the median
    is None when it falls on such a seed (or half-way to one), so at least half the seeds must meet the criterion.
    The 95% interval is a percentile bootstrap of the median; its bounds are resample medians (inverted CDF, no
    interpolation), so a bound is a number of episodes, or None."""
    x = np.array([NEVER if v is None else v for v in values], dtype=float)
    medians = np.median(x[rng.integers(0, len(x), size=(resamples, len(x)))], axis=1)
    bounds = [np.quantile(medians, q, method="inverted_cdf") for q in ((1 - level) / 2, (1 + level) / 2)]
    finite = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731
    return finite(np.median(x)), [finite(b) for b in bounds]


def episodes_to_mean(returns, bar=LECTURE_BAR, window=LECTURE_WINDOW, partial=False):
    """The first episode k (counted from 1) with mean(returns[k - window:k]) >= bar, k >= window; None if none.

    partial=True is the looser reading, the mean of the last min(k, window) returns, so from the first episode on.
    """
    returns = np.asarray(returns, dtype=float)
    ks = np.arange(1 if partial else window, len(returns) + 1)
    if not len(ks):
        return None
    sums = np.concatenate([[0.0], np.cumsum(returns)])
    lo = np.maximum(ks - window, 0)
    hits = np.flatnonzero((sums[ks] - sums[lo]) / (ks - lo) >= bar)
    return int(ks[hits[0]]) if len(hits) else None


def read_csv_rows(path):
    """The rows of a CSV a run writes (none if it is not there), without a half-written last line."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [row for row in rows if None not in row.values() and "" not in row.values()]


def read_episodes(run_dir, frozen):
    """Each training episode's return, the env step it ended at and the seconds since the run started (None where
    episodes.csv has no elapsed_s column). FrozenLake writes episode, return, length: its steps are summed lengths."""
    rows = read_csv_rows(os.path.join(run_dir, "episodes.csv"))
    if frozen:
        returns = [float(row["return"]) for row in rows]
        steps = np.cumsum([int(row["length"]) for row in rows]).tolist()
    else:
        returns = [float(row["episodic_return"]) for row in rows]
        steps = [int(row["global_step"]) for row in rows]
    elapsed = [float(row["elapsed_s"]) for row in rows] if rows and "elapsed_s" in rows[0] else None
    return returns, steps, elapsed


def read_run(script, env_id, seed, extra, root):
    cwd = run_dir_of(script, env_id, seed, extra, root)
    done = finished(cwd)
    if not done:
        return None
    run_dir = os.path.dirname(done[-1])
    with open(done[-1]) as f:
        result = json.load(f)
    with open(os.path.join(run_dir, "args.json")) as f:
        args = json.load(f)
    info = {"wall_s": None, "cpu_s": None}
    if os.path.exists(os.path.join(cwd, "run.json")):
        with open(os.path.join(cwd, "run.json")) as f:
            info.update({key: value for key, value in json.load(f).items() if key in ("wall_s", "cpu_s", "exit_code", "sources")})
    returns, steps, elapsed = read_episodes(run_dir, script == FROZENLAKE)
    run = {"seed": seed, "run_dir": run_dir, "returns": returns, "episode_steps": steps, "elapsed": elapsed, **info}
    if script == FROZENLAKE:  # "kept": the exact success probability of the greedy policy; "final": simulated
        return {**run, "kept": result["exact_this_policy"], "final": result["success_rate"], "checks": [],
                "budget": {"episodes": args["episodes"]}, "steps": steps[-1] if steps else 0}
    budget = ({"total_timesteps": args["total_timesteps"]} if "total_timesteps" in args else {"episodes": args["episodes"]})
    final = result.get("final_mean", result.get("mean"))  # the lecture's DQN writes "mean" alone
    kept = result.get("kept_mean", result.get("mean", final))  # a run without checks kept nothing: its final network
    probe = [row for row in read_csv_rows(os.path.join(run_dir, "train.csv")) if row.get("probe_q_mean") not in (None, "nan")]
    run.update(peak_mean_q=max((float(row["probe_q_mean"]) for row in probe), default=None),
               peak_max_q=max((float(row["probe_q_max"]) for row in probe), default=None))
    return {**run, "kept": kept, "final": final,
            "checks": read_csv_rows(os.path.join(run_dir, "checks.csv")), "budget": budget,
            "steps": args.get("total_timesteps", steps[-1] if steps else 0)}


def check_bar(env_id, threshold):
    """A check plays twice the env's time limit on CartPole (1,000 steps): 475 of 500 is 950 of 1,000 there."""
    return threshold * (2.0 if env_id == "CartPole-v1" else 1.0)


def summarize(script, env_id, extra, seeds, threshold, root):
    runs = [run for run in (read_run(script, env_id, seed, extra, root) for seed in seeds) if run]
    if not runs:
        return None
    rng = bootstrap_rng(script, env_id, extra, [run["seed"] for run in runs])
    summary = {"script": script, "env_id": env_id, "flags": list(extra), "flags_tag": flags_tag(extra),
               "budget": runs[0]["budget"], "seeds": f"{seeds[0]}-{seeds[-1]}", "runs": len(runs), "threshold": threshold}
    for model in ["kept", "final"]:
        scores = [run[model] for run in runs]
        summary[model] = {"reached": sum(score >= threshold for score in scores), "mean": float(np.mean(scores)),
                          "iqm": interquartile_mean(scores), "ci95": bootstrap_interval(scores, rng),
                          "scores": scores}
    per_seed = []
    for run in runs:
        at = [row for row in run["checks"] if float(row["score"]) >= check_bar(env_id, threshold)]
        entry = {"seed": run["seed"], "kept": run["kept"], "final": run["final"], "episodes": len(run["returns"]),
                 "peak_mean_q": run.get("peak_mean_q"), "peak_max_q": run.get("peak_max_q"),
                 "first_check_at_threshold": {"step": int(at[0]["global_step"]), "wall_s": float(at[0]["elapsed_s"])} if at else None}
        if env_id == "CartPole-v1":
            k = episodes_to_mean(run["returns"])
            entry.update(episodes_to_195=k, within_200=k is not None and k <= LECTURE_EPISODES,
                         step_at_195=run["episode_steps"][k - 1] if k else None,
                         wall_s_at_195=run["elapsed"][k - 1] if k and run["elapsed"] else None,
                         episodes_to_195_partial_window=episodes_to_mean(run["returns"], partial=True))
        per_seed.append(entry)
    reached = [entry["first_check_at_threshold"] for entry in per_seed if entry["first_check_at_threshold"]]
    summary["first_check_at_threshold"] = {
        "runs": len(reached), "check_bar": check_bar(env_id, threshold),
        "median_steps": float(np.median([r["step"] for r in reached])) if reached else None,
        "median_wall_s": float(np.median([r["wall_s"] for r in reached])) if reached else None}
    if env_id == "CartPole-v1":
        ks = [entry["episodes_to_195"] for entry in per_seed]
        median, interval = median_with_never(ks, rng)
        summary["lecture_criterion"] = {
            "what": f"first episode k >= {LECTURE_WINDOW} with a mean return of episodes k-{LECTURE_WINDOW - 1}..k "
                    f">= {LECTURE_BAR:g} (training, epsilon-greedy); a seed that never meets it counts as more "
                    "episodes than any that did, and a median or bound that falls on such a seed is null",
            "met": sum(k is not None for k in ks), "within_200": sum(entry["within_200"] for entry in per_seed),
            "median_episodes": median, "ci95_median_episodes": interval}
    peaks = [run["peak_mean_q"] for run in runs if run.get("peak_mean_q") is not None]
    if peaks:  # the probe: Q on random-policy states, logged in train.csv (on CartPole no return is above 100)
        summary["probe_q"] = {"peak_mean_q_median": float(np.median(peaks)),
                              "runs_max_q_over_1000": sum(run["peak_max_q"] > 1000 for run in runs if run.get("peak_max_q")),
                              "max_q": float(max(run["peak_max_q"] for run in runs if run.get("peak_max_q") is not None))}
    # CPU time (user + system) is about what a run takes alone on an idle core, whatever else the machine did
    timed = [run for run in runs if run["cpu_s"]]
    summary["sps_median"] = float(np.median([run["steps"] / run["cpu_s"] for run in timed])) if timed else None
    if script == FROZENLAKE:
        summary["episodes_per_cpu_s_median"] = (float(np.median([len(run["returns"]) / run["cpu_s"] for run in timed]))
                                                if timed else None)
    summary["cpu_s_median"] = float(np.median([run["cpu_s"] for run in timed])) if timed else None
    summary["wall_s_median"] = float(np.median([run["wall_s"] for run in timed])) if timed else None
    summary["per_seed"] = per_seed
    sources = [run.get("sources") for run in runs]  # the script's hash, if every run ran the same file
    summary["sources"] = sources[0] if sources[0] and all(source == sources[0] for source in sources) else None
    return summary


def curves_path(script, env_id, extra, root):
    tag = flags_tag(extra)
    return os.path.join(root, "curves", f"{script_name(script)}__{env_id}" + ("" if tag == "defaults" else f"__{tag}") + ".csv")


def export_curves(script, env_id, extra, seeds, root):
    """One small CSV per script, env and flags: checks, training episodes binned per 1% of the run, the probe's Q, and
    (DQN) the 100-episode mean of training returns every 5th episode up to episode 1,000."""
    out = curves_path(script, env_id, extra, root)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seed", "kind", "global_step", "value", "value2"])
        for seed in seeds:
            run = read_run(script, env_id, seed, extra, root)
            if not run:
                continue
            for row in run["checks"]:
                writer.writerow([seed, "check", row["global_step"], row["score"], row["kept"]])
            # FrozenLake counts episodes, the DQN scripts env steps
            x = range(1, len(run["returns"]) + 1) if script == FROZENLAKE else run["episode_steps"]
            end = run["budget"].get("episodes" if script == FROZENLAKE else "total_timesteps") or (x[-1] if len(x) else 1)
            bin_size = max(1, end // 100)
            bins = {}
            for step, value in zip(x, run["returns"]):
                bins.setdefault((int(step) - 1) // bin_size, []).append(value)
            for b, returns in sorted(bins.items()):
                writer.writerow([seed, "episodes", (b + 1) * bin_size, round(float(np.mean(returns)), 2), len(returns)])
            if script != FROZENLAKE:  # Lecture 03's measure: the mean of the last 100 training returns, per episode
                means = np.convolve(run["returns"], np.ones(100) / 100, mode="valid")  # means[i]: episodes i+1 .. i+100
                for episode in range(100, min(len(run["returns"]), 1000) + 1, 5):
                    writer.writerow([seed, "mean100", episode, round(float(means[episode - 100]), 2), 0])
            for row in read_csv_rows(os.path.join(run["run_dir"], "train.csv")):
                if row.get("probe_q_mean") not in (None, "", "nan"):
                    writer.writerow([seed, "probe_q", row["global_step"], round(float(row["probe_q_mean"]), 3),
                                     round(float(row["probe_q_max"]), 3)])
    return out


def save_summaries(summaries, root):
    """summary.json: these summaries replace the saved ones with the same script, env, seeds and flags (and a saved
    one without a flags_tag for the same script, env and seeds); every other saved one stays."""
    path = os.path.join(root, "summary.json")
    saved = []
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
    new = {(s["script"], s["env_id"], s["seeds"], s["flags_tag"]) for s in summaries}
    untagged = {key[:3] for key in new}
    saved = [s for s in saved if (s["script"], s["env_id"], s["seeds"], s.get("flags_tag")) not in new
             and not ("flags_tag" not in s and (s["script"], s["env_id"], s["seeds"]) in untagged)]
    with open(path, "w") as f:
        json.dump(saved + summaries, f, indent=1)
    return path


def budget_text(budget):
    return f"{budget['total_timesteps']:,} steps" if "total_timesteps" in budget else f"{budget['episodes']:,} episodes"


def markdown_table(summaries):
    lines = ["| script | env | flags | budget | seeds | kept: reached, mean [95% CI], IQM | final: reached, mean [95% CI], IQM "
             "| first check at threshold: steps, wall | Lecture 03: 100-episode mean >= 195 within 200 episodes; "
             "median episodes [95% CI] | run (CPU time) | SPS (env steps per CPU second) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        cells = []
        for model in ["kept", "final"]:
            m = s[model]
            d = 4 if abs(m["mean"]) < 2 else 1  # success rates (FrozenLake) need more digits than returns
            cells.append(f"{m['reached']}/{s['runs']}, {m['mean']:.{d}f} [{m['ci95'][0]:.{d}f}, {m['ci95'][1]:.{d}f}], {m['iqm']:.{d}f}")
        first = s["first_check_at_threshold"]
        at = (f"{first['median_steps']:,.0f}, {first['median_wall_s']:.0f} s ({first['runs']}/{s['runs']})"
              if first["runs"] else "never")
        lecture = "-"
        if "lecture_criterion" in s:
            c = s["lecture_criterion"]
            show = lambda v: "not met" if v is None else f"{v:.0f}"  # noqa: E731
            lecture = (f"{c['within_200']}/{s['runs']}; {show(c['median_episodes'])} "
                       f"[{show(c['ci95_median_episodes'][0])}, {show(c['ci95_median_episodes'][1])}]")
        cpu = "-" if s["cpu_s_median"] is None else f"{s['cpu_s_median']:.0f} s"
        sps = "-" if s["sps_median"] is None else f"{s['sps_median']:,.0f}"
        if s.get("episodes_per_cpu_s_median"):
            sps += f" ({s['episodes_per_cpu_s_median']:,.0f} episodes/s)"
        flags = shlex.join(s["flags"]) if s["flags"] else "defaults"
        lines.append(f"| {s['script']} | {s['env_id']} | {flags} | {budget_text(s['budget'])} | {s['seeds']} | {cells[0]} "
                     f"| {cells[1]} | {at} | {lecture} | {cpu} | {sps} |")
    return "\n".join(lines)


def resolve_script(script):
    """A training script: a path from the repository root (dqn_cartpole.py, benchmarks/lecture_dqn.py)."""
    if os.path.isfile(os.path.join(ROOT, script)):
        return os.path.normpath(script)
    if os.path.isfile(os.path.join(ROOT, "benchmarks", script)):
        return f"benchmarks/{script}"
    fail(f"no script {script} in {ROOT} (give its path from there, e.g. dqn_cartpole.py or benchmarks/lecture_dqn.py)")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--measure"]:  # what one line of --print-commands or of the sbatch script runs
        if len(argv) < 2:
            fail("--measure needs a command to run")
        sys.exit(measure(argv[1:])["exit_code"])
    p = ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("scripts", nargs="+")
    p.add_argument("--env-id", help="default: each script's own (CartPole-v1)")
    p.add_argument("--seeds", default="1-10,101-110", help="comma-separated groups, each reported on its own")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time here (one thread each)")
    p.add_argument("--threshold", type=float, help="default: the env's (CartPole 475, Acrobot -100, MountainCar -110)")
    p.add_argument("--root", default=RESULTS, help="where runs/, curves/, slurm/ and summary.json go")
    p.add_argument("--summary-only", action="store_true", help="train nothing: summarise the runs that finished")
    p.add_argument("--print-commands", action="store_true", help="train nothing: print one shell line per run still to do")
    p.add_argument("--slurm", action="store_true", help="train nothing: write an sbatch array script for the runs still to do")
    p.add_argument("--submit", action="store_true", help="--slurm, then run sbatch on the script")
    p.add_argument("--max-running", type=int, help="with --slurm: at most this many array tasks at once (--array=0-N%%K)")
    p.add_argument("--time", help="with --slurm: each task's time limit (#SBATCH --time), e.g. 00:30:00")
    p.add_argument("--partition", help="with --slurm: the partition (#SBATCH --partition)")
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    a = p.parse_args(own)
    a.slurm = a.slurm or a.submit
    if sum([a.summary_only, a.print_commands, a.slurm]) > 1:
        fail("--summary-only, --print-commands and --slurm (--submit) are different modes: give one")
    if (a.max_running is not None or a.time or a.partition) and not a.slurm:
        fail("--max-running, --time and --partition go with --slurm")
    if a.jobs < 1 or (a.max_running is not None and a.max_running < 1):
        fail("--jobs and --max-running must be at least 1")
    for flag in ("--seed", "--env-id"):
        if any(token == flag or token.startswith(flag + "=") for token in extra):
            fail(f"{flag} after `--`: run_seeds.py sets it for each run (give --seeds / --env-id before `--`)")
    a.root = os.path.abspath(a.root)
    scripts = list(dict.fromkeys(resolve_script(script) for script in a.scripts))
    groups = parse_seed_groups(a.seeds)
    jobs = [(script, a.env_id or DEFAULT_ENVS.get(script, "CartPole-v1"), seed) for script in scripts
            for group in groups for seed in group]

    if a.print_commands or a.slurm:
        todo = [job for job in jobs if not finished(run_dir_of(*job, extra, a.root))]
        lines = [shell_line(script, env_id, seed, extra, a.root) for script, env_id, seed in todo]
        if a.print_commands:
            for line in lines:
                print(line)
            print(f"{len(lines)} of {len(jobs)} runs to do ({len(jobs) - len(lines)} finished)", file=sys.stderr)
            return
        if not lines:
            print(f"nothing to submit: all {len(jobs)} runs have finished")
            return
        path = slurm_script(lines, a.root, a.max_running, a.time, a.partition)
        print(f"wrote {path} ({len(lines)} array tasks; {len(jobs) - len(lines)} of {len(jobs)} runs had finished)")
        if a.submit:
            try:
                sub = subprocess.run(["sbatch", path], capture_output=True, text=True)
            except FileNotFoundError:
                fail("sbatch not found: is SLURM installed here? (the script is written; submit it where it is)")
            if sub.returncode:
                print(f"error: sbatch failed: {sub.stderr.strip() or sub.stdout.strip()}", file=sys.stderr)
                sys.exit(1)
            print(sub.stdout.strip())
        then = ["python", os.path.relpath(os.path.abspath(__file__)), *argv_without_modes(argv)]
        print(f"then, once the tasks have run: {shlex.join(then)}")
        return

    if not a.summary_only:
        with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
            futures = {pool.submit(run_one, script, env_id, seed, extra, a.root): (script, env_id, seed)
                       for script, env_id, seed in jobs}
            for future in concurrent.futures.as_completed(futures):
                script, env_id, seed = futures[future]
                print(f"{script} {env_id} seed {seed}: {future.result()}", flush=True)

    summaries = []
    for script, env_id in dict.fromkeys((script, env_id) for script, env_id, _ in jobs):
        threshold = a.threshold if a.threshold is not None else THRESHOLDS.get(env_id, 0.0)
        found = [s for s in (summarize(script, env_id, extra, group, threshold, a.root) for group in groups) if s]
        if found:  # no curves file for a script and env with no finished run
            path = export_curves(script, env_id, extra, [seed for group in groups for seed in group], a.root)
            same = all(s["sources"] and s["sources"] == found[0]["sources"] for s in found)
            repository = os.path.dirname(os.path.dirname(a.root))  # <repository>/benchmarks/results
            record(os.path.relpath(path, repository), scripts=found[0]["sources"] if same else {script: "unknown"},
                   command=sweep_command(argv),
                   at=os.path.join(a.root, "sources.json"))
        summaries += found
    save_summaries(summaries, a.root)
    print(markdown_table(summaries))


def sweep_command(argv):
    """The sweep's command as it makes its results again: without the modes (--summary-only, --slurm, ...) and
    without --root (where the results went is not part of what made them)."""
    kept = []
    for token in [token for token in argv_without_modes(argv) if token != "--summary-only"]:
        if kept and kept[-1] == "--root" and "--" not in kept:
            kept.pop()
        elif not token.startswith("--root=") or "--" in kept:
            kept.append(token)
    return shlex.join(["python", "benchmarks/run_seeds.py", *kept])


def argv_without_modes(argv):
    """The sweep's command line with --summary-only in place of the --slurm/--submit flags (and their values)."""
    own, extra = (argv[: argv.index("--")], argv[argv.index("--"):]) if "--" in argv else (argv, [])
    kept, skip = [], False
    for token in own:
        if skip:
            skip = False
            continue
        name = token.split("=")[0]
        if name in ("--slurm", "--submit"):
            continue
        if name in ("--max-running", "--time", "--partition"):
            skip = "=" not in token
            continue
        kept.append(token)
    return [*kept, "--summary-only", *extra]


if __name__ == "__main__":
    main()
