"""Maximization bias where it lives: Sutton & Barto's Example 6.7 (Figure 6.5), Q-learning against Double Q-learning.

    python benchmarks/maximization_bias.py            # 10,000 runs x 300 episodes, a few seconds
    python benchmarks/maximization_bias.py --plot-only   # redraw docs/maximization_bias.png from the committed JSON
    python benchmarks/maximization_bias.py --runs 50 --episodes 20 --out /tmp/mb   # a tiny run, files in /tmp/mb

The MDP: every episode starts in state A, which has two actions. "right" ends the episode with reward 0. "left"
gives reward 0 and leads to state B, which has 10 actions; each ends the episode with a reward drawn from
N(-0.1, 1). Going left is worth -0.1 on average, right 0: right is better. But after a few visits to B the largest
of B's 10 noisy estimates is usually above 0, and Q-learning's target for (A, left), max_b Q(B, b), believes it:
the maximization bias. Double Q-learning (van Hasselt 2010) keeps two tables; a fair coin picks which one an update
changes, and its target values the argmax of the table being updated with the OTHER table's estimate, whose noise
is independent of the choice, so the target is not biased upwards.

Both agents: epsilon-greedy with epsilon = 0.1 (Double Q-learning on the sum of its two tables), step size
alpha = 0.1, gamma = 1, all estimates start at 0, every argmax breaks ties at random. With epsilon = 0.1 the best
an epsilon-greedy agent can do is to go left 5% of the time (a random action half the time it explores).

All runs of a method are simulated at once (numpy arrays with one row per run), from ONE seeded numpy Generator:
Q-learning's runs first, then Double Q-learning's. The runs are independent; run i of one method is paired with
run i of the other by index (not by a shared seed).

The verdict (benchmarks/verdict.py's rule): per run, the number of episodes among the first 100 in which the agent
went left from A; P = the paired win rate of "Double Q-learning went left fewer times than Q-learning" (ties as
half), its Wilson interval, and the word verdict.claim() gives it (the lecture's claim predicts P above 0.5).

Writes benchmarks/results/maximization_bias.json (the % of left actions from A per episode for each method, and the
verdict's numbers) and draws docs/maximization_bias.png from it, each recorded in benchmarks/results/sources.json.
With --out DIR both go to DIR instead and nothing is recorded.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import provenance  # noqa: E402
import verdict  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = os.path.join(ROOT, "benchmarks", "results", "maximization_bias.json")
FIGURE = os.path.join(ROOT, "docs", "maximization_bias.png")
LEFT, RIGHT = 0, 1  # A's actions
EPSILON, ALPHA, GAMMA = 0.1, 0.1, 1.0
B_ACTIONS, B_MEAN, B_STD = 10, -0.1, 1.0
WINDOW = 100  # the verdict's per-run statistic: left actions over the first 100 episodes


def greedy(values, rng):
    """argmax over the last axis of each row, ties broken at random (each tied action equally likely)."""
    best = values == values.max(axis=-1, keepdims=True)
    return np.argmax(best * rng.random(values.shape), axis=-1)  # the largest random draw among the tied actions


def epsilon_greedy(values, rng, epsilon=EPSILON):
    """One action per row: with probability epsilon uniform at random, else greedy (ties at random)."""
    explore = rng.random(values.shape[0]) < epsilon
    return np.where(explore, rng.integers(values.shape[-1], size=values.shape[0]), greedy(values, rng))


def q_learning_update(q, runs, action, reward, next_q=None, alpha=ALPHA, gamma=GAMMA):
    """Q(s, a) += alpha * (r + gamma * max_a' Q(s', a') - Q(s, a)) for the rows `runs` of q ([run, action], the
    table of state s). next_q: the table of s' ([run, action']), None when s' is terminal (its value is 0)."""
    target = reward + (0.0 if next_q is None else gamma * next_q[runs].max(axis=1))
    q[runs, action] += alpha * (target - q[runs, action])


