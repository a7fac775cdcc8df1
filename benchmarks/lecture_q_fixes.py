"""Lecture 03's tabular Q-learning (benchmarks/lecture_q_learning.py) on 40 seeds, and its differences from
q_learning_frozenlake.py put right one at a time, as Part 5 does for the lecture's DQN.

    python benchmarks/lecture_q_fixes.py                      # 5 arms x 40 seeds (101-140), 10,000 episodes each
    python benchmarks/lecture_q_fixes.py --seeds 101-102 --episodes 50 --out /tmp/q.json   # a tiny run

Arms: "lecture" (the code as written, seeded), then one --fix each: "ties" (random among tied best actions),
"truncation" (the time limit does not stop the bootstrap), "schedules" (epsilon 1.0 -> 0.1 over the first half,
alpha 0.1 -> 0 over training: q_learning_frozenlake.py's defaults) and "all" (the three together).

A run of seed s seeds numpy's global generator, Python's random and the env's first reset with s, for every arm:
arm X's run s and the lecture's run s start from the same seed (paired by seed; their random streams part as soon as
the two codes act differently). Each run is scored by the EXACT probability that its greedy policy reaches the goal
within the 100-step limit (dynamic programming on env.unwrapped.P: lecture_q_learning.exact_success), with no
Monte-Carlo noise. The greedy policy is np.argmax's (the lecture's select_action(state, training=False)); with
--fix ties, ties are broken at random at evaluation too (each tied action with equal probability).

The table: per arm, the seeds whose policy is as good as the gamma-optimal one (exact success >= 0.740: the
gamma = 0.99 optimal policy's is 0.7402, the best any policy can do within the limit 0.7442), the mean exact success,
and the paired win rate P(arm's exact success > the lecture's on the same seed), ties counted as half, with its
Wilson interval and the word benchmarks/verdict.py gives it. Seeds 101-140: none of q_learning_frozenlake.py's
defaults was chosen on them (its docs ran seeds 1-20).

Writes benchmarks/results/lecture_q_learning.json (per-seed exact success of every arm, and the table) and records
it in benchmarks/results/sources.json (only when it writes that file, not with --out elsewhere).
"""
import argparse
import contextlib
import io
import json
import multiprocessing
import os
import random
import sys
import time

import gymnasium as gym
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lecture_q_learning  # noqa: E402
import provenance  # noqa: E402
import verdict  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "benchmarks", "results", "lecture_q_learning.json")
ARMS = {"lecture": (), "ties": ("ties",), "truncation": ("truncation",), "schedules": ("schedules",),
        "all": lecture_q_learning.FIXES}
OPTIMAL_BAR = 0.740  # the gamma-optimal policy's exact success is 0.7402; the best within 100 steps 0.7442


def seed_list(text):
    """'101-140' or '1,3,5' or '101-103,110'."""
    seeds = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += list(range(int(low), int(high or low) + 1))
    return seeds


def one_run(job):
    """(arm, seed, episodes) -> (arm, seed, exact success of the greedy policy, training seconds)."""
    arm, seed, episodes = job
    fixes = ARMS[arm]
    np.random.seed(seed)
    random.seed(seed)
    start = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # its progress line every 1,000 episodes
        agent, _ = lecture_q_learning.train_q_learning(n_episodes=episodes, seed=seed, fixes=fixes)
    seconds = time.process_time() - start
    policy = lecture_q_learning.greedy_policy(agent.q_table, ties_at_random="ties" in fixes)
    return arm, seed, lecture_q_learning.exact_success(gym.make("FrozenLake-v1"), policy), seconds


def table(per_seed, seeds):
    """One row per arm: the count at the optimum, the mean, and the paired win rate against the lecture's code."""
    rows = []
    base = per_seed["lecture"]
    for arm, values in per_seed.items():
        reached = sum(v >= OPTIMAL_BAR for v in values)
        row = {"arm": arm, "fixes": list(ARMS[arm]), "seeds": len(values), "reached_optimum": reached,
               "reached_optimum_wilson": list(verdict.wilson(reached, len(values))),
               "mean_exact_success": float(np.mean(values)), "min_exact_success": float(min(values)),
               "max_exact_success": float(max(values))}
        if arm != "lecture":
            p, interval, n = verdict.win_rate(values, base)
            row.update(win_rate_vs_lecture=p, win_rate_wilson=list(interval), verdict=verdict.word(interval, n, arm))
        rows.append(row)
    return rows


def show_table(rows):
    print(f"| arm | exact success >= {OPTIMAL_BAR:.3f} (seeds) | mean exact success | P(arm > lecture, same seed) | verdict |")
    print("|---|---|---|---|---|")
    for r in rows:
        versus = verdict.show(r["win_rate_vs_lecture"], r["win_rate_wilson"]) if "verdict" in r else "(the baseline)"
        print(f"| {r['arm']} | {verdict.count(r['reached_optimum'], r['seeds'])} | {r['mean_exact_success']:.4f} "
              f"| {versus} | {r.get('verdict', '')} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="101-140", help="seeds, e.g. 101-140 (the default) or 1,2,3")
    p.add_argument("--episodes", type=int, default=10_000, help="training episodes per run (the lecture: 10,000)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {', '.join(ARMS)} (lecture always runs)")
    p.add_argument("--jobs", type=int, default=1, help="processes (runs are independent; results do not depend on it)")
    p.add_argument("--out", default=DEFAULT_OUT, help="the JSON file to write (default: benchmarks/results/lecture_q_learning.json)")
    a = p.parse_args(argv)
    arms = ["lecture"] + [arm for arm in a.arms.split(",") if arm and arm != "lecture"]
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown or a.episodes < 1:
        p.error(f"unknown arm {', '.join(unknown)}" if unknown else "--episodes must be at least 1")
    seeds = seed_list(a.seeds)
    jobs = [(arm, seed, a.episodes) for arm in arms for seed in seeds]
    results = {}
    with multiprocessing.Pool(a.jobs) if a.jobs > 1 else contextlib.nullcontext() as pool:
        for arm, seed, exact, seconds in (pool.imap if pool else map)(one_run, jobs):
            results[arm, seed] = exact
            print(f"{arm:10s} seed {seed}: exact success {exact:.4f} ({seconds:.1f} s)", flush=True)
    per_seed = {arm: [results[arm, seed] for seed in seeds] for arm in arms}
    rows = table(per_seed, seeds)
    show_table(rows)
    command = "python benchmarks/lecture_q_fixes.py" + ("" if argv is None and len(sys.argv) == 1 else " " + " ".join(argv if argv is not None else sys.argv[1:]))
    out = {"what": "Lecture 03's tabular Q-learning on FrozenLake-v1 (4x4, slippery, 100-step limit), its differences "
                   "from q_learning_frozenlake.py put right one at a time; each run scored by the exact success "
                   "probability of its greedy policy within the time limit",
           "command": command, "episodes": a.episodes, "seeds": seeds, "optimal_bar": OPTIMAL_BAR,
           "pairing": "by seed: arm X's run s and the lecture's run s seed numpy, random and the env with s",
           "margin": verdict.MARGIN, "per_seed": per_seed, "table": rows}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    if os.path.abspath(a.out) == DEFAULT_OUT:
        provenance.record(os.path.relpath(DEFAULT_OUT, ROOT),
                          scripts=["benchmarks/lecture_q_fixes.py", "benchmarks/lecture_q_learning.py"], command=command)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
