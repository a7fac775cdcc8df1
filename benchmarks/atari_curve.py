"""Learning curve of a dqn_atari.py run as a table: mean real game score per bin of training steps.

    python benchmarks/atari_curve.py runs/<run>/episodes.csv [--random runs/<random_run>/episodes.csv] [--bin 25000]
    python benchmarks/atari_curve.py runs/<run>/episodes.csv --png curve.png     # also a plot (matplotlib)

Each row of episodes.csv is one whole game (all lives, unclipped score), logged at the step it ended.
With --random, the same table for a run of the same script that only acts at random (--start-e 1 --end-e 1
and --learning-starts past the end), as a baseline measured the same way; its mean over all games is printed too.
"""
import argparse
import csv

import numpy as np


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return np.array([int(r["global_step"]) for r in rows]), np.array([float(r["episodic_return"]) for r in rows])


def binned(steps, scores, bin_size, end):
    out = []
    for lo in range(0, end, bin_size):
        mask = (steps > lo) & (steps <= lo + bin_size)
        out.append((lo, lo + bin_size, int(mask.sum()), scores[mask].mean() if mask.any() else float("nan"),
                    scores[mask].max() if mask.any() else float("nan")))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("episodes_csv")
    p.add_argument("--random", metavar="CSV", help="episodes.csv of a random-policy run, for comparison")
    p.add_argument("--bin", type=int, default=25_000)
    p.add_argument("--png", metavar="PATH", help="also save a plot (needs matplotlib)")
    a = p.parse_args()
    steps, scores = load(a.episodes_csv)
    end = int(np.ceil(steps.max() / a.bin) * a.bin)
    print("| steps | games | mean game score | best game |")
    print("|---|---|---|---|")
    for lo, hi, n, mean, best in binned(steps, scores, a.bin, end):
        print(f"| {lo // 1000}k-{hi // 1000}k | {n} | {mean:.1f} | {best:.0f} |")
    if a.random:
        random_steps, random_scores = load(a.random)
        print(f"\nrandom policy: {random_scores.mean():.2f} ± {random_scores.std():.2f} (mean ± sd) over "
              f"{len(random_scores)} games, {random_steps.max():,} steps; best game {random_scores.max():.0f}")
    if a.png:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise SystemExit("error: --png needs matplotlib: pip install matplotlib (the table above needs nothing)")
        rows = binned(steps, scores, a.bin, end)
        plt.plot([(lo + hi) / 2 for lo, hi, *_ in rows], [m for *_, m, _ in rows], marker="o", label="dqn_atari.py")
        if a.random:
            plt.axhline(random_scores.mean(), color="gray", linestyle="--", label="random policy")
        plt.xlabel("training steps (agent steps, 4 frames each)")
        plt.ylabel(f"mean game score per {a.bin // 1000}k steps")
        plt.legend()
        plt.savefig(a.png, dpi=100)
        print(f"plot saved to {a.png}")


if __name__ == "__main__":
    main()
