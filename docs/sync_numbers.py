"""Rewrite the numbers blocks of README.md from benchmarks/results/summary.json, so README says what was measured.

    python docs/sync_numbers.py           # after benchmarks/run_seeds.py wrote a new summary.json
    python docs/sync_numbers.py --check   # change nothing; exit 1 naming the blocks that disagree with summary.json

A block is the text between `<!-- numbers:NAME -->` and `<!-- /numbers:NAME -->`; this script writes all of it:
  exercise  Lecture 03's exercise per CartPole script: seeds that met "a 100-episode mean of 195 within 200
            episodes", the median episode [95% interval] over both seed groups, the kept model at 475, CPU time
  others    every other summary (FrozenLake, other envs, other flags): seeds at the bar, mean [95% interval]
The 20-seed medians pool seeds 1-10 and 101-110 with run_seeds.py's own rule (a seed that never met the
criterion counts as more episodes than any that did) and a bootstrap generator seeded from what it summarises.
"""
import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SPEC = importlib.util.spec_from_file_location("run_seeds", ROOT / "benchmarks" / "run_seeds.py")
run_seeds = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(run_seeds)
BLOCK = re.compile(r"(<!-- numbers:(?P<name>\w+) -->\n)(?P<body>[\s\S]*?)(<!-- /numbers:(?P=name) -->)")
CARTPOLE_SCRIPTS = ["dqn_cartpole.py", "double_dqn.py", "dueling_dqn.py", "per_dqn.py", "benchmarks/lecture_dqn.py"]
GROUPS = ["1-10", "101-110"]


def number(x, digits=1):
    return "—" if x is None else f"{x:,.{digits}f}"


def episodes(x):
    return "not met" if x is None else f"{int(x)}"


def pooled_median(script, per_seed, key, thousands=False):
    """Median over the pooled seeds of per_seed[key] (None: never), with run_seeds.py's bootstrap interval."""
    values = [entry[key] for entry in per_seed]
    rng = run_seeds.bootstrap_rng(script, "CartPole-v1", [key], [entry["seed"] for entry in per_seed])
    median, interval = run_seeds.median_with_never(values, rng)
    show = (lambda x: "not met" if x is None else f"{x / 1000:g}k") if thousands else episodes
    return f"{show(median)} [{show(interval[0])}, {show(interval[1])}]"


def exercise_block(summaries):
    head = ("| script | met in ≤ 200 episodes: 1-10 · 101-110 | episodes to 195: median [95%] | kept ≥ 475: 1-10 · "
            "101-110 | kept: mean [95%] | steps to a check ≥ 950: median [95%] | CPU s |\n"
            "|---|---|---|---|---|---|---|\n")
    rows = []
    for script in CARTPOLE_SCRIPTS:
        groups = {s["seeds"]: s for s in summaries if s["script"] == script and s["env_id"] == "CartPole-v1"
                  and s["flags_tag"] == "defaults" and s["seeds"] in GROUPS}
        if not groups:
            continue
        per_seed = [entry for group in GROUPS if group in groups for entry in groups[group]["per_seed"]]
        met = " · ".join(f"{groups[g]['lecture_criterion']['within_200']}/{groups[g]['runs']}" if g in groups else "—"
                         for g in GROUPS)
        kept = [entry["kept"] for entry in per_seed]
        rng = run_seeds.bootstrap_rng(script, "CartPole-v1", ["kept"], [entry["seed"] for entry in per_seed])
        low, high = run_seeds.bootstrap_interval(kept, rng)
        at_475 = " · ".join(f"{groups[g]['kept']['reached']}/{groups[g]['runs']}" if g in groups else "—" for g in GROUPS)
        for entry in per_seed:
            entry["steps_to_950"] = (entry["first_check_at_threshold"] or {}).get("step")
        first_check = pooled_median(script, per_seed, "steps_to_950", thousands=True)
        if script == run_seeds.LECTURE:  # no checks, an episode budget: its kept model is its final one
            at_475, first_check = " · ".join(f"{groups[g]['kept']['reached']}/{groups[g]['runs']}" if g in groups
                                              else "—" for g in GROUPS), "no checks"
        cpu = np.median([groups[g]["cpu_s_median"] for g in groups if groups[g]["cpu_s_median"]] or [np.nan])
        rows.append(f"| `{Path(script).name}` | {met} | {pooled_median(script, per_seed, 'episodes_to_195')} | {at_475} | "
                    f"{number(float(np.mean(kept)))} [{number(low)}, {number(high)}] | {first_check} | {number(cpu, 0)} |\n")
    return head + "".join(rows)


def others_block(summaries):
    head = ("| script | task, budget, flags | seeds | kept model: seeds at the bar, mean [95%] | final network | CPU s per run |\n"
            "|---|---|---|---|---|---|\n")
    rows = []
    for s in summaries:
        if s["env_id"] == "CartPole-v1" and s["flags_tag"] == "defaults" and s["script"] in CARTPOLE_SCRIPTS:
            continue
        flags = " ".join(s["flags"]) if s["flags"] else "defaults"
        digits = 4 if s["env_id"] == "FrozenLake-v1" else 1
        cells = [f"{s[m]['reached']}/{s['runs']} at {s['threshold']:g}, {number(s[m]['mean'], digits)} "
                 f"[{number(s[m]['ci95'][0], digits)}, {number(s[m]['ci95'][1], digits)}]" for m in ("kept", "final")]
        rows.append(f"| `{Path(s['script']).name}` | {s['env_id']}, {run_seeds.budget_text(s['budget'])}, {flags} | "
                    f"{s['seeds']} | {cells[0]} | {cells[1]} | {number(s['cpu_s_median'], 0)} |\n")
    return head + "".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block disagrees")
    p.add_argument("--readme", default=str(ROOT / "README.md"))
    p.add_argument("--summary", default=str(ROOT / "benchmarks" / "results" / "summary.json"))
    a = p.parse_args(argv)
    summaries = json.loads(Path(a.summary).read_text())
    blocks = {"exercise": exercise_block(summaries), "others": others_block(summaries)}
    text = Path(a.readme).read_text()
    stale = [m["name"] for m in BLOCK.finditer(text) if m["name"] in blocks and m["body"] != blocks[m["name"]]]
    unknown = [m["name"] for m in BLOCK.finditer(text) if m["name"] not in blocks]
    if unknown:
        sys.exit(f"error: {a.readme}: unknown numbers blocks {unknown}")
    if a.check:
        if stale:
            print(f"{a.readme}: out of date with {a.summary}: {', '.join(stale)} (run python docs/sync_numbers.py)")
            sys.exit(1)
        print(f"{a.readme}: every numbers block agrees with {a.summary}")
        return
    Path(a.readme).write_text(BLOCK.sub(lambda m: m[1] + blocks.get(m["name"], m["body"]) + m[4], text))
    print(f"{a.readme}: rewrote {', '.join(stale) or 'nothing'}")


if __name__ == "__main__":
    main()
