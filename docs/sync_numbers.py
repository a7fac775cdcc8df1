"""Rewrite the numbers blocks of README.md from benchmarks/results/summary.json, so README says what was measured.

    python docs/sync_numbers.py           # after benchmarks/run_seeds.py wrote a new summary.json (README and docs)
    python docs/sync_numbers.py --check   # change nothing; exit 1 naming the blocks that disagree with summary.json

A block is the text between `<!-- numbers:NAME -->` and `<!-- /numbers:NAME -->`; this script writes all of it:
  exercise  per CartPole script: the final network at 475 and its mean [95% interval]; Lecture 03's exercise
            (seeds that met "a 100-episode mean of 195 within 200 episodes", the median episode [95% interval]
            over both seed groups); the kept model at 475; the probe's peak mean Q; CPU time
  versus    each CartPole script's final network against DQN's on the same seeds (probability of improvement)
  seeds     per CartPole script and seed group: the final network seed by seed, the kept model, the exercise
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
    head = ("| script | final network ≥ 475: 1-10 · 101-110 | final: mean [95%] | exercise met in ≤ 200 episodes: "
            "1-10 · 101-110 | episodes to 195: median [95%] | kept model ≥ 475: 1-10 · 101-110 | peak mean Q: median "
            "(runs past 1,000) | CPU s |\n|---|---|---|---|---|---|---|---|\n")
    rows = []
    for script in CARTPOLE_SCRIPTS:
        groups = {s["seeds"]: s for s in summaries if s["script"] == script and s["env_id"] == "CartPole-v1"
                  and s["flags_tag"] == "defaults" and s["seeds"] in GROUPS}
        if not groups:
            continue
        per_seed = [entry for group in GROUPS if group in groups for entry in groups[group]["per_seed"]]
        counts = lambda take: " · ".join(f"{take(groups[g])}/{groups[g]['runs']}" if g in groups else "—"  # noqa: E731
                                         for g in GROUPS)
        final = [entry["final"] for entry in per_seed]
        rng = run_seeds.bootstrap_rng(script, "CartPole-v1", ["final"], [entry["seed"] for entry in per_seed])
        low, high = run_seeds.bootstrap_interval(final, rng)
        peaks = [entry.get("peak_mean_q") for entry in per_seed]
        if None in peaks:
            q = "not logged"
        else:
            q = f"{np.median(peaks):.0f} ({sum(entry['peak_max_q'] > 1000 for entry in per_seed)})"
        kept = counts(lambda g: g["kept"]["reached"])
        if script == run_seeds.LECTURE:  # no checks: its one model is its final network
            kept = "no checks"
        cpu = np.median([groups[g]["cpu_s_median"] for g in groups if groups[g]["cpu_s_median"]] or [np.nan])
        rows.append(f"| `{Path(script).name}` | {counts(lambda g: g['final']['reached'])} | "
                    f"{number(float(np.mean(final)))} [{number(low)}, {number(high)}] | "
                    f"{counts(lambda g: g['lecture_criterion']['within_200'])} | "
                    f"{pooled_median(script, per_seed, 'episodes_to_195')} | {kept} | {q} | {number(cpu, 0)} |\n")
    return head + "".join(rows)


def versus_block(summaries):
    """Each script's final network over the 20 seeds against DQN's on the same seeds: the count at 475 with its 95%
    Wilson interval, and the probability of improvement P(X > DQN) (ties count half), paired by seed."""
    head = ("| script | final ≥ 475 of 20 [95% Wilson] | final: mean | P(final > DQN's final), paired by seed [95%] |\n"
            "|---|---|---|---|\n")
    finals = {}
    for script in CARTPOLE_SCRIPTS[:4]:
        entries = [entry for s in summaries if s["script"] == script and s["env_id"] == "CartPole-v1"
                   and s["flags_tag"] == "defaults" and s["seeds"] in GROUPS for entry in s["per_seed"]]
        finals[script] = {entry["seed"]: entry["final"] for entry in entries}
    if not finals.get("dqn_cartpole.py"):
        return head
    rows = []
    for script, by_seed in finals.items():
        if not by_seed:
            continue
        reached, n = sum(v >= 475 for v in by_seed.values()), len(by_seed)
        low, high = run_seeds.wilson(reached, n)
        cell = "—"
        if script != "dqn_cartpole.py":
            seeds = sorted(set(by_seed) & set(finals["dqn_cartpole.py"]))
            rng = run_seeds.bootstrap_rng(script, "CartPole-v1", ["versus dqn_cartpole.py"], seeds)
            p, (p_low, p_high) = run_seeds.prob_improvement([by_seed[s] for s in seeds],
                                                            [finals["dqn_cartpole.py"][s] for s in seeds], rng)
            cell = f"{p:.2f} [{p_low:.2f}, {p_high:.2f}]"
        rows.append(f"| `{script}` | {reached}/{n} [{low:.2f}, {high:.2f}] | {np.mean(list(by_seed.values())):.1f} | {cell} |\n")
    return head + "".join(rows)


def seeds_block(summaries):
    """Per CartPole script and seed group: the final network seed by seed (below 475 in bold), the kept model, the
    exercise, the probe's peak mean Q."""
    head = ("| script | seeds | final ≥ 475 | final network, per seed | kept ≥ 475 | exercise ≤ 200 episodes | "
            "peak mean Q: median (largest) |\n|---|---|---|---|---|---|---|\n")
    rows = []
    for script in CARTPOLE_SCRIPTS[:4]:
        for group in GROUPS:
            found = [s for s in summaries if s["script"] == script and s["env_id"] == "CartPole-v1"
                     and s["flags_tag"] == "defaults" and s["seeds"] == group]
            if not found:
                continue
            s = found[0]
            finals = ", ".join(f"{e['final']:g}" if e["final"] >= 475 else f"**{e['final']:g}**" for e in s["per_seed"])
            peaks = [e["peak_mean_q"] for e in s["per_seed"] if e.get("peak_mean_q") is not None]
            q = f"{np.median(peaks):.0f} ({max(peaks):,.0f})" if peaks else "not logged"
            rows.append(f"| `{script}` | {group} | {s['final']['reached']}/{s['runs']} | {finals} | "
                        f"{s['kept']['reached']}/{s['runs']} | {s['lecture_criterion']['within_200']}/{s['runs']} | {q} |\n")
    return head + "".join(rows)


