"""Turn the JSON lines of benchmarks/seed_sweep.py --json into the README's results table (markdown).

    python benchmarks/sweep_table.py sweeps.jsonl
"""
import json
import statistics
import sys


def cell(scores, threshold=475):
    scores = [s for s in scores if s is not None]
    learned = sum(s >= threshold for s in scores)
    return f"{learned}/{len(scores)}", f"{statistics.mean(scores):.1f} ± {statistics.pstdev(scores):.1f}"


def main():
    print("| script | seeds ≥ 475, best model (the run's `eval:`) | mean ± sd | seeds ≥ 475, final model | mean ± sd "
          "| per-seed final (seeds in order) | steps until the last 20 training episodes average 475, median | "
          "CPU s per run, median |")
    print("|---|---|---|---|---|---|---|---|")
    for line in open(sys.argv[1]):
        sweep = json.loads(line)
        rows = sorted(sweep["rows"], key=lambda r: r["seed"])
        best_count, best_mean = cell([r["best"] for r in rows])
        final_count, final_mean = cell([r["final"] for r in rows])
        per_seed = ", ".join(f"{r['final']:.0f}" if r["final"] is not None else "-" for r in rows)
        reached = [r.get("steps_to_threshold") for r in rows]
        reached_known = [s for s in reached if s is not None]
        median_steps = f"{statistics.median(reached_known):,.0f}" if reached_known else "never"
        if reached_known and len(reached_known) < len(rows):
            median_steps += f" ({len(rows) - len(reached_known)} never)"
        cpu = statistics.median(r["cpu_s"] for r in rows)
        print(f"| {sweep['script']} {' '.join(sweep['extra'])} | {best_count} | {best_mean} | {final_count} | "
              f"{final_mean} | {per_seed} | {median_steps} | {cpu:.0f} |")


if __name__ == "__main__":
    main()
