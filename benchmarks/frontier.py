"""The CartPole defaults' frontier: every setting tried, how fast it learns and whether its final network holds.

    python benchmarks/frontier.py --list                      # the settings and the command that runs each
    python benchmarks/frontier.py --run polyak                # run one setting (DQN and Double, seeds 1-10)
    python benchmarks/frontier.py                             # table + docs/frontier.png from the finished runs
    python benchmarks/frontier.py --verify                    # seed 1 of each row again, with the code here

A setting is a full set of flags for the levers searched (written out in full, so a row means the same thing
whatever the scripts' defaults are). Each runs through benchmarks/run_seeds.py, one process per run, into
benchmarks/results/runs/<script>/CartPole-v1/<flags-tag>/seed-<n>/. For each setting and script the table gives:

- exercise: runs whose 100-episode mean of training returns reached 195 within 200 episodes (Lecture 03);
- final: runs whose final network (the online weights after the last gradient step) scores >= 475 on the
  10 evaluation episodes; kept: the same for the model the greedy checks kept;
- peak mean Q: the median over runs of the highest mean Q on the probe states (random-policy states) at any
  logged step; every reward is 1 and gamma 0.99, so no return is above 1/(1 - 0.99) = 100;
- runs whose max Q on the probe passed 1,000 at any logged step (diverged);
- CPU time of a run (median; checks and probe included);
- P(Double > DQN): the probability that Double DQN's final score beats DQN's on the same seed (ties count
  half), with a 95% bootstrap interval over seeds (rliable's probability of improvement, paired).

Counts carry a 95% Wilson interval. The summary goes to benchmarks/results/frontier.json (committed, so a
clone redraws the figure with `--plot-only`).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_seeds import (RESULTS, ROOT, episodes_to_mean, finished, flags_tag, measure, prob_improvement,  # noqa: E402
                       read_csv_rows, run_dir_of, training_command, wilson)
import provenance  # noqa: E402

SCRIPTS = ["dqn_cartpole.py", "double_dqn.py", "dueling_dqn.py", "per_dqn.py"]
SHORT = {"dqn_cartpole.py": "DQN", "double_dqn.py": "Double", "dueling_dqn.py": "Dueling", "per_dqn.py": "PER"}
# The levers searched, at the values the scripts had before the search; each setting changes some of them and
# states all of them, so a row means the same thing whatever the scripts' defaults are now.
BEFORE = ("--hidden-dim 64 --tau 1.0 --target-network-frequency 50 --learning-rate 1e-3 --train-frequency 2 "
          "--batch-size 128 --loss mse --end-e 0.01 --exploration-fraction 0.1 --total-timesteps 50000 --max-grad-norm 10")
SETTINGS = {  # name: (what changes, in words; {flag: new value}, or extra flags after BEFORE's)
    "base": ("the defaults before the search: a hard target copy every 50 env steps (25 gradient steps)", {}),
    "polyak02": ("Polyak averaging, tau 0.02 every env step", {"--tau": "0.02", "--target-network-frequency": "1"}),
    "h128": ("128 hidden units (the lecture's SimpleDQN)", {"--hidden-dim": "128"}),
    "tf1tnf100": ("a gradient step every env step, the target every 100 (100 gradient steps)",
                  {"--train-frequency": "1", "--target-network-frequency": "100"}),
    "tf1tnf100b64": ("a gradient step every env step on batches of 64, the target every 100 (100 gradient steps)",
                     {"--train-frequency": "1", "--target-network-frequency": "100", "--batch-size": "64"}),
    "lr2tnf200": ("learning rate 2e-3, the target every 200 env steps (100 gradient steps)",
                  {"--learning-rate": "2e-3", "--target-network-frequency": "200"}),
    "tf1tnf100decay": ("tf1tnf100, and the learning rate constant for half the run, then linearly to 0; Double stopped after 4 seeds",
                       {"--train-frequency": "1", "--target-network-frequency": "100", "--anneal-lr": "",
                        "--anneal-lr-start": "0.5"}),
    "decay50": ("the learning rate constant for half the run, then linearly to 0 at its end",
                {"--anneal-lr": "", "--anneal-lr-start": "0.5"}),
    "decay20": ("the learning rate constant for the first 20% of the run, then linearly to 0 at its end",
                {"--anneal-lr": "", "--anneal-lr-start": "0.2"}),
    "tf1tnf100huber": ("tf1tnf100 with the Huber loss (Nature's clipped error); stopped after 6 seeds of DQN (2 held)",
                       {"--train-frequency": "1", "--target-network-frequency": "100", "--loss": "huber"}),
    "tf1tnf100h128": ("tf1tnf100 with 128 hidden units (the lecture's SimpleDQN); Double DQN not run (stopped for time)",
                      {"--train-frequency": "1", "--target-network-frequency": "100", "--hidden-dim": "128"}),
    "zoo": ("the RL Zoo's CartPole values, its target lag in gradient steps kept: 256 units, lr 2.3e-3, batch 64, the "
            "target every 256 env steps (128 gradient steps), epsilon to 0.04 over 16%",
            {"--hidden-dim": "256", "--learning-rate": "2.3e-3", "--batch-size": "64", "--target-network-frequency": "256",
             "--end-e": "0.04", "--exploration-fraction": "0.16"}),
}
ORDER = ["base", "polyak02", "h128", "decay20", "decay50", "zoo", "lr2tnf200", "tf1tnf100", "tf1tnf100b64", "tf1tnf100decay",
         "tf1tnf100huber", "tf1tnf100h128"]
SETTINGS = {name: SETTINGS[name] for name in ORDER}  # the table's order: the fast target first, then slower ones
FRONTIER_JSON = os.path.join(RESULTS, "frontier.json")
FIGURE = os.path.join(ROOT, "docs", "frontier.png")


def flags_of(name):
    tokens = BEFORE.split()
    for flag, value in SETTINGS[name][1].items():  # a value "" is a switch: the flag alone
        if flag in tokens:
            tokens[tokens.index(flag) + 1] = value
        else:
            tokens += [flag, value] if value else [flag]
    return tokens


def command(name, scripts=("dqn_cartpole.py", "double_dqn.py"), seeds="1-10"):
    return ["python", "benchmarks/run_seeds.py", *scripts, "--seeds", seeds, "--root", "benchmarks/results", "--",
            *flags_of(name)]


def read_one(run_folder):
    """Exercise, scores, probe Q and CPU time of one finished run (None if it has not finished)."""
    done = finished(run_folder)
    if not done:
        return None
    run_dir = os.path.dirname(done[-1])
    with open(done[-1]) as f:
        result = json.load(f)
    returns = [float(row["episodic_return"]) for row in read_csv_rows(os.path.join(run_dir, "episodes.csv"))]
    train = read_csv_rows(os.path.join(run_dir, "train.csv"))
    q_mean = [float(row["probe_q_mean"]) for row in train]
    q_max = [float(row["probe_q_max"]) for row in train]
    cpu_s = None
    if os.path.exists(os.path.join(run_folder, "run.json")):
        with open(os.path.join(run_folder, "run.json")) as f:
            cpu_s = json.load(f)["cpu_s"]
    k = episodes_to_mean(returns)
    return {"final": result["final_mean"], "kept": result.get("kept_mean", result.get("mean")), "episodes_to_195": k,
            "within_200": k is not None and k <= 200, "peak_mean_q": max(q_mean), "peak_max_q": max(q_max),
            "cpu_s": cpu_s}


def summarize(name, seeds, root):
    rows = {}
    for script in SCRIPTS:
        runs = {seed: read_one(run_dir_of(script, "CartPole-v1", seed, flags_of(name), root)) for seed in seeds}
        runs = {seed: run for seed, run in runs.items() if run}
        if not runs:
            continue
        n = len(runs)
        count = lambda key: sum(bool(run[key]) for run in runs.values())  # noqa: E731
        final = sum(run["final"] >= 475 for run in runs.values())
        kept = sum(run["kept"] >= 475 for run in runs.values())
        rows[script] = {
            "runs": n, "exercise": count("within_200"), "exercise_ci": wilson(count("within_200"), n),
            "final": final, "final_ci": wilson(final, n), "kept": kept, "kept_ci": wilson(kept, n),
            "final_mean": float(np.mean([run["final"] for run in runs.values()])),
            "peak_mean_q_median": float(np.median([run["peak_mean_q"] for run in runs.values()])),
            "diverged": sum(run["peak_max_q"] > 1000 for run in runs.values()),
            "max_q": float(max(run["peak_max_q"] for run in runs.values())),
            "cpu_s_median": float(np.median([run["cpu_s"] for run in runs.values() if run["cpu_s"]] or [np.nan])),
            "per_seed": {str(seed): run for seed, run in runs.items()}}
    if "dqn_cartpole.py" in rows and "double_dqn.py" in rows:
        dqn, double = rows["dqn_cartpole.py"]["per_seed"], rows["double_dqn.py"]["per_seed"]
        paired = sorted(set(dqn) & set(double), key=int)
        rng = np.random.default_rng(int(flags_tag(flags_of(name))[-8:], 16))  # the same interval run after run
        p, ci = prob_improvement([double[s]["final"] for s in paired], [dqn[s]["final"] for s in paired], rng)
        rows["double_vs_dqn"] = {"p": p, "ci95": ci, "pairs": len(paired)}
    return rows


def table(results):
    """The frontier as a markdown table, one row a setting, "DQN · Double" in each cell."""
    def cell(rows, show):
        return " · ".join(show(rows[script]) if script in rows else "—" for script in ("dqn_cartpole.py", "double_dqn.py"))

    lines = ["| setting | final ≥ 475 | exercise ≤ 200 episodes | kept ≥ 475 | peak mean Q (median) | max Q > 1,000 "
             "| CPU s | P(Double > DQN), final [95%] | command |", "|" + "---|" * 9]
    for name, rows in results.items():
        pi = rows.get("double_vs_dqn")
        duel = f"{pi['p']:.2f} [{pi['ci95'][0]:.2f}, {pi['ci95'][1]:.2f}]" if pi else "—"
        lines.append(" | ".join([
            f"| {name}: {SETTINGS[name][0]}",
            cell(rows, lambda r: f"{r['final']}/{r['runs']}"), cell(rows, lambda r: f"{r['exercise']}/{r['runs']}"),
            cell(rows, lambda r: f"{r['kept']}/{r['runs']}"), cell(rows, lambda r: f"{r['peak_mean_q_median']:.0f}"),
            cell(rows, lambda r: str(r["diverged"])), cell(rows, lambda r: f"{r['cpu_s_median']:.0f}"), duel,
            f"`frontier.py --run {name}` |"]))
    return "\n".join(lines)


def plot(results, path, chosen=None):
    """One row per setting: the final network's rate, the exercise's rate, the peak mean Q, DQN and Double side by
    side; the bars the defaults must meet as dotted lines; the chosen setting in bold."""
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 3, figsize=(12, 0.4 * len(names) + 1.8), sharey=True)
    panels = [("final network >= 475 (runs of 10)", lambda r: r["final"]),
              ("exercise within 200 episodes (runs of 10)", lambda r: r["exercise"]),
              ("peak mean Q on the probe (median; log)", lambda r: r["peak_mean_q_median"])]
    styles = {"dqn_cartpole.py": ("o", "C0", -0.15, "DQN"), "double_dqn.py": ("s", "C1", 0.15, "Double DQN")}
    for ax, (title, value) in zip(axes, panels):
        for script, (marker, color, shift, label) in styles.items():
            points = [(value(results[name][script]), i + shift) for i, name in enumerate(names) if script in results[name]]
            ax.scatter(*zip(*points), marker=marker, color=color, s=45, label=label, zorder=3)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].axvline(9, color="grey", linestyle=":")  # the bar: 18 of 20 over both seed groups
    axes[1].axvline(9.5, color="grey", linestyle=":")  # 19 of 20
    axes[2].axvline(100, color="black", linestyle="--", linewidth=1)
    axes[2].axvline(150, color="grey", linestyle=":")
    axes[2].set_xscale("log")
    axes[2].xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes[2].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[2].set_xticks([60, 100, 150, 250, 400])
    axes[2].text(100, len(names) - 0.4, " bound 1/(1-γ)", fontsize=8, va="bottom")
    for ax in axes[:2]:
        ax.set_xlim(-0.5, 10.5)
    axes[0].set_yticks(range(len(names)))
    axes[0].set_yticklabels(names)
    for tick, name in zip(axes[0].get_yticklabels(), names):
        tick.set_fontweight("bold" if name == chosen else "normal")
    axes[0].invert_yaxis()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
    fig.suptitle("Every CartPole setting tried, seeds 1-10 (dotted: the bars the defaults must meet)", fontsize=11)
    fig.subplots_adjust(left=0.16, right=0.98, top=1 - 0.9 / fig.get_figheight(), bottom=0.75 / fig.get_figheight(),
                        wspace=0.12)
    fig.savefig(path, dpi=110)
    print(f"wrote {os.path.relpath(path, ROOT)}")


def verify(results):
    """The search ran over several versions of the scripts. Re-run seed 1 of every row's DQN (and of one row for each
    other script) with the code here and compare the final score, the exercise's episode and the probe's peak Q
    with frontier.json's: all the same, frontier.json and its figure are stamped with the scripts here."""
    todo = [(name, "dqn_cartpole.py") for name in results]
    todo += [(next(name for name in results if script in results[name]), script) for script in SCRIPTS[1:]
             if any(script in rows for rows in results.values())]
    ok = True
    for name, script in todo:
        tmp = tempfile.mkdtemp(prefix="frontier-")
        try:
            folder = run_dir_of(script, "CartPole-v1", 1, flags_of(name), tmp)
            os.makedirs(folder)
            measure(training_command(script, "CartPole-v1", 1, flags_of(name)), folder)
            now, then = read_one(folder), results[name][script]["per_seed"]["1"]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        same = now is not None and all(now[key] == then[key] for key in ("final", "episodes_to_195", "peak_mean_q"))
        ok &= same
        print(f"{name} {script} seed 1: {'the same' if same else f'NOT the same: {now} against {then}'}", flush=True)
    if ok:
        provenance.record(os.path.relpath(FRONTIER_JSON, ROOT), scripts=sorted({script for _, script in todo}),
                          command="python benchmarks/frontier.py  (after each setting's --run)",
                          note="the search ran over earlier versions of the scripts; seed 1 of every row (DQN, and one "
                               "row of each other script) re-run with these gave the same final score, exercise "
                               "episode and peak Q (python benchmarks/frontier.py --verify)")
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--list", action="store_true", help="print each setting's command")
    p.add_argument("--run", metavar="NAME", help="run one setting over --seeds with DQN and Double DQN")
    p.add_argument("--seeds", default="1-10")
    p.add_argument("--root", default=RESULTS, help="where the run folders are")
    p.add_argument("--plot-only", action="store_true", help="redraw the figure from frontier.json")
    p.add_argument("--chosen", default="tf1tnf100", help="the setting the defaults are, drawn in bold")
    p.add_argument("--verify", action="store_true", help="re-run seed 1 of each row with the scripts here (see verify)")
    a = p.parse_args()
    if a.list:
        for name, (what, _) in SETTINGS.items():
            print(f"{name}: {what}\n  {' '.join(command(name, seeds=a.seeds))}")
        return
    if a.run:
        if a.run not in SETTINGS:
            sys.exit(f"error: no setting {a.run!r}: {', '.join(SETTINGS)}")
        sys.exit(subprocess.call([sys.executable, *command(a.run, seeds=a.seeds)[1:]], cwd=ROOT))
    if a.plot_only or a.verify:
        with open(FRONTIER_JSON) as f:
            results = json.load(f)["settings"]
    else:
        lo, hi = (int(x) for x in a.seeds.split("-"))
        results = {name: rows for name in SETTINGS if (rows := summarize(name, range(lo, hi + 1), a.root))}
        with open(FRONTIER_JSON, "w") as f:
            json.dump({"seeds": a.seeds, "before": BEFORE,
                       "commands": {name: " ".join(command(name)) for name in results},
                       "what": {name: SETTINGS[name][0] for name in results}, "settings": results}, f, indent=1)
    if a.verify:
        sys.exit(0 if verify(results) else 1)
    print(table(results))
    plot(results, FIGURE, chosen=a.chosen)
    provenance.record(os.path.relpath(FIGURE, ROOT), inputs=[FRONTIER_JSON],
                      command=f"python benchmarks/frontier.py --plot-only{' --chosen ' + a.chosen if a.chosen else ''}")


if __name__ == "__main__":
    main()
