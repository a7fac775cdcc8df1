"""Lecture 03's claims about DQN, each tested by runs of the scripts with one thing changed.

    python benchmarks/lecture_claims.py --list              # every experiment and the command that runs it
    python benchmarks/lecture_claims.py --run no-replay     # run one (through run_seeds.py, 2 at a time)
    python benchmarks/lecture_claims.py                     # the table, from benchmarks/results/summary.json

An experiment is a set of flags given to a script over seeds, beside the script at its defaults on the same
seeds. Each row reports, over the seeds run (20: 1-10 and 101-110, or 10: 1-10):
- final >= 475: runs whose final network scores at least 475 of 500 on 10 greedy episodes, with a 95% Wilson
  interval; exercise: runs whose last-100 mean of training returns reached 195 within 200 episodes (Lecture 03);
- peak mean Q: the median over runs of the highest mean Q on the probe's 1,000 random-policy states (no return
  on CartPole is above 1/(1 - γ) = 100), and how many runs' max Q passed 1,000;
- P(this > defaults): the probability that this setting's final network scores more than the defaults' on the
  same seed (ties count half), with a 95% bootstrap interval over seeds (rliable's probability of improvement).
The rows go to benchmarks/results/claims.json (committed) and, as markdown, to docs/lecture03.md's table.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_seeds import RESULTS, ROOT, bootstrap_rng, flags_tag, prob_improvement, wilson  # noqa: E402
import provenance  # noqa: E402

BOTH = "1-10,101-110"
# name: (the lecture's claim, where, the script, the flags that change, the seeds)
EXPERIMENTS = {
    "no-replay": ("Part 4: without experience replay, learning from the newest transitions only",
                  "dqn_cartpole.py", ["--buffer-size", "128", "--batch-size", "128"], BOTH),
    "no-target": ("Part 4: without a target network (the target is the online network itself)",
                  "dqn_cartpole.py", ["--target-network-frequency", "1"], BOTH),
    "no-replay-no-target": ("Part 4: without both", "dqn_cartpole.py",
                            ["--buffer-size", "128", "--batch-size", "128", "--target-network-frequency", "1"], BOTH),
    "no-clip": ("Part 7, gotcha 3: without gradient clipping", "dqn_cartpole.py", ["--max-grad-norm", "1e9"], BOTH),
    "starts-0": ("Part 7, gotcha 4: no burn-in (gradient steps from the first transition)", "dqn_cartpole.py",
                 ["--learning-starts", "0"], BOTH),
    "starts-10000": ("Part 7, gotcha 4: the lecture's burn-in of 10,000 transitions", "dqn_cartpole.py",
                     ["--learning-starts", "10000"], BOTH),
}
ORDER = list(EXPERIMENTS)
# Part 6, Double DQN against DQN at a target that lags 5 times longer (500 gradient steps) and a budget twice as long,
# measured with benchmarks/true_value.py on the final networks, as at the defaults:
SLOW_TARGET = ["--target-network-frequency", "500", "--total-timesteps", "100000"]
DOUBLE_COMMANDS = [
    "python benchmarks/true_value.py dqn_cartpole.py double_dqn.py --seeds 1-10,101-110",
    f"python benchmarks/run_seeds.py dqn_cartpole.py double_dqn.py --seeds 1-20 --jobs 2 -- {' '.join(SLOW_TARGET)}",
    f"python benchmarks/true_value.py dqn_cartpole.py double_dqn.py --seeds 1-20 -- {' '.join(SLOW_TARGET)}"]
# Part 5: the lecture's DQN (benchmarks/lecture_dqn.py) for the exercise's 200 episodes, as written and with each --fix
LECTURE, FIXES = "benchmarks/lecture_dqn.py", ["truncation", "target-period", "epsilon", "learning-starts", "batch",
                                                "width", "adam-eps", "all"]
FIX_COMMAND = "python benchmarks/run_seeds.py benchmarks/lecture_dqn.py --seeds 1-10 --jobs 2 -- --episodes 200 [--fix NAME]"
# REINFORCE (benchmarks/reinforce_cartpole.py) at its tuned defaults, and the grid the defaults were chosen from
REINFORCE = "benchmarks/reinforce_cartpole.py"
REINFORCE_COMMAND = "python benchmarks/run_seeds.py benchmarks/reinforce_cartpole.py --seeds 1-10,101-110 --jobs 2 -- --baseline {value,none}"
GRID_COMMAND = ("python benchmarks/run_seeds.py benchmarks/reinforce_cartpole.py --seeds 1-5 --jobs 2 -- --baseline B "
                "--learning-rate LR [--value-learning-rate VLR] --episodes 300")
CLAIMS_JSON = os.path.join(RESULTS, "claims.json")


def command(name):
    _, script, flags, seeds = EXPERIMENTS[name]
    return ["python", "benchmarks/run_seeds.py", script, "--seeds", seeds, "--jobs", "2", "--", *flags]


def per_seed(summaries, script, flags):
    """{seed: its entry} over the seed groups run_seeds.py summarised for this script and these flags."""
    tag = flags_tag(flags)
    return {entry["seed"]: entry for s in summaries if s["script"] == script and s["env_id"] == "CartPole-v1"
            and s["flags_tag"] == tag for entry in s["per_seed"]}


def row(summaries, name):
    what, script, flags, seeds = EXPERIMENTS[name]
    runs, base = per_seed(summaries, script, flags), per_seed(summaries, script, [])
    if not runs:
        return None
    n = len(runs)
    final = sum(entry["final"] >= 475 for entry in runs.values())
    exercise = sum(bool(entry.get("within_200")) for entry in runs.values())
    paired = sorted(set(runs) & set(base))
    rng = np.random.default_rng(int(flags_tag(flags)[-8:], 16))  # the same interval run after run
    p, ci = prob_improvement([runs[s]["final"] for s in paired], [base[s]["final"] for s in paired], rng)
    peaks = [entry["peak_mean_q"] for entry in runs.values() if entry.get("peak_mean_q") is not None]
    return {"claim": what, "flags": " ".join(flags), "runs": n, "final": final, "final_ci": wilson(final, n),
            "final_mean": float(np.mean([entry["final"] for entry in runs.values()])),
            "exercise": exercise, "exercise_ci": wilson(exercise, n),
            "defaults_final": sum(base[s]["final"] >= 475 for s in paired),
            "defaults_exercise": sum(bool(base[s].get("within_200")) for s in paired),
            "peak_mean_q_median": float(np.median(peaks)) if peaks else None,
            "runs_max_q_over_1000": sum((entry.get("peak_max_q") or 0) > 1000 for entry in runs.values()),
            "p_better_than_defaults": p, "ci95": ci, "pairs": len(paired)}


def versus_dqn(summaries, scripts=("double_dqn.py", "dueling_dqn.py", "per_dqn.py")):
    """The exercise's "compare sample efficiency": each variant at its defaults against DQN on the same seeds, in
    episodes to the 195 criterion (fewer is better; a seed that never met it counts as more than any that did) and in
    the final network's score: P(variant better than DQN) with its 95% interval, paired by seed."""
    dqn = per_seed(summaries, "dqn_cartpole.py", [])
    out = {}
    for script in scripts:
        runs = per_seed(summaries, script, [])
        paired = sorted(set(runs) & set(dqn))
        rng = np.random.default_rng(len(script))  # the same interval run after run
        episodes = lambda entry: -(entry["episodes_to_195"] or np.inf)  # noqa: E731  (higher is better)
        p_fast, ci_fast = prob_improvement([episodes(runs[s]) for s in paired], [episodes(dqn[s]) for s in paired], rng)
        # the final network with the generator README's table uses (docs/sync_numbers.py), so both give one interval
        rng = bootstrap_rng(script, "CartPole-v1", ["versus dqn_cartpole.py"], paired)
        p_final, ci_final = prob_improvement([runs[s]["final"] for s in paired], [dqn[s]["final"] for s in paired], rng)
        median = lambda group: float(np.median([e["episodes_to_195"] or np.inf for e in group.values()]))  # noqa: E731
        out[script] = {"pairs": len(paired), "median_episodes": median(runs), "dqn_median_episodes": median(dqn),
                       "p_fewer_episodes": p_fast, "ci95_fewer_episodes": ci_fast,
                       "p_better_final": p_final, "ci95_better_final": ci_final}
    return out


