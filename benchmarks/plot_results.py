"""Draw the figures in docs/ from the small CSVs that benchmarks/run_seeds.py keeps, or one PNG of your own runs.

    python benchmarks/plot_results.py                       # every figure there is data for
    python benchmarks/plot_results.py --curves DIR --out DIR
    python benchmarks/plot_results.py runs/<run> [runs/<run> ...] [--png FILE]   # your runs, while they go too

Run folders (what a script writes: runs/<env>__<exp-name>__<seed>__<time>/) give one PNG, by default RUN/plot.png
for one run and plot_runs.png (here) for several, overlaid with a legend of script and seed. A DQN run's PNG has the
training returns per episode with their 100-episode mean (on CartPole the lines 195, Lecture 03's bar, and 475, and
the first episode whose last 100 average 195), the greedy checks (checks.csv; on CartPole against 950 of a check's
1,000 steps) and the probe's mean and max Q (train.csv) against the bound 1/(1 - γ); a q_learning_frozenlake.py run's
its success rate per episode (mean of the last 100) against the best achievable. It reads whatever is there: a run
still going (a half-written row, checks.csv with a header alone, no eval.json) or stopped.

Redrawing the docs' figures from benchmarks/results/curves/:

Every curve is the mean over seeds with a 95% bootstrap band (the seeds resampled with replacement, numpy only),
but the overestimation figure, where one diverging seed would move a mean:
- docs/cartpole.png: the four CartPole DQN scripts, greedy checks (left) and training episodes (right);
- docs/overestimation.png: the mean Q on the probe states, the median over seeds per script, with the bound 1/(1 - γ);
- docs/frozenlake.png: Q-learning's success against training episodes, the DP optimum drawn as lines;
- docs/breakout.png: the CPU-sized Breakout run against the random policy's score;
- docs/<env>.png for any other env in the curves (Acrobot-v1, MountainCar-v0, ...).
matplotlib is needed here only; the training scripts never import it.
"""
import argparse
import csv
import glob
import hashlib
import json
import os
import sys
import warnings
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import provenance  # noqa: E402  (each docs figure records the files it was drawn from)
COLORS = {"dqn_cartpole": "tab:blue", "double_dqn": "tab:orange", "dueling_dqn": "tab:green", "per_dqn": "tab:red"}
THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "MountainCar-v0": -110.0, "LunarLander-v3": 200.0}


def read_curves(path):
    """{kind: {seed: (steps, values, values2)}} from one curves CSV."""
    rows = defaultdict(lambda: defaultdict(list))
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows[row["kind"]][int(row["seed"])].append((int(row["global_step"]), float(row["value"]), float(row["value2"])))
    return {kind: {seed: tuple(np.array(column) for column in zip(*sorted(points))) for seed, points in seeds.items()}
            for kind, seeds in rows.items()}


def mean_and_band(per_seed, grid, column=1, rng=None, resamples=2_000):
    """Each seed's curve on a common step grid (the last value carried forward), then the mean over seeds and
    a 95% bootstrap band of that mean."""
    rng = rng or np.random.default_rng(0)
    curves = []
    for curve in per_seed.values():
        steps, values = curve[0], curve[column]
        idx = np.searchsorted(steps, grid, side="right") - 1
        curves.append(np.where(idx >= 0, values[np.clip(idx, 0, None)], np.nan))
    curves = np.array(curves)
    picks = rng.integers(0, len(curves), size=(resamples, len(curves)))
    with warnings.catch_warnings():  # grid points before a seed's first value are NaN: left out, not a mistake
        warnings.simplefilter("ignore", RuntimeWarning)
        means, boot = np.nanmean(curves, axis=0), np.nanmean(curves[picks], axis=1)
        return means, np.nanquantile(boot, 0.025, axis=0), np.nanquantile(boot, 0.975, axis=0), len(curves)


def curve_files(curves_dir, env_id):
    """{label: path} of the curves of one env: <script>__<env>.csv (the script's defaults, labelled by the script's
    name) and <script>__<env>__<flags-tag>.csv (other flags, labelled "<script> <flags-tag>")."""
    files = {}
    for path in sorted(glob.glob(os.path.join(curves_dir, f"*__{env_id}.csv")) + glob.glob(os.path.join(curves_dir, f"*__{env_id}__*.csv"))):
        parts = os.path.basename(path)[: -len(".csv")].split("__")
        if parts[1] == env_id:
            files[parts[0] if len(parts) == 2 else f"{parts[0]} {parts[2]}"] = path
    return files


def script_of(label):
    return label.split(" ")[0]


def color_of(label, others=("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")):
    """A script's defaults in its own color, anything else (other flags, lecture_dqn) in one of the others."""
    return COLORS.get(label) or others[int(hashlib.sha256(label.encode()).hexdigest(), 16) % len(others)]