def double_q_update(q, runs, action, reward, first, next_q=None, rng=None, alpha=ALPHA, gamma=GAMMA):
    """Double Q-learning's update for the rows `runs`: q is [table, run, action] (s's two tables), next_q the same
    for s' (None: terminal). Where `first` (the coin) is True table 0 is updated, else table 1; the updated table
    picks s' 's action, a* = argmax_a' Q_this(s', a') (ties at random), and the other table values it:
    Q_this(s, a) += alpha * (r + gamma * Q_other(s', a*) - Q_this(s, a)). The other table is left unchanged."""
    this = np.where(first, 0, 1)
    if next_q is None:
        target = reward + 0.0
    else:
        best = greedy(next_q[this, runs], rng)
        target = reward + gamma * next_q[1 - this, runs, best]
    q[this, runs, action] += alpha * (target - q[this, runs, action])


def simulate(method, runs, episodes, rng):
    """Left actions from A, a bool array [episode, run], for `runs` independent runs of "q" or "double"."""
    double = method == "double"
    shape = (2, runs) if double else (runs,)
    qa, qb = np.zeros(shape + (2,)), np.zeros(shape + (B_ACTIONS,))
    went_left = np.zeros((episodes, runs), dtype=bool)
    for episode in range(episodes):
        action = epsilon_greedy(qa.sum(axis=0) if double else qa, rng)  # Double: on the sum of the two tables
        left = action == LEFT
        went_left[episode] = left
        right_runs, left_runs = np.flatnonzero(~left), np.flatnonzero(left)
        if double:
            double_q_update(qa, right_runs, RIGHT, 0.0, rng.random(len(right_runs)) < 0.5)
            double_q_update(qa, left_runs, LEFT, 0.0, rng.random(len(left_runs)) < 0.5, next_q=qb, rng=rng)
        else:
            q_learning_update(qa, right_runs, RIGHT, 0.0)
            q_learning_update(qa, left_runs, LEFT, 0.0, next_q=qb)
        # From B: one of 10 actions, a reward ~ N(-0.1, 1), the episode ends
        b_action = epsilon_greedy(qb.sum(axis=0)[left_runs] if double else qb[left_runs], rng)
        reward = rng.normal(B_MEAN, B_STD, size=len(left_runs))
        if double:
            double_q_update(qb, left_runs, b_action, reward, rng.random(len(left_runs)) < 0.5)
        else:
            q_learning_update(qb, left_runs, b_action, reward)
    return went_left


def measure(runs, episodes, seed):
    """Both methods' curves and the verdict's numbers, as the JSON file holds them."""
    rng = np.random.default_rng(seed)
    left = {method: simulate(method, runs, episodes, rng) for method in ("q", "double")}
    window = min(WINDOW, episodes)
    per_run = {method: left[method][:window].sum(axis=0) for method in left}  # left actions, first `window` episodes
    p, interval, n = verdict.win_rate(per_run["double"].tolist(), per_run["q"].tolist(), higher_is_better=False)
    wins = int((per_run["double"] < per_run["q"]).sum())
    ties = int((per_run["double"] == per_run["q"]).sum())
    return {
        "what": "Sutton & Barto Example 6.7 (Figure 6.5): % of episodes whose first action from A is left, per "
                "episode, over independent runs; Q-learning against Double Q-learning (van Hasselt 2010)",
        "command": None, "runs": runs, "episodes": episodes, "seed": seed,
        "epsilon": EPSILON, "alpha": ALPHA, "gamma": GAMMA, "b_actions": B_ACTIONS, "b_reward": [B_MEAN, B_STD],
        "optimal_left_percent": 100 * EPSILON / 2,
        "percent_left": {method: np.round(100 * left[method].mean(axis=1), 4).tolist() for method in left},
        "verdict": {
            "statistic": f"per run, left actions from A over the first {window} episodes",
            "pairing": "independent runs paired by index (one Generator: Q-learning's runs, then Double's)",
            "mean_left": {method: float(per_run[method].mean()) for method in per_run},
            "median_left": {method: float(np.median(per_run[method])) for method in per_run},
            "double_fewer": wins, "ties": ties, "double_more": runs - wins - ties,
            "win_rate": p, "wilson": list(interval), "n": n,
            "claim": "Double Q-learning goes left from A less often than Q-learning",
            "word": verdict.claim(interval, n),
        },
    }