def table(rows):
    lines = ["| experiment | final ≥ 475 [95%] (defaults) | exercise ≤ 200 episodes [95%] (defaults) | peak mean Q "
             "(runs past 1,000) | P(final network better than the defaults') [95%] |", "|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name}: `{r['flags']}` | {r['final']}/{r['runs']} [{r['final_ci'][0]:.2f}, {r['final_ci'][1]:.2f}]"
                     f" ({r['defaults_final']}/{r['pairs']}) | {r['exercise']}/{r['runs']} [{r['exercise_ci'][0]:.2f}, "
                     f"{r['exercise_ci'][1]:.2f}] ({r['defaults_exercise']}/{r['pairs']}) | "
                     f"{r['peak_mean_q_median']:.0f} ({r['runs_max_q_over_1000']}) | {r['p_better_than_defaults']:.2f} "
                     f"[{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}] |")
    return "\n".join(lines)


def versus_reinforce(summaries):
    """The exercise's "DQN is way more sample efficient than REINFORCE": DQN at its defaults against
    benchmarks/reinforce_cartpole.py at its defaults, each baseline on the seeds DQN ran too, in env steps to the 195
    criterion (fewer is better; never counts as more than any) and in episodes."""
    dqn = per_seed(summaries, "dqn_cartpole.py", [])
    out = {}
    for variant in ("value", "none"):
        runs = {seed: {**entry, "env_steps_to_195": entry["step_at_195"]}
                for seed, entry in per_seed(summaries, REINFORCE, ["--baseline", variant]).items()}
        if not runs:
            continue
        paired = sorted(set(runs) & set(dqn))
        rng = np.random.default_rng(len(variant))
        steps = lambda value: -(value if value is not None else np.inf)  # noqa: E731  (higher is better)
        p_steps, ci_steps = prob_improvement([steps(dqn[s]["step_at_195"]) for s in paired],
                                             [steps(runs[s]["env_steps_to_195"]) for s in paired], rng)
        p_episodes, ci_episodes = prob_improvement([steps(dqn[s]["episodes_to_195"]) for s in paired],
                                                   [steps(runs[s]["episodes_to_195"]) for s in paired], rng)
        median = lambda values: float(np.median([np.inf if v is None else v for v in values]))  # noqa: E731
        out[variant] = {
            "seeds": paired, "within_200": sum(bool(runs[s]["within_200"]) for s in paired),
            "dqn_within_200": sum(bool(dqn[s]["within_200"]) for s in paired),
            "median_env_steps": median([runs[s]["env_steps_to_195"] for s in paired]),
            "dqn_median_env_steps": median([dqn[s]["step_at_195"] for s in paired]),
            "median_episodes": median([runs[s]["episodes_to_195"] for s in paired]),
            "dqn_median_episodes": median([dqn[s]["episodes_to_195"] for s in paired]),
            "p_dqn_fewer_steps": p_steps, "ci95_steps": ci_steps, "p_dqn_fewer_episodes": p_episodes,
            "ci95_episodes": ci_episodes}
    return out