def gym_time_limit(env_id):
    """The env's own step limit (gymnasium's registry), or None."""
    import gymnasium as gym
    try:
        return gym.spec(env_id).max_episode_steps
    except gym.error.Error:
        return None


def plot_env(curves_dir, env_id, out, title):
    files = curve_files(curves_dir, env_id)
    if env_id == "CartPole-v1":  # the scripts at their defaults, where there are any (the claims' flags: lecture03.md)
        files = {name: path for name, path in files.items() if " " not in name} or files
    if not files:
        return None
    fig, (ax_check, ax_train) = plt.subplots(1, 2, figsize=(12, 5.6), sharex=True)
    threshold = THRESHOLDS.get(env_id)
    for name, path in files.items():
        data = read_curves(path)
        color = color_of(name)
        for ax, kind in [(ax_check, "check"), (ax_train, "episodes")]:
            if kind not in data:
                continue
            end = max(steps.max() for steps, *_ in data[kind].values())
            grid = np.linspace(0, end, 200)
            mean, lo, hi, n = mean_and_band(data[kind], grid)
            flags = " at its defaults" if name == script_of(name) else ", the flags of README's table"
            ax.plot(grid, mean, color=color, label=f"{script_of(name)}.py{flags} (mean of {n} seeds)")
            band = "95% interval of each mean (seeds resampled)" if name == next(iter(files)) else None
            ax.fill_between(grid, lo, hi, color=color, alpha=0.2, label=band)
    if threshold is not None:  # a CartPole check plays 1,000 steps: 475 of 500 is 950 of 1,000 there
        check_bar = 2 * threshold if env_id == "CartPole-v1" else threshold
        ax_check.axhline(check_bar, color="black", linestyle="--", linewidth=1,
                         label=f"solved: {check_bar:g} on a check (475 of 500 on a 1,000-step one)" if check_bar != threshold
                         else f"solved ({threshold:g})")
        ax_train.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"solved ({threshold:g})")
    limit = gym_time_limit(env_id)  # a check plays each episode to twice the env's time limit
    if env_id == "CartPole-v1":
        ax_check.axhline(500, color="gray", linestyle=":", linewidth=1, label="the env's limit (500 steps)")
    ax_check.set_ylabel(f"greedy check return\n(episodes of up to {2 * limit:,} steps, twice the env's limit)"
                        if limit else "greedy check return")
    ax_check.set_title("greedy checks (mean over each check's episodes)")
    ax_train.set_title("training episodes (epsilon-greedy), per 1% of the run")
    ax_train.set_ylabel("training episode return")
    for ax in (ax_check, ax_train):
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    handles = {}  # one legend for both panels, below them: off the data
    for ax in (ax_check, ax_train):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    rows = -(-len(handles) // 3)
    fig.legend(handles.values(), handles.keys(), fontsize=8, loc="lower center", ncol=3, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.035 * rows + 0.02, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_lecture_criterion(curves_dir, out, bar=195.0, by_episode=200):
    """Lecture 03's exercise: the mean of the last 100 training returns against the episode, per script (median
    over seeds, interquartile band), with the lecture's bar (195) and its deadline (episode 200) marked."""
    files = {name: path for name, path in curve_files(curves_dir, "CartPole-v1").items() if " " not in name}
    files = {name: read_curves(path)["mean100"] for name, path in files.items() if "mean100" in read_curves(path)}
    if not files:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.8))
    for name, per_seed in files.items():
        grid = np.arange(100, 1001, 5)
        curves = np.array([np.interp(grid, episodes, values, right=np.nan) for episodes, values, _ in per_seed.values()])
        # Only while every seed's run lasts: a run ends at its step budget, the sooner the longer its episodes,
        # so past the shortest run the remaining seeds would be the ones with short (failed) episodes.
        everyone = ~np.isnan(curves).any(axis=0)
        grid, curves = grid[everyone], curves[:, everyone]
        median, q25, q75 = (np.quantile(curves, q, axis=0) for q in (0.5, 0.25, 0.75))
        ax.plot(grid, median, color=color_of(name), label=f"{'benchmarks/lecture_dqn.py, the lecture' + chr(39) + 's code' if name == 'lecture_dqn' else name + '.py'} "
                f"(median of {len(curves)} seeds)")
        ax.fill_between(grid, q25, q75, color=color_of(name), alpha=0.15)
    ax.axhline(bar, color="black", linestyle="--", linewidth=1, label=f"the lecture's bar: a 100-episode mean of {bar:g}")
    ax.axvline(by_episode, color="gray", linestyle=":", linewidth=1.5, label=f"the lecture's deadline: episode {by_episode}")
    ax.set_xlabel("training episode (the first 100-episode mean is at episode 100)")
    ax.set_ylabel("mean return of the last 100 training episodes")
    ax.set_xlim(100, 500)
    ax.set_title("CartPole-v1, Lecture 03's exercise: solved (mean > 195) within 200 episodes?\n"
                 "median over seeds (band: 25th-75th percentile), drawn while every seed's run lasts; "
                 "epsilon-greedy training episodes", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)  # off the data
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def epsilon_greedy_optimum(epsilons, gamma=0.99):
    """Success within the time limit of slippery FrozenLake-v1 4x4 when the gamma-optimal policy is played
    epsilon-greedily (with probability epsilon a uniform random action, as the script trains), for each epsilon:
    dynamic programming over the env's own transition table, as the script's exact_success_probability."""
    import gymnasium as gym
    env = gym.make("FrozenLake-v1")
    P, steps, start = env.unwrapped.P, env.spec.max_episode_steps, env.unwrapped.initial_state_distrib
    env.close()
    n_states, n_actions = len(P), len(P[0])

    def backup(values, success_only):  # [s, a]: sum over the slides of p (r + (not terminal) * values[s'])
        return np.array([[sum(p * (r + (not term) * (1 if success_only else gamma) * values[s2]) for p, s2, r, term in P[s][a])
                          for a in range(n_actions)] for s in range(n_states)])

    q = np.zeros((n_states, n_actions))
    for _ in range(2_000):  # value iteration: Q* of the discounted MDP, its greedy policy
        q = backup(q.max(axis=1), False)
    policy = q.argmax(axis=1)
    result = []
    for epsilon in epsilons:
        success = np.zeros(n_states)
        for _ in range(steps):
            by_action = backup(success, True)
            success = (1 - epsilon) * by_action[np.arange(n_states), policy] + epsilon * by_action.mean(axis=1)
        result.append(float(start @ success))
    return np.array(result)