def plot(result_path, figure_path):
    """docs/maximization_bias.png from the JSON file: both curves and the 5% optimum, like S&B's Figure 6.5."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(result_path) as f:
        result = json.load(f)
    episodes = np.arange(1, result["episodes"] + 1)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=150)
    ax.plot(episodes, result["percent_left"]["q"], color="tab:red", label="Q-learning")
    ax.plot(episodes, result["percent_left"]["double"], color="tab:green", label="Double Q-learning")
    ax.axhline(result["optimal_left_percent"], color="black", linestyle="--", linewidth=1,
               label=f"optimal (epsilon-greedy): {result['optimal_left_percent']:g}%")
    ax.set_xlabel("episodes")
    ax.set_ylabel("% left actions from A")
    ax.set_xlim(1, result["episodes"])
    ax.set_ylim(0, 100)
    v = result["verdict"]
    ax.set_title(f"Maximization bias (Sutton & Barto, Example 6.7): {result['runs']:,} runs each\n"
                 f"P(Double goes left less, first {min(WINDOW, result['episodes'])} episodes) = "
                 f"{verdict.show(v['win_rate'], v['wilson'])}", fontsize=10)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(figure_path)
    plt.close(fig)


def show_table(result):
    v, pct = result["verdict"], result["percent_left"]
    window = min(WINDOW, result["episodes"])
    print(f"| method | % left, episodes 1-{window} | % left, last 50 episodes | left actions per run, first {window} (mean) |")
    print("|---|---|---|---|")
    for method, name in (("q", "Q-learning"), ("double", "Double Q-learning")):
        print(f"| {name} | {np.mean(pct[method][:window]):.1f} | {np.mean(pct[method][-50:]):.1f} | {v['mean_left'][method]:.1f} |")
    print(f"P(Double Q-learning goes left fewer times than Q-learning in the first {window} episodes, "
          f"paired by run index, {v['n']:,} runs) = {verdict.show(v['win_rate'], v['wilson'])}: "
          f"the claim {v['word']} (Double fewer {v['double_fewer']}, ties {v['ties']}, more {v['double_more']})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=10_000, help="independent runs per method (default 10,000)")
    p.add_argument("--episodes", type=int, default=300, help="episodes per run (default 300)")
    p.add_argument("--seed", type=int, default=0, help="the one numpy Generator's seed")
    p.add_argument("--out", help="a folder for maximization_bias.json and .png (default: benchmarks/results/ and "
                                 "docs/, recorded in sources.json)")
    p.add_argument("--plot-only", action="store_true", help="redraw the figure from the JSON file, no runs")
    a = p.parse_args(argv)
    if a.runs < 1 or a.episodes < 1:
        p.error("--runs and --episodes must be at least 1")
    result_path, figure_path = RESULT, FIGURE
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        result_path, figure_path = (os.path.join(a.out, "maximization_bias" + ext) for ext in (".json", ".png"))
    args = argv if argv is not None else sys.argv[1:]
    command = " ".join(["python benchmarks/maximization_bias.py"] + list(args))
    if not a.plot_only:
        result = measure(a.runs, a.episodes, a.seed)
        result["command"] = command
        with open(result_path, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        if not a.out:
            provenance.record(os.path.relpath(RESULT, ROOT), scripts=["benchmarks/maximization_bias.py"], command=command)
    with open(result_path) as f:
        result = json.load(f)
    show_table(result)
    plot(result_path, figure_path)
    if not a.out:
        provenance.record(os.path.relpath(FIGURE, ROOT), inputs=[os.path.relpath(RESULT, ROOT)],
                          command="python benchmarks/maximization_bias.py --plot-only")
    print(f"wrote {result_path if not a.plot_only else ''} {figure_path}".replace("  ", " "))


if __name__ == "__main__":
    main()
