"""Measure what each idea changes, on the scripts themselves, and draw it: docs/dueling_values.png,
docs/per_concentration.png, docs/acrobot_q_vs_return.png, docs/frozenlake_q_vs_q_star.png.

    python benchmarks/idea_effects.py dueling  --seeds 1-3     # V(s) and A(s, ·) of saved states over training
    python benchmarks/idea_effects.py per      --seeds 1-3     # where the priorities go, and the IS weights' ESS
    python benchmarks/idea_effects.py acrobot  --seeds 1-3     # Q(s0, a*) against the discounted return it gets
    python benchmarks/idea_effects.py frozenlake --seeds 1     # the Q-table against Q* after 1k, 10k, 50k episodes
    python benchmarks/idea_effects.py plot                     # redraw the figures from benchmarks/results/effects/

Each measurement imports the script (benchmarks may; the scripts never import one another), runs its real
`main()` with its default flags and wraps the one method it watches: `Logs.train_step`, which the loop calls
after every gradient step with the network, or the prioritized buffer's `sample`. The wrappers only read
(under torch.inference_mode, from envs of their own), so every training number stays what the script alone
gives. The data go to benchmarks/results/effects/<what>.csv (small, committed); `plot` redraws from there.
"""
import argparse
import csv
import importlib.util
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import provenance  # noqa: E402  (each CSV records the scripts it ran; each figure the CSV it was drawn from)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EFFECTS = os.path.join(ROOT, "benchmarks", "results", "effects")