def plot_frozenlake(curves_dir, out, summary_path, best=0.7442, gamma_optimal=0.7402, start_e=1.0, end_e=0.1,
                    exploration_fraction=0.5):
    """Left: the training episodes' success (each seed's mean of its last 100 episodes) with the epsilon schedule
    of the script's defaults (start_e, end_e, exploration_fraction of the run), so the rise that ends where epsilon
    reaches its floor can be read off. Right: the greedy policy at the end from summary.json, per seed and mean
    [95% CI] for each seed group, on a y-range narrow enough to tell apart the two DP optima of slippery 4x4 within
    100 steps: `best` (the best achievable, a policy that may change with the steps left) and `gamma_optimal` (what
    the gamma = 0.99-optimal stationary policy gets)."""
    path = curve_files(curves_dir, "FrozenLake-v1").get("q_learning_frozenlake")  # the defaults' curve
    if path is None:
        return None
    data = read_curves(path)["episodes"]
    end = max(steps.max() for steps, *_ in data.values())
    grid = np.linspace(end / 100, end, 100)
    mean, lo, hi, n = mean_and_band(data, grid)
    fig, (ax, ax_end) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [2.1, 1]})
    ax.plot(grid, mean, color="tab:blue", linewidth=2,
            label=f"training episodes (ε-greedy): success rate of the last 100, mean over {n} seeds, 95% bootstrap band")
    ax.fill_between(grid, lo, hi, color="tab:blue", alpha=0.2)
    floor_at = exploration_fraction * end
    episodes = np.linspace(0, end, 400)
    ax.plot(episodes, start_e + np.minimum(episodes / floor_at, 1.0) * (end_e - start_e), color="tab:gray", linestyle="--",
            linewidth=1.2, label=f"ε, the exploration rate: {start_e:g} → {end_e:g} linearly over the first "
                                 f"{exploration_fraction:g} of the run, then {end_e:g}")
    at = np.append(np.linspace(0, floor_at, 26), end)  # epsilon is linear up to floor_at, then constant
    ax.plot(at, epsilon_greedy_optimum(start_e + np.minimum(at / floor_at, 1.0) * (end_e - start_e)), color="tab:purple",
            linestyle="-.", linewidth=1.2, label="the γ-optimal policy played ε-greedily with this ε (DP)")
    ax.axhspan(gamma_optimal, best, color="tab:green", alpha=0.6,
               label=f"the DP optima, {gamma_optimal:.3f} and {best:.3f} (told apart on the right)")
    ax.axvline(floor_at, color="black", linestyle=":", linewidth=1)
    at_floor = float(np.interp(floor_at, grid, mean))
    ax.annotate(f"episode {floor_at:,.0f}: ε reaches its floor {end_e:g} (--exploration-fraction {exploration_fraction:g}"
                f"\nof {end:,.0f} episodes). The jump before it is ε falling (fewer random\nsteps into holes): the training "
                f"success follows the optimal policy\nplayed ε-greedily (dash-dot) and stays flat from here on",
                xy=(floor_at, at_floor), xytext=(floor_at + 0.05 * end, 0.53), fontsize=8,
                arrowprops=dict(arrowstyle="->", color="black", linewidth=0.8))
    ax.set_xlabel("training episodes")
    ax.set_ylabel("success rate (reaching the goal), or ε")
    ax.set_xlim(0, end * 1.01)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, frameon=False)
    ax.set_title("training: the ε-greedy episodes themselves", fontsize=10)

    ax_end.axhline(best, color="black", linestyle="--", linewidth=1.2,
                   label=f"best achievable within 100 steps (DP): {best:.4f}")
    ax_end.axhline(gamma_optimal, color="tab:orange", linestyle="-", linewidth=1.5,
                   label=f"the γ = 0.99-optimal policy (DP): {gamma_optimal:.4f}")
    greedy = []
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            greedy = [s for s in json.load(f) if s["script"] == "q_learning_frozenlake.py" and s.get("flags_tag", "defaults") == "defaults"]
    shown = [gamma_optimal, best]
    jitter = np.random.default_rng(0)
    for x, s in enumerate(greedy):
        finals = [p["final"] for p in s.get("per_seed", [])]
        if finals:
            ax_end.scatter(x + jitter.uniform(-0.15, 0.15, len(finals)), finals, s=14, color="tab:red", alpha=0.45,
                           linewidths=0, label="one seed: success over 10,000 evaluation episodes" if x == 0 else None)
            shown += finals
        m, (c_lo, c_hi) = s["final"]["mean"], s["final"]["ci95"]
        ax_end.errorbar(x + 0.3, m, yerr=[[m - c_lo], [c_hi - m]], fmt="D", color="tab:red", markeredgecolor="black",
                        capsize=4, label="mean over seeds, 95% bootstrap CI" if x == 0 else None)
        ax_end.annotate(f"{m:.4f}\n[{c_lo:.4f}, {c_hi:.4f}]", (x + 0.36, m), xytext=(4, 0), textcoords="offset points",
                        fontsize=7, va="center", bbox=dict(facecolor="white", edgecolor="none", pad=1, alpha=0.85))
        shown += [c_lo, c_hi]
    ax_end.set_xticks(range(len(greedy)), [f"seeds {s['seeds']}" for s in greedy])
    exact = [f"{sum(abs(p['kept'] - gamma_optimal) < 1e-4 for p in s.get('per_seed', []))}/{len(s.get('per_seed', []))}"
             for s in greedy]
    ax_end.set_xlim(-0.5, max(len(greedy), 1) - 0.5 + 0.4)
    pad = 0.25 * (max(shown) - min(shown))
    ax_end.set_ylim(min(shown) - pad, max(shown) + pad)
    ax_end.set_ylabel("success rate (fraction of episodes reaching the goal)")
    ax_end.grid(alpha=0.3, axis="y")
    ax_end.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
    ax_end.set_title(f"after {end:,.0f} episodes: the greedy policy (zoom)"
                     + (f"\nexact success (DP): {gamma_optimal:.4f} on {' and '.join(exact)} seeds" if greedy else ""),
                     fontsize=10)
    fig.suptitle("q_learning_frozenlake.py, slippery FrozenLake 4x4 (100-step limit), default flags")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def median_interval(values, resamples=10_000, seed=0):
    """The median and a 95% percentile interval of it, over `values` resampled with replacement (fixed seed)."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    medians = np.median(values[rng.integers(0, len(values), (resamples, len(values)))], axis=1)
    return float(np.median(values)), float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))


def overestimation_table(curves_dir, bound=100.0):
    """Per script: the median over seeds (95% interval, seeds resampled) of the largest mean Q and of the largest
    max Q on the probe states, and the fraction of logged points (every 1,000 steps, all seeds) where each is
    above the bound 1/(1 - γ); then each variant's peak mean Q minus DQN's on the same seed, median and interval."""
    lines = ["| script | seeds | largest mean Q: median [95%] | points with mean Q > 100 | largest max Q: median [95%] "
             "| points with max Q > 100 |", "|---|---|---|---|---|---|"]
    peaks = {}
    files = curve_files(curves_dir, "CartPole-v1")
    for name, path in ({n: p for n, p in files.items() if " " not in n} or files).items():  # the defaults, if any
        data = read_curves(path).get("probe_q")
        if not data:
            continue
        means, maxes = [curve[1] for curve in data.values()], [curve[2] for curve in data.values()]
        all_means, all_maxes = np.concatenate(means), np.concatenate(maxes)
        peaks[name] = {seed: curve[1].max() for seed, curve in data.items()}
        mean_peak, max_peak = median_interval([m.max() for m in means]), median_interval([m.max() for m in maxes])
        lines.append(f"| {script_of(name)}.py{name[len(script_of(name)):]} | {len(data)} | {mean_peak[0]:.1f} "
                     f"[{mean_peak[1]:.1f}, {mean_peak[2]:.1f}] | {(all_means > bound).mean():.1%} | {max_peak[0]:.1f} "
                     f"[{max_peak[1]:.1f}, {max_peak[2]:.1f}] | {(all_maxes > bound).mean():.1%} |")
    lines.append("")
    for name in [n for n in peaks if n != "dqn_cartpole"] if "dqn_cartpole" in peaks else []:
        seeds = sorted(set(peaks[name]) & set(peaks["dqn_cartpole"]))
        diff = median_interval([peaks[name][s] - peaks["dqn_cartpole"][s] for s in seeds])
        lines.append(f"{name}.py's largest mean Q minus dqn_cartpole.py's, seed by seed ({len(seeds)} seeds): "
                     f"median {diff[0]:+.1f} [{diff[1]:+.1f}, {diff[2]:+.1f}]")
    return "\n".join(lines)


BREAKOUT_RUNS = {"float32": "tab:blue", "bfloat16": "tab:orange"}  # run folders in benchmarks/results/breakout/


def breakout_bins(path, bin_size=25_000):
    """A dqn_atari.py episodes.csv (one whole game a row, logged at the step it ended) binned by step:
    [(bin end, games, mean game score, best game)]."""
    rows = read_rows(path, ["global_step", "episodic_return"])
    steps, scores = np.array(rows["global_step"]), np.array(rows["episodic_return"])
    bins = []
    for lo in range(0, int(steps.max()), bin_size):
        inside = (steps > lo) & (steps <= lo + bin_size)
        if inside.any():
            bins.append((lo + bin_size, int(inside.sum()), float(scores[inside].mean()), float(scores[inside].max())))
    return bins


def plot_breakout(results_dir, out, random_score=None):
    """The CPU-sized Breakout command, float32 and --bf16 (their run folders, less the model, committed in
    benchmarks/results/breakout/), against the random policy's mean game score (random_policy/ there)."""
    folder = os.path.join(results_dir, "breakout")
    runs = {name: os.path.join(folder, name, "episodes.csv") for name in BREAKOUT_RUNS
            if os.path.exists(os.path.join(folder, name, "episodes.csv"))}
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.2))
    for name, path in runs.items():
        bins = breakout_bins(path)
        ends = [b[0] for b in bins]
        ax.plot(ends, [b[2] for b in bins], "o-", color=BREAKOUT_RUNS[name],
                label=f"dqn_atari.py{' --bf16' if name == 'bfloat16' else ''} ({name}), seed 1: mean score of "
                      "the training games ending in each 25k-step bin")
        ax.plot(ends, [b[3] for b in bins], ":", color=BREAKOUT_RUNS[name], alpha=0.7, label=f"{name}: best game in the bin")
    random_path = os.path.join(folder, "random_policy", "episodes.csv")
    if os.path.exists(random_path):
        scores = read_rows(random_path, ["episodic_return"])["episodic_return"]
        ax.axhline(np.mean(scores), color="black", linestyle="--", linewidth=1,
                   label=f"random policy: {np.mean(scores):.2f} (mean of {len(scores)} games)")
    top = 60  # a rare game scores hundreds (the ball behind the bricks): shown as a number, not as the scale
    for name, path in runs.items():
        for end, _, _, best in breakout_bins(path):
            if best > top:
                ax.annotate(f"{name}: one game of {best:.0f}, off the scale (it is in this bin's mean)", (end, top), xytext=(-10, -14), textcoords="offset points",
                            ha="right", fontsize=8, color=BREAKOUT_RUNS[name], arrowprops=dict(arrowstyle="->", color=BREAKOUT_RUNS[name]))
    ax.set_ylim(-1, top)
    ax.set_xlabel("environment steps (4 frames each; each point: the bin ending there)")
    ax.set_ylabel("Breakout game score (all 5 lives, unclipped)")
    ax.set_title("Breakout on a 2-core CPU, 250k steps: float32 against --bf16 (one seed each, no interval)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def median_and_quartiles(per_seed, grid, column=1):
    """Each seed's curve on a common step grid (the last value carried forward), then the median over seeds and
    the band between the 25th and 75th percentiles: one diverging seed moves neither."""
    curves = []
    for curve in per_seed.values():
        steps, values = curve[0], curve[column]
        idx = np.searchsorted(steps, grid, side="right") - 1
        curves.append(np.where(idx >= 0, values[np.clip(idx, 0, None)], np.nan))
    with warnings.catch_warnings():  # grid points before a seed's first value are NaN: left out, not a mistake
        warnings.simplefilter("ignore", RuntimeWarning)
        low, median, high = np.nanpercentile(np.array(curves), [25, 50, 75], axis=0)
    return median, low, high, len(curves)


def plot_overestimation(curves_dir, out, gamma=0.99, names=("dqn_cartpole", "double_dqn", "dueling_dqn", "per_dqn")):
    files = {name: path for name, path in curve_files(curves_dir, "CartPole-v1").items() if script_of(name) in names}
    files = {name: path for name, path in files.items() if " " not in name} or files  # the defaults, if any
    if not files:
        return None
    fig, ax = plt.subplots(figsize=(11, 4.8))
    for name, path in files.items():
        data = read_curves(path).get("probe_q")
        if not data:
            continue
        end = max(steps.max() for steps, *_ in data.values())
        grid = np.linspace(0, end, 200)
        median, low, high, n = median_and_quartiles(data, grid, column=1)
        ax.plot(grid, median, color=color_of(name), label=f"{script_of(name)}.py{name[len(script_of(name)):]} ({n} seeds)")
        ax.fill_between(grid, low, high, color=color_of(name), alpha=0.15)
    ax.axhline(1 / (1 - gamma), color="black", linewidth=1, label=f"bound 1/(1 - γ) = {1 / (1 - gamma):g}")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean Q(s, a) on 1,000 states of a random policy")
    ax.set_title("CartPole-v1: does Q rise above what any return can be?\n(lines: the median over seeds; bands: "
                 "the middle half of the seeds)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# ---- one PNG from run folders (what a script writes: runs/<env>__<exp-name>__<seed>__<time>/) -------------------

class ArgumentParser(argparse.ArgumentParser):
    """argparse's own complaints end in one `error:` line too."""

    def error(self, message):
        fail(message)


def fail(message):
    """Bad input: one line on stderr and exit code 2, never a traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def read_rows(path, columns):
    """{column: float array} of the rows of a CSV a run writes, as far as it goes: a missing file, a header alone, a
    half-written last row (a run still going) or a missing column give fewer rows, or none, never an error."""
    out = {column: [] for column in columns}
    if not os.path.isfile(path):
        return {column: np.array([]) for column in columns}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                values = [float(row[column]) for column in columns]
            except (KeyError, TypeError, ValueError):
                continue
            for column, value in zip(columns, values):
                out[column].append(value)
    return {column: np.array(values) for column, values in out.items()}


def read_run_folder(path):
    """What one run folder holds, read as far as it goes (the run may still be going, or have been stopped)."""
    if not (os.path.isdir(path) and os.path.isfile(os.path.join(path, "args.json"))
            and os.path.isfile(os.path.join(path, "episodes.csv"))):
        fail(f"{path} is not a run folder (one has args.json and episodes.csv: runs/<env>__<exp-name>__<seed>__<time>/)")
    try:
        with open(os.path.join(path, "args.json")) as f:
            args = json.load(f)
        assert isinstance(args, dict)
    except (OSError, ValueError, AssertionError):
        fail(f"{os.path.join(path, 'args.json')} is not a readable args.json")
    evaluation = None
    if os.path.isfile(os.path.join(path, "eval.json")):
        try:
            with open(os.path.join(path, "eval.json")) as f:
                evaluation = json.load(f)
        except (OSError, ValueError):
            evaluation = None  # being written
    frozen = args.get("script") == "q_learning_frozenlake.py"
    episodes = read_rows(os.path.join(path, "episodes.csv"), ["episode", "return"] if frozen else ["global_step", "episodic_return"])
    return {"path": path, "args": args, "eval": evaluation, "frozen": frozen,
            "env_id": os.path.basename(os.path.normpath(path)).split("__")[0] if frozen else args.get("env_id", "?"),
            "returns": episodes["return" if frozen else "episodic_return"],
            "checks": read_rows(os.path.join(path, "checks.csv"), ["global_step", "score", "kept"]),
            "probe": read_rows(os.path.join(path, "train.csv"), ["global_step", "probe_q_mean", "probe_q_max"])}


def trailing_mean(values, window=100):
    """Mean of the last min(k, window) values at each k (the start uses what there is)."""
    sums = np.concatenate([[0.0], np.cumsum(values)])
    k = np.arange(1, len(values) + 1)
    lo = np.maximum(k - window, 0)
    return (sums[k] - sums[lo]) / (k - lo)


def first_at(values, bar, window=100):
    """Lecture 03's criterion: the first episode k >= window whose last `window` returns average bar or more."""
    means = trailing_mean(values, window)[window - 1:]
    hits = np.flatnonzero(means >= bar)
    return int(hits[0]) + window if len(hits) else None


def run_labels(runs):
    """script + seed, with the folder's name too where two runs would read the same."""
    labels = [f"{run['args'].get('script', '?')} seed {run['args'].get('seed', '?')}" for run in runs]
    return [f"{label} ({os.path.basename(os.path.normpath(run['path']))})" if labels.count(label) > 1 else label
            for label, run in zip(labels, runs)]


def plot_runs(paths, out):
    """One PNG from one or more run folders: DQN runs get training returns per episode, the greedy checks and the
    probe's Q; Q-learning runs their success rate per episode. Several folders overlay, one color each."""
    runs = [read_run_folder(path) for path in paths]
    if len({run["frozen"] for run in runs}) > 1:
        fail("q_learning_frozenlake.py runs (success per episode) and DQN runs (returns) do not share axes: plot them apart")
    labels = run_labels(runs)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    state = ", ".join(sorted({"finished" if run["eval"] is not None else "no eval.json yet (running or stopped)" for run in runs}))
    if runs[0]["frozen"]:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for i, (run, label) in enumerate(zip(runs, labels)):
            color = colors[i % len(colors)]
            x = np.arange(1, len(run["returns"]) + 1)
            ax.plot(x, trailing_mean(run["returns"]), color=color, label=f"{label}: success, mean of the last 100 episodes")
            if run["eval"]:
                ax.plot([x[-1] if len(x) else 0], [run["eval"]["success_rate"]], "*", color=color, markersize=12,
                        label=f"{label}: greedy policy {run['eval']['success_rate']:.3f} "
                              f"(exact {run['eval']['exact_this_policy']:.3f})")
        best = {round(run["eval"]["best_achievable"], 4) for run in runs if run["eval"]}
        for value in sorted(best):
            ax.axhline(value, color="black", linestyle="--", linewidth=1, label=f"best achievable (DP): {value:.3f}")
        ax.set_xlabel("training episodes")
        ax.set_ylabel("success rate (reaching the goal)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title(f"q_learning_frozenlake.py: training episodes, epsilon-greedy ({state})", fontsize=9)
    else:
        fig, (ax_train, ax_check, ax_q) = plt.subplots(1, 3, figsize=(17, 4.8))
        cartpole = all(run["env_id"] == "CartPole-v1" for run in runs)
        for i, (run, label) in enumerate(zip(runs, labels)):
            color = colors[i % len(colors)]
            returns = run["returns"]
            x = np.arange(1, len(returns) + 1)
            ax_train.plot(x, returns, color=color, alpha=0.25, linewidth=0.7)
            ax_train.plot(x, trailing_mean(returns), color=color, label=f"{label}: mean of the last 100")
            if cartpole and first_at(returns, 195) is not None:
                k = first_at(returns, 195)
                ax_train.plot([k], [trailing_mean(returns)[k - 1]], "o", color=color, label=f"{label}: 100-episode mean 195 at episode {k}")
            checks = run["checks"]
            if len(checks["global_step"]):
                ax_check.plot(checks["global_step"], checks["score"], "o-", color=color, markersize=3, label=label)
                kept = checks["kept"] > 0
                ax_check.plot(checks["global_step"][kept], checks["score"][kept], "o", color=color, markersize=7,
                              fillstyle="none")
            if run["eval"] is not None:  # the lecture's DQN writes "mean" alone
                final = run["eval"].get("final_mean", run["eval"].get("mean"))
                ax_check.axhline(final, color=color, linestyle=":", linewidth=1,
                                 label=f"{label}: evaluation of the final network {final:.1f}")
            probe = run["probe"]
            logged = np.isfinite(probe["probe_q_mean"])
            if logged.any():
                ax_q.plot(probe["global_step"][logged], probe["probe_q_mean"][logged], color=color, label=f"{label}: mean Q")
                ax_q.plot(probe["global_step"][logged], probe["probe_q_max"][logged], "--", color=color, label=f"{label}: max Q")
        if cartpole:
            ax_train.axhline(195, color="black", linestyle="--", linewidth=1, label="195 (Lecture 03: avg > 195)")
            ax_train.axhline(475, color="gray", linestyle="--", linewidth=1, label="475 (CartPole-v1 solved)")
            ax_train.axvline(200, color="black", linestyle=":", linewidth=1, label="episode 200 (the lecture: < 200 episodes)")
            ax_check.axhline(950, color="black", linestyle="--", linewidth=1, label="950 of 1,000 (475 of 500)")
            ax_check.set_ylabel("greedy check return (episodes of up to 1,000 steps)")
            gammas = {run["args"].get("gamma") for run in runs if any(np.isfinite(run["probe"]["probe_q_mean"]))}
            for gamma in sorted(g for g in gammas if g is not None and g < 1):
                ax_q.axhline(1 / (1 - gamma), color="black", linewidth=1, label=f"bound 1/(1 - γ) = {1 / (1 - gamma):g}")
        else:
            thresholds = {THRESHOLDS[run["env_id"]] for run in runs if run["env_id"] in THRESHOLDS}
            for value in sorted(thresholds):
                for ax in (ax_train, ax_check):
                    ax.axhline(value, color="black", linestyle="--", linewidth=1, label=f"solved ({value:g})")
            ax_check.set_ylabel("greedy check return")
        for ax, what in [(ax_check, "no greedy checks logged yet"), (ax_q, "no probe Q logged (train.csv, --probe-states)")]:
            if not ax.lines:
                ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="gray")
        if not len(runs[0]["returns"]) and len(runs) == 1:
            ax_train.text(0.5, 0.5, "no episode has ended yet", ha="center", va="center", transform=ax_train.transAxes, color="gray")
        ax_train.set(xlabel="training episode", ylabel="training episode return (epsilon-greedy)",
                     title="training returns per episode (thin) and their 100-episode mean")
        ax_check.set(xlabel="environment steps", title="greedy checks (kept models circled)")
        ax_q.set(xlabel="environment steps", ylabel="Q(s, a) on the probe states", title="the probe's mean and max Q")
        for ax in (ax_train, ax_check, ax_q):
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="best")
        envs = ", ".join(sorted({run["env_id"] for run in runs}))
        fig.suptitle(f"{envs}: {', '.join(labels)} ({state})", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="*", metavar="RUN", help="run folders (runs/<env>__<exp-name>__<seed>__<time>/): one PNG of them")
    p.add_argument("--png", help="with RUN: where the PNG goes (default: RUN/plot.png for one run, plot_runs.png for several)")
    p.add_argument("--curves", help="the figures' CSVs (default: benchmarks/results/curves)")
    p.add_argument("--out", help="where the figures go (default: docs)")
    a = p.parse_args(argv)
    if a.runs:
        if a.curves or a.out:
            fail("--curves and --out redraw the docs' figures; with run folders give --png (or nothing)")
        out = a.png or (os.path.join(a.runs[0], "plot.png") if len(a.runs) == 1 else "plot_runs.png")
        print(f"wrote {plot_runs(a.runs, out)}")
        if os.path.abspath(out).startswith(os.path.join(ROOT, "docs") + os.sep):  # a docs figure: which code made the runs
            scripts = sorted({json.load(open(os.path.join(run, "args.json")))["script"] for run in a.runs})
            scripts = [name if os.path.exists(os.path.join(ROOT, name)) else f"benchmarks/{name}" for name in scripts]
            provenance.record(os.path.relpath(os.path.abspath(out), ROOT), scripts=scripts,
                              command=f"python {' '.join(scripts)} ...; python benchmarks/plot_results.py RUN --png "
                                      f"{os.path.relpath(os.path.abspath(out), ROOT)}",
                              note="drawn from a run of the script(s) as they are here, just before")
        return
    if a.png:
        fail("--png goes with run folders: python benchmarks/plot_results.py runs/<run> [runs/<run> ...] --png FILE")
    a.curves = a.curves or os.path.join(ROOT, "benchmarks", "results", "curves")
    a.out = a.out or os.path.join(ROOT, "docs")
    os.makedirs(a.out, exist_ok=True)
    written = [plot_lecture_criterion(a.curves, os.path.join(a.out, "lecture_criterion.png")),
               plot_env(a.curves, "CartPole-v1", os.path.join(a.out, "cartpole.png"), "CartPole-v1: the four DQN scripts, and the lecture's DQN (training episodes only: it has no checks)"),
               plot_overestimation(a.curves, os.path.join(a.out, "overestimation.png")),
               plot_frozenlake(a.curves, os.path.join(a.out, "frozenlake.png"), os.path.join(os.path.dirname(a.curves), "summary.json")),
               plot_breakout(os.path.dirname(a.curves), os.path.join(a.out, "breakout.png"))]
    envs = {os.path.basename(path)[: -len(".csv")].split("__")[1] for path in glob.glob(os.path.join(a.curves, "*__*.csv"))}
    for env_id in sorted(envs - {"CartPole-v1", "FrozenLake-v1"}):
        written.append(plot_env(a.curves, env_id, os.path.join(a.out, f"{env_id.lower()}.png"), env_id))
    curves = lambda pattern: sorted(glob.glob(os.path.join(a.curves, pattern)))  # noqa: E731
    inputs = {"lecture_criterion.png": curves("*__CartPole-v1.csv"), "cartpole.png": curves("*__CartPole-v1.csv"),
              "overestimation.png": curves("*__CartPole-v1.csv"),
              "frozenlake.png": curves("*__FrozenLake-v1*.csv") + [os.path.join(os.path.dirname(a.curves), "summary.json")],
              "breakout.png": [os.path.join(os.path.dirname(a.curves), "breakout", name, "episodes.csv") for name in [*BREAKOUT_RUNS, "random_policy"]]}
    for path in filter(None, written):
        print(f"wrote {path}")
        name = os.path.basename(path)
        if os.path.abspath(a.curves) == os.path.join(ROOT, "benchmarks", "results", "curves") and a.out == os.path.join(ROOT, "docs"):
            env_id = next((env_id for env_id in envs if f"{env_id.lower()}.png" == name), None)
            provenance.record(os.path.relpath(path, ROOT), inputs=inputs.get(name) or curves(f"*__{env_id}*.csv"),
                              command="python benchmarks/plot_results.py")
    print("\noverestimation on CartPole-v1 (probe states; the bound 1/(1 - γ) = 100):")
    print(overestimation_table(a.curves))


if __name__ == "__main__":
    main()