def reinforce_table(versus):
    lines = ["| REINFORCE | seeds | within 200 episodes: REINFORCE · DQN | median env steps to 195: REINFORCE · DQN "
             "| median episodes: REINFORCE · DQN | P(DQN needs fewer env steps) [95%] | P(DQN needs fewer episodes) [95%] |",
             "|---|---|---|---|---|---|---|"]
    number = lambda v: "never" if v == np.inf else f"{v:,.0f}"  # noqa: E731
    for variant, v in versus.items():
        n = len(v["seeds"])
        lines.append(f"| baseline: {variant} | {n} | {v['within_200']}/{n} · "
                     f"{v['dqn_within_200']}/{n} | {number(v['median_env_steps'])} · {number(v['dqn_median_env_steps'])} | "
                     f"{number(v['median_episodes'])} · {number(v['dqn_median_episodes'])} | {v['p_dqn_fewer_steps']:.2f} "
                     f"[{v['ci95_steps'][0]:.2f}, {v['ci95_steps'][1]:.2f}] | {v['p_dqn_fewer_episodes']:.2f} "
                     f"[{v['ci95_episodes'][0]:.2f}, {v['ci95_episodes'][1]:.2f}] |")
    return "\n".join(lines)


def fixes(summaries):
    """Part 5: the lecture's DQN as written ("none") and with each --fix, over the exercise's 200 episodes."""
    out = {}
    none = per_seed(summaries, LECTURE, ["--episodes", "200"])
    for name in ["none", *FIXES]:
        runs = per_seed(summaries, LECTURE, ["--episodes", "200", *([] if name == "none" else ["--fix", name])])
        if not runs:
            continue
        n, met = len(runs), sum(bool(entry["within_200"]) for entry in runs.values())
        paired = sorted(set(runs) & set(none))
        rng = np.random.default_rng(len(name))  # the same interval run after run
        p, ci = prob_improvement([runs[s]["final"] for s in paired], [none[s]["final"] for s in paired], rng)
        ks = [entry["episodes_to_195"] for entry in runs.values() if entry["within_200"]]
        out[name] = {"runs": n, "within_200": met, "ci95": wilson(met, n),
                     "median_episodes": float(np.median(ks)) if ks else None,
                     "greedy_mean": float(np.mean([entry["final"] for entry in runs.values()])),
                     "p_greedy_better_than_none": p, "ci95_p": ci}
    return out