def others_block(summaries):
    head = ("| script | task, budget, flags | seeds | final network: seeds at the bar, mean [95%] | kept model | CPU s per run |\n"
            "|---|---|---|---|---|---|\n")
    rows = []
    for s in summaries:
        if s["env_id"] == "CartPole-v1" and (s["script"] in CARTPOLE_SCRIPTS or s["script"].startswith("benchmarks/")):
            continue  # the defaults are in the tables above, the lecture's claims (REINFORCE too) in docs/lecture03.md
        flags = " ".join(s["flags"]) if s["flags"] else "defaults"
        digits = 4 if s["env_id"] == "FrozenLake-v1" else 1
        cells = [f"{s[m]['reached']}/{s['runs']} at {s['threshold']:g}, {number(s[m]['mean'], digits)} "
                 f"[{number(s[m]['ci95'][0], digits)}, {number(s[m]['ci95'][1], digits)}]" for m in ("final", "kept")]
        rows.append(f"| `{Path(s['script']).name}` | {s['env_id']}, {run_seeds.budget_text(s['budget'])}, {flags} | "
                    f"{s['seeds']} | {cells[0]} | {cells[1]} | {number(s['cpu_s_median'], 0)} |\n")
    return head + "".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block disagrees")
    p.add_argument("--readme", help="one page to sync (default: README.md, docs/variants.md, docs/dqn_cartpole.md)")
    p.add_argument("--summary", default=str(ROOT / "benchmarks" / "results" / "summary.json"))
    a = p.parse_args(argv)
    summaries = json.loads(Path(a.summary).read_text())
    blocks = {"exercise": exercise_block(summaries), "versus": versus_block(summaries), "others": others_block(summaries),
              "seeds": seeds_block(summaries)}
    pages = [a.readme] if a.readme else [str(ROOT / name) for name in ("README.md", "docs/variants.md", "docs/dqn_cartpole.md")]
    out_of_date = False
    for page in pages:
        text = Path(page).read_text()
        stale = [m["name"] for m in BLOCK.finditer(text) if m["name"] in blocks and m["body"] != blocks[m["name"]]]
        unknown = [m["name"] for m in BLOCK.finditer(text) if m["name"] not in blocks]
        if unknown:
            sys.exit(f"error: {page}: unknown numbers blocks {unknown}")
        if a.check:
            if stale:
                print(f"{page}: out of date with {a.summary}: {', '.join(stale)} (run python docs/sync_numbers.py)")
                out_of_date = True
            continue
        Path(page).write_text(BLOCK.sub(lambda m: m[1] + blocks.get(m["name"], m["body"]) + m[4], text))
        print(f"{page}: rewrote {', '.join(stale) or 'nothing'}")
    if a.check:
        if out_of_date:
            sys.exit(1)
        print(f"every numbers block agrees with {a.summary}")


if __name__ == "__main__":
    main()