def load_script(name):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), os.path.join(ROOT, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def every(step, period, state):
    """True once per `period` env steps (the loop calls us at every gradient step)."""
    if step >= state.get("next", 0):
        state["next"] = step + period
        return True
    return False


BUDGET = []  # ["--total-timesteps", N] from --total-timesteps: a quick try instead of the default run


def run_main(module, argv):
    argv = [*argv, *BUDGET]
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            module.main(argv)
        finally:
            os.chdir(cwd)


def measure_dueling(seed, rows, period=2_000, states=4):
    """V(s) and the centred advantages A(s, a) - mean_a A(s, ·) for a few fixed states, every `period` steps."""
    import torch
    dueling = load_script("dueling_dqn.py")
    # states a random policy visits, from its own env (the same function the script uses for its Q probe)
    probe = dueling.probe_states("CartPole-v1", seed + 10_000, 200, np.random.default_rng(seed + 10_000))
    fixed = torch.from_numpy(probe[:: 200 // states][:states])
    original, state = dueling.Logs.train_step, {}

    def watching(self, global_step, loss, q_taken, q_network, probe_obs):
        if every(global_step, period, state):
            with torch.inference_mode():
                features = q_network.net(fixed.to(probe_obs.device))
                value = q_network.value_stream(features)[:, 0]
                advantages = q_network.advantage_stream(features)
                centred = advantages - advantages.mean(dim=1, keepdim=True)
            for i in range(states):
                rows.append([seed, global_step, i, value[i].item(), *centred[i].tolist()])
        return original(self, global_step, loss, q_taken, q_network, probe_obs)
    dueling.Logs.train_step = watching
    run_main(dueling, ["--seed", str(seed), "--no-save-model"])


def measure_per(seed, rows, period=2_000):
    """The share of the probability mass on the 10% of transitions with the highest priority (the share of
    samples they get), and the effective sample size of a batch's IS weights, (Σw)² / Σw², over the batch size."""
    per = load_script("per_dqn.py")
    original, state = per.PrioritizedReplayBuffer.sample, {"calls": 0}
    defaults = per.parse_args([])  # the run below uses them: a gradient step every --train-frequency env steps

    def watching(self, batch_size, device, beta):
        batch = original(self, batch_size, device, beta)
        state["calls"] += 1
        step = defaults.learning_starts + defaults.train_frequency * (state["calls"] - 1)
        if every(step, period, state):
            priorities = self.tree.priorities(np.arange(self.size))
            top = np.sort(priorities)[::-1][: max(1, self.size // 10)]
            weights = batch[-1].double().cpu().numpy()
            rows.append([seed, step, beta, top.sum() / priorities.sum(), weights.sum() ** 2 / (weights ** 2).sum() / batch_size])
        return batch
    per.PrioritizedReplayBuffer.sample = watching
    run_main(per, ["--seed", str(seed), "--no-save-model"])


def discounted_greedy_return(q_network, env, seed, gamma, device):
    import torch
    obs, _ = env.reset(seed=seed)
    total, discount, done = 0.0, 1.0, False
    while not done:
        with torch.inference_mode():
            action = int(q_network(torch.as_tensor(obs, dtype=torch.float32, device=device)[None]).argmax())
        obs, reward, terminated, truncated, _ = env.step(action)
        total += discount * reward
        discount *= gamma
        done = terminated or truncated
    return total


def measure_acrobot(seed, rows, period=10_000, starts=10):
    """Double DQN paper, Figure 3, on Acrobot-v1: the network's value of the start state, max_a Q(s0, a),
    beside the discounted return its greedy policy really gets from that start (rewards -1 a step, gamma 0.99)."""
    import gymnasium as gym
    import torch
    for name in ["dqn_cartpole.py", "double_dqn.py"]:
        module = load_script(name)
        env = gym.make("Acrobot-v1")
        start_seeds = [10**12 + seed * 1000 + i for i in range(starts)]  # apart from training and evaluation
        original, state = module.Logs.train_step, {}

        def watching(self, global_step, loss, q_taken, q_network, probe_obs, module=module, original=original,
                     state=state, name=name):
            if every(global_step, period, state):
                for start in start_seeds:
                    obs, _ = env.reset(seed=start)
                    with torch.inference_mode():
                        q_start = q_network(torch.as_tensor(obs, device=probe_obs.device)[None]).max().item()
                    real = discounted_greedy_return(q_network, env, start, 0.99, probe_obs.device)
                    rows.append([name, seed, global_step, start, q_start, real])
            return original(self, global_step, loss, q_taken, q_network, probe_obs)
        module.Logs.train_step = watching
        run_main(module, ["--env-id", "Acrobot-v1", "--seed", str(seed), "--no-save-model"])
        env.close()


def q_star(env, gamma=0.99, sweeps=2_000):
    """Q* of the discounted MDP by value iteration on the env's own transition table (env.unwrapped.P):
    Q*(s, a) = Σ p (r + γ max_a' Q*(s', a') [s' not terminal])."""
    P = env.unwrapped.P
    q = np.zeros((len(P), len(P[0])))
    for _ in range(sweeps):
        v = q.max(axis=1)
        q = np.array([[sum(p * (r + gamma * v[s2] * (not term)) for p, s2, r, term in P[s][a]) for a in P[s]] for s in P])
    return q


def measure_frozenlake(seed, rows, budgets=(1_000, 10_000, 50_000)):
    """The learned Q-table after 1,000, 10,000 and 50,000 training episodes (a run of each length, each with
    the script's default schedules over its own length) beside Q* from value iteration."""
    fl = load_script("q_learning_frozenlake.py")
    env = fl.make_env()
    optimal = q_star(env)
    for episodes in budgets:
        q_table, _ = fl.train(env, episodes, seed=seed)
        q_table = np.asarray(q_table)
        for state in range(q_table.shape[0]):
            for action in range(q_table.shape[1]):
                rows.append([seed, episodes, state, action, q_table[state, action], optimal[state, action]])
    env.close()


HEADERS = {"dueling": ["seed", "global_step", "state", "value", "centred_advantage_0", "centred_advantage_1"],
           "per": ["seed", "global_step", "beta", "top10_share", "ess_fraction"],
           "acrobot": ["script", "seed", "global_step", "start", "q_start", "discounted_return"],
           "frozenlake": ["seed", "episodes", "state", "action", "q", "q_star"]}
MEASURE = {"dueling": measure_dueling, "per": measure_per, "acrobot": measure_acrobot, "frozenlake": measure_frozenlake}
SCRIPTS = {"dueling": ["dueling_dqn.py"], "per": ["per_dqn.py"], "acrobot": ["dqn_cartpole.py", "double_dqn.py"],
           "frozenlake": ["q_learning_frozenlake.py"]}  # the scripts each measurement runs
FIGURES = {"dueling_values.png": "dueling", "per_concentration.png": "per", "acrobot_q_vs_return.png": "acrobot",
           "frozenlake_q_vs_q_star.png": "frozenlake"}


def read(what):
    with open(os.path.join(EFFECTS, f"{what}.csv"), newline="") as f:
        return list(csv.DictReader(f))


def plot(out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    written = []
    os.makedirs(out_dir, exist_ok=True)
    if os.path.exists(os.path.join(EFFECTS, "dueling.csv")):
        rows = read("dueling")
        seed = min(int(r["seed"]) for r in rows)
        fig, (ax_v, ax_a) = plt.subplots(1, 2, figsize=(12, 5.0), sharex=True)
        styles = [("tab:blue", "o", "-"), ("tab:orange", "s", "--"), ("tab:green", "^", "-."), ("tab:red", "v", ":")]
        for i, (color, marker, line) in enumerate(styles):
            mine = [r for r in rows if int(r["seed"]) == seed and int(r["state"]) == i]
            if not mine:
                continue
            steps = [int(r["global_step"]) for r in mine]
            kw = dict(color=color, marker=marker, linestyle=line, markersize=3, markevery=3, label=f"state {i}")
            ax_v.plot(steps, [float(r["value"]) for r in mine], **kw)
            # two actions: the centred advantages are +d/2 and -d/2, so one line says it all
            ax_a.plot(steps, [float(r["centred_advantage_1"]) for r in mine], **kw)
        ax_v.set_title("V(s), the value stream: the state's worth")
        ax_a.set_title("A(s, right) - mean_a A(s, ·), the advantage stream\n(A(s, left)'s is its negative: 2 actions)")
        ax_v.axhline(100, color="black", linewidth=1, label="1/(1 - γ) = 100, the most any return can be")
        ax_a.axhline(0, color="gray", linewidth=0.8)
        ax_v.set_ylabel("V(s) (a return: 1 per step, γ = 0.99)")
        ax_a.set_ylabel("centred advantage (same units)")
        for ax in (ax_v, ax_a):
            ax.set_xlabel("environment steps")
            ax.grid(alpha=0.3)
        handles = dict(zip(*reversed(ax_v.get_legend_handles_labels())))
        fig.legend(list(handles.values()), list(handles.keys()), fontsize=8, loc="lower center", ncol=5, frameon=False)
        fig.suptitle(f"dueling_dqn.py on CartPole-v1, seed {seed}, default flags: four states a random policy visits")
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        written.append(os.path.join(out_dir, "dueling_values.png"))
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    if os.path.exists(os.path.join(EFFECTS, "per.csv")):
        rows = read("per")
        seeds = sorted({int(r["seed"]) for r in rows})
        fig, (ax, ax_beta) = plt.subplots(2, 1, figsize=(8, 6.0), sharex=True, height_ratios=(3, 1))
        for seed in seeds:
            mine = [r for r in rows if int(r["seed"]) == seed]
            steps = [int(r["global_step"]) for r in mine]
            first = seed == seeds[0]
            ax.plot(steps, [float(r["top10_share"]) for r in mine], color="tab:red", alpha=0.7,
                    label="share of the sampling probability on the top 10% of priorities" if first else None)
            ax.plot(steps, [float(r["ess_fraction"]) for r in mine], color="tab:purple", alpha=0.7,
                    label="effective sample size of a batch's IS weights, over the batch size" if first else None)
            ax_beta.plot(steps, [float(r["beta"]) for r in mine], color="gray")
        ax.axhline(0.1, color="black", linewidth=1, linestyle="--", label="uniform replay's share: 0.1")
        ax.set_ylabel("fraction")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"per_dqn.py on CartPole-v1, default flags: where the samples go (one line per seed, {len(seeds)} seeds)")
        ax_beta.set_ylabel("β (IS exponent)")
        ax_beta.set_xlabel("environment steps")
        for a in (ax, ax_beta):
            a.grid(alpha=0.3)
        fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="lower center", ncol=1, frameon=False)
        fig.tight_layout(rect=(0, 0.12, 1, 1))
        written.append(os.path.join(out_dir, "per_concentration.png"))
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    if os.path.exists(os.path.join(EFFECTS, "acrobot.csv")):
        rows = read("acrobot")
        fig, ax = plt.subplots(figsize=(8, 5.4))
        for name, color in [("dqn_cartpole.py", "tab:blue"), ("double_dqn.py", "tab:orange")]:
            mine = [r for r in rows if r["script"] == name]
            steps = sorted({int(r["global_step"]) for r in mine})
            q = [np.mean([float(r["q_start"]) for r in mine if int(r["global_step"]) == s]) for s in steps]
            real = [np.mean([float(r["discounted_return"]) for r in mine if int(r["global_step"]) == s]) for s in steps]
            ax.plot(steps, q, color=color, label=f"{name}: max_a Q(s0, a), the estimate")
            ax.plot(steps, real, "--", color=color, label=f"{name}: discounted return of its greedy policy")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("discounted return from the start state (γ = 0.99)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
        seeds = len({r["seed"] for r in rows})
        starts = len({r["start"] for r in rows}) // seeds
        ax.set_title(f"Acrobot-v1, default flags: the value estimate against the return it gets\n"
                     f"(mean over {starts} start states x {seeds} seeds; no band)")
        fig.tight_layout()
        written.append(os.path.join(out_dir, "acrobot_q_vs_return.png"))
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    if os.path.exists(os.path.join(EFFECTS, "frozenlake.csv")):
        written.append(plot_frozenlake(read("frozenlake"), os.path.join(out_dir, "frozenlake_q_vs_q_star.png"), plt))
    return written


def plot_frozenlake(rows, out, plt):
    """V = max_a Q, V* = max_a Q* and V - V* on the map, one row per training budget. Holes and the goal
    (terminal: every value 0) are drawn as such; each V - V* panel has a symmetric colour scale of its own, from
    its largest |V - V*|, and a box around each state whose greedy action is not optimal under Q*."""
    from gymnasium.envs.toy_text.frozen_lake import MAPS
    from matplotlib.patches import Rectangle
    seed = min(int(r["seed"]) for r in rows)
    budgets = sorted({int(r["episodes"]) for r in rows})
    fig, axes = plt.subplots(len(budgets), 3, figsize=(11, 3.4 * len(budgets) + 0.6), squeeze=False)
    for row_axes, episodes in zip(axes, budgets):
        mine = [r for r in rows if int(r["seed"]) == seed and int(r["episodes"]) == episodes]
        n_states = max(int(r["state"]) for r in mine) + 1
        q, qs = np.zeros((n_states, 4)), np.zeros((n_states, 4))
        for r in mine:
            q[int(r["state"]), int(r["action"])], qs[int(r["state"]), int(r["action"])] = float(r["q"]), float(r["q_star"])
        side = int(np.sqrt(n_states))
        desc = "".join(MAPS[f"{side}x{side}"])  # measure_frozenlake trains on the script's default map
        terminal = [k for k in range(n_states) if desc[k] in "HG"]
        # the greedy action of Q is optimal when Q* of it is Q*'s max (Q* has ties: left and right in state 6)
        not_optimal = [k for k in range(n_states) if k not in terminal and qs[k, q[k].argmax()] < qs[k].max() - 1e-9]
        diff = q.max(axis=1) - qs.max(axis=1)
        scale = max(float(np.abs(diff).max()), 1e-3)
        grids = [(q.max(axis=1), f"V = max_a Q after {episodes:,} episodes", "viridis", 0, 1),
                 (qs.max(axis=1), "V* = max_a Q* (value iteration)", "viridis", 0, 1),
                 (diff, f"V − V* after {episodes:,} episodes\n(colour scale ±{scale:.3f}; boxed: greedy action not optimal,"
                        f" {len(not_optimal)} of {n_states - len(terminal)})", "RdBu", -scale, scale)]
        for col, (ax, (values, title, cmap, vmin, vmax)) in enumerate(zip(row_axes, grids)):
            image = ax.imshow(values.reshape(side, side), cmap=cmap, vmin=vmin, vmax=vmax)
            for k, value in enumerate(values):
                x, y = k % side, k // side
                if k in terminal:
                    hole = desc[k] == "H"
                    ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor="#d9d9d9" if hole else "#ffd54f",
                                           edgecolor="white", hatch="///" if hole else None, linewidth=0))
                    ax.text(x, y, "hole" if hole else "goal", ha="center", va="center", fontsize=8, weight="bold",
                            color="black", bbox=dict(facecolor="white", edgecolor="none", pad=1, alpha=0.8) if hole else None)
                    continue
                shade = (value - vmin) / (vmax - vmin)
                light = (abs(value) / scale < 0.6) if cmap == "RdBu" else shade > 0.55
                ax.text(x, y, f"{value:+.3f}" if cmap == "RdBu" else f"{value:.2f}", ha="center", va="center",
                        fontsize=8, color="black" if light else "white")
                if desc[k] == "S":
                    ax.text(x - 0.45, y - 0.45, "start", ha="left", va="top", fontsize=6, color="black" if light else "white")
                if cmap == "RdBu" and k in not_optimal:
                    ax.add_patch(Rectangle((x - 0.46, y - 0.46), 0.92, 0.92, fill=False, edgecolor="black", linewidth=2))
            ax.set_title(title, fontsize=9)
            ax.set_xticks(range(side))
            ax.set_yticks(range(side))
            ax.tick_params(labelsize=7, length=0)
            ax.set_xlabel("column", fontsize=8)
            if col == 0:
                ax.set_ylabel("row", fontsize=8)
            bar = fig.colorbar(image, ax=ax, fraction=0.046)
            bar.ax.tick_params(labelsize=7)
            bar.set_label("V − V* (discounted return)" if cmap == "RdBu" else "expected discounted return", fontsize=7)
    fig.suptitle(f"q_learning_frozenlake.py, slippery 4x4, seed {seed}: state values V(s) = max_a Q(s, a) learned with "
                 f"the default schedules\nagainst the optimum V* = max_a Q* (γ = 0.99, value iteration on the env's "
                 f"transitions; reward 1 at the goal, holes and goal are terminal)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=[*MEASURE, "plot"])
    p.add_argument("--seeds", default="1-3")
    p.add_argument("--out", default=os.path.join(ROOT, "docs"), help="where plot writes the figures")
    p.add_argument("--total-timesteps", type=int, help="a shorter run than the scripts' default, to try it out")
    a = p.parse_args(argv)
    if a.total_timesteps:
        BUDGET.extend(["--total-timesteps", str(a.total_timesteps), "--check-frequency", "0"])
    if a.what == "plot":
        for path in plot(a.out):
            print(f"wrote {path}")
            what = FIGURES[os.path.basename(path)]
            provenance.record(os.path.relpath(path, ROOT), inputs=[os.path.join(EFFECTS, f"{what}.csv")],
                              command="python benchmarks/idea_effects.py plot")
        return
    import torch
    torch.set_num_threads(1)
    lo, _, hi = a.seeds.partition("-")
    rows = []
    for seed in range(int(lo), int(hi or lo) + 1):
        MEASURE[a.what](seed, rows)
        print(f"{a.what} seed {seed}: {len(rows)} rows", file=sys.stderr, flush=True)
    os.makedirs(EFFECTS, exist_ok=True)
    with open(os.path.join(EFFECTS, f"{a.what}.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADERS[a.what])
        writer.writerows([[round(x, 4) if isinstance(x, float) else x for x in row] for row in rows])
    provenance.record(os.path.relpath(os.path.join(EFFECTS, f"{a.what}.csv"), ROOT),
                      scripts=["benchmarks/idea_effects.py", *SCRIPTS[a.what]],
                      command=f"python benchmarks/idea_effects.py {a.what} --seeds {a.seeds}")


if __name__ == "__main__":
    main()