def fixes_table(rows):
    lines = ["| `--fix` | exercise within 200 episodes [95%] | greedy score after 200 episodes, mean over seeds | "
             "P(greedy score better than as written) [95%] |", "|---|---|---|---|"]
    for name, r in rows.items():
        median = f", median {r['median_episodes']:.0f} episodes" if r["median_episodes"] else ""
        p = "" if name == "none" else f"{r['p_greedy_better_than_none']:.2f} [{r['ci95_p'][0]:.2f}, {r['ci95_p'][1]:.2f}]"
        lines.append(f"| {'(none: as written)' if name == 'none' else f'`{name}`'} | {r['within_200']}/{r['runs']} "
                     f"[{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]{median} | {r['greedy_mean']:.0f} | {p} |")
    return "\n".join(lines)


def grid_table(summaries):
    """REINFORCE's tuning grid: seeds 1-5, 300 episodes, each learning rate (and V's) tried."""
    lines = ["| baseline | learning rate | V's learning rate | within 200 episodes (of 5) | median episodes to 195 |",
             "|---|---|---|---|---|"]
    for s in summaries:
        if s["script"] != REINFORCE or "--episodes" not in s["flags"]:
            continue
        flag = lambda name: s["flags"][s["flags"].index(name) + 1] if name in s["flags"] else "-"  # noqa: E731
        ks = sorted((e["episodes_to_195"] or np.inf) for e in s["per_seed"])
        median = "never" if ks[len(ks) // 2] == np.inf else f"{ks[len(ks) // 2]:.0f}"
        lines.append(f"| {flag('--baseline')} | {flag('--learning-rate')} | {flag('--value-learning-rate')} | "
                     f"{sum(bool(e['within_200']) for e in s['per_seed'])} | {median} |")
    return "\n".join(lines)


def double_table():
    """Overestimation against the true return (benchmarks/true_value.py's results), DQN beside Double DQN."""
    with open(os.path.join(RESULTS, "true_value.json")) as f:
        results = json.load(f)
    lines = ["| target network | seeds | DQN: max Q − true return, median | Double DQN: the same | "
             "P(Double overestimates less) [95%] |", "|---|---|---|---|---|"]
    for tag, setting in results.items():
        rows, paired = setting["scripts"], setting.get("paired")
        if not paired or set(rows) != {"dqn_cartpole.py", "double_dqn.py"}:
            continue
        over = {script: float(np.median([r["over"] for r in runs])) for script, runs in rows.items()}
        what = "copied every 100 steps (the defaults)" if tag == "defaults" else f"`{setting['flags']}`"
        lines.append(f"| {what} | {paired['pairs']} | {over['dqn_cartpole.py']:+.1f} | {over['double_dqn.py']:+.1f} | "
                     f"{paired['p_second_overestimates_less']:.2f} [{paired['ci95'][0]:.2f}, {paired['ci95'][1]:.2f}] |")
    return "\n".join(lines)


def versus_table(versus):
    lines = ["| script | median episodes to 195 | P(fewer episodes than DQN) [95%] | P(better final network than DQN) [95%] |",
             "|---|---|---|---|"]
    for script, v in versus.items():
        lines.append(f"| `{script}` | {v['median_episodes']:.0f} (DQN: {v['dqn_median_episodes']:.0f}) | "
                     f"{v['p_fewer_episodes']:.2f} [{v['ci95_fewer_episodes'][0]:.2f}, {v['ci95_fewer_episodes'][1]:.2f}] | "
                     f"{v['p_better_final']:.2f} [{v['ci95_better_final'][0]:.2f}, {v['ci95_better_final'][1]:.2f}] |")
    return "\n".join(lines)


def blocks(summaries):
    """The tables docs/lecture03.md holds between <!-- claims:NAME --> and <!-- /claims:NAME -->."""
    rows = {name: r for name in ORDER if (r := row(summaries, name))}
    part4 = {name: r for name, r in rows.items() if EXPERIMENTS[name][0].startswith("Part 4")}
    part7 = {name: r for name, r in rows.items() if EXPERIMENTS[name][0].startswith("Part 7")}
    return rows, {"part4": table(part4), "part7": table(part7), "versus": versus_table(versus_dqn(summaries)),
                  "reinforce": reinforce_table(versus_reinforce(summaries)), "double": double_table(),
                  "fixes": fixes_table(fixes(summaries)), "grid": grid_table(summaries)}


def sync_page(text, tables):
    """(the page with every claims block rewritten, the names of those that changed)."""
    import re
    changed = []

    def rewrite(m):
        new = tables[m["name"]]
        if m["body"] != new:
            changed.append(m["name"])
        return f"{m['open']}{new}\n{m['close']}"
    pattern = re.compile(r"(?P<open><!-- claims:(?P<name>\w+) -->\n)(?P<body>[\s\S]*?)\n?(?P<close><!-- /claims:(?P=name) -->)")
    return pattern.sub(rewrite, text), changed


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--list", action="store_true", help="print each experiment's command")
    p.add_argument("--run", metavar="NAME", help="run one experiment")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if docs/lecture03.md's tables are stale")
    a = p.parse_args(argv)
    if a.list:
        for name in ORDER:
            print(f"{name}: {EXPERIMENTS[name][0]}\n  {' '.join(command(name))}")
        print("double: Part 6, overestimation against the true return, at the defaults and with a slower target")
        print("\n".join(f"  {line}" for line in DOUBLE_COMMANDS))
        print(f"fixes: Part 5, the lecture's DQN with each fix\n  {FIX_COMMAND}")
        print(f"reinforce: the exercise, DQN against REINFORCE\n  {REINFORCE_COMMAND}\n  (its tuning grid) {GRID_COMMAND}")
        return
    if a.run:
        if a.run not in EXPERIMENTS:
            sys.exit(f"error: no experiment {a.run!r}: {', '.join(EXPERIMENTS)}")
        sys.exit(subprocess.call([sys.executable, *command(a.run)[1:]], cwd=ROOT))
    with open(os.path.join(RESULTS, "summary.json")) as f:
        summaries = json.load(f)
    rows, tables = blocks(summaries)
    page = os.path.join(ROOT, "docs", "lecture03.md")
    with open(page) as f:
        text, changed = sync_page(f.read(), tables)
    if a.check:
        if changed:
            sys.exit(f"docs/lecture03.md is stale: {', '.join(changed)} (run python benchmarks/lecture_claims.py)")
        return
    with open(page, "w") as f:
        f.write(text)
    versus = versus_dqn(summaries)
    with open(CLAIMS_JSON, "w") as f:
        json.dump({"experiments": {name: {**r, "command": " ".join(command(name))} for name, r in rows.items()},
                   "versus_dqn": versus, "versus_reinforce": versus_reinforce(summaries),
                   "lecture_fixes": fixes(summaries)}, f, indent=1)
    inputs = [os.path.join(RESULTS, "summary.json"), os.path.join(RESULTS, "true_value.json")]
    provenance.record(os.path.relpath(CLAIMS_JSON, ROOT), inputs=inputs, command="python benchmarks/lecture_claims.py")
    print(table(rows))
    for script, v in versus.items():
        print(f"{script} against DQN, {v['pairs']} seeds: median episodes to 195 {v['median_episodes']:.0f} vs "
              f"{v['dqn_median_episodes']:.0f}, P(fewer) {v['p_fewer_episodes']:.2f} [{v['ci95_fewer_episodes'][0]:.2f}, "
              f"{v['ci95_fewer_episodes'][1]:.2f}]; P(better final) {v['p_better_final']:.2f} "
              f"[{v['ci95_better_final'][0]:.2f}, {v['ci95_better_final'][1]:.2f}]")


if __name__ == "__main__":
    main()
