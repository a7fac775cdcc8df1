"""Overestimation as van Hasselt et al. (2016, "Deep RL with Double Q-learning", Sec. 4) measure it: on the
states the greedy policy visits, the network's value of its greedy action, max_a Q(s, a), beside the true
discounted return that policy gets from there.

    python benchmarks/run_seeds.py dqn_cartpole.py double_dqn.py --seeds 1-10,101-110     # the runs (saved models)
    python benchmarks/true_value.py dqn_cartpole.py double_dqn.py --seeds 1-10,101-110    # this measurement
    python benchmarks/true_value.py dqn_cartpole.py double_dqn.py --seeds 1-10 -- --target-network-frequency 1000

For each run of run_seeds.py (the same script, flags and seed) it loads the final network `<script>.pt` and
plays it greedily from 10 start states of its own, for 1,500 steps or until the pole falls: past CartPole's
500-step limit, because the TD target bootstraps through that truncation, so the value it learns is that of
the endless task. On the first 500 states of each game, the true discounted return is
G_t = r_t + γ r_{t+1} + ... (cut at step 1,500: the tail is below γ^1000 · 100 < 0.01). The run's
overestimation is mean(max_a Q(s_t, a) - G_t). A policy that balances forever has G_t = 100 = 1/(1 - γ).
The per-run numbers go to benchmarks/results/true_value.json (committed) with a paired comparison of the
scripts given first and second: P(second overestimates less than first) over the seeds they share.
"""
import argparse
import importlib.util
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_seeds import RESULTS, ROOT, finished, flags_tag, parse_seed_groups, prob_improvement, run_dir_of  # noqa: E402
import provenance  # noqa: E402

OUT = os.path.join(RESULTS, "true_value.json")
STEPS, MEASURED, STARTS, GAMMA = 1_500, 500, 10, 0.99


def load_script(name):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), os.path.join(ROOT, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def discounted_returns(rewards, gamma=GAMMA):
    """G_t = r_t + γ G_{t+1}, backwards from the last reward (G after the last step: 0)."""
    returns, running = np.zeros(len(rewards)), 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def measure_network(q_network, env_id, seed, starts=STARTS, steps=STEPS, measured=MEASURED):
    """Greedy games from `starts` start states seeded apart from training, evaluation and the checks (10^13 + ...):
    per game, the states' max_a Q(s, a) and their true discounted returns, for the first `measured` states."""
    import gymnasium as gym
    import torch
    estimates, truths, lengths = [], [], []
    env = gym.make(env_id, max_episode_steps=steps)
    for start in range(starts):
        obs, _ = env.reset(seed=10**13 + seed * 1_000 + start)
        q_max, rewards, done = [], [], False
        while not done:
            with torch.inference_mode():
                q = q_network(torch.as_tensor(obs, dtype=torch.float32)[None])[0]
            q_max.append(q.max().item())
            obs, reward, terminated, truncated, _ = env.step(int(q.argmax()))
            rewards.append(reward)
            done = terminated or truncated
        truth = discounted_returns(rewards)
        estimates += q_max[:measured]
        truths += truth[:measured].tolist()
        lengths.append(len(rewards))
    env.close()
    return np.array(estimates), np.array(truths), lengths


def measure_run(script, module, run_dir, seed):
    import torch
    with open(os.path.join(run_dir, "args.json")) as f:
        saved = json.load(f)
    env_id = saved["env_id"]
    import gymnasium as gym
    env = gym.make(env_id)
    q_network = module.QNetwork(env.observation_space.shape[0], env.action_space.n, saved["hidden_dim"])
    env.close()
    q_network.load_state_dict(torch.load(os.path.join(run_dir, f"{saved['exp_name']}.pt"), weights_only=True))
    estimates, truths, lengths = measure_network(q_network, env_id, seed)
    return {"seed": seed, "q": float(estimates.mean()), "true": float(truths.mean()),
            "over": float((estimates - truths).mean()), "median_game_length": float(np.median(lengths))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("scripts", nargs="+")
    p.add_argument("--seeds", default="1-10,101-110")
    p.add_argument("--env-id", default="CartPole-v1")
    p.add_argument("--root", default=RESULTS, help="where run_seeds.py put the runs")
    p.add_argument("--out", default=OUT)
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    a = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    import torch
    torch.set_num_threads(1)
    seeds = [seed for group in parse_seed_groups(a.seeds) for seed in group]
    tag = flags_tag(extra)
    results = json.load(open(a.out)) if os.path.exists(a.out) else {}
    setting = results.setdefault(tag, {"flags": " ".join(extra), "scripts": {}})
    for script in a.scripts:
        module, rows = load_script(script), []
        for seed in seeds:
            done = finished(run_dir_of(script, a.env_id, seed, extra, a.root))
            if not done:
                print(f"{script} seed {seed}: no finished run (run run_seeds.py first)", file=sys.stderr)
                continue
            rows.append(measure_run(script, module, os.path.dirname(done[-1]), seed))
        setting["scripts"][script] = rows
        over = [row["over"] for row in rows]
        print(f"{script} [{tag}]: {len(rows)} runs, overestimation median {np.median(over):.1f} "
              f"(mean Q {np.median([r['q'] for r in rows]):.1f} vs true {np.median([r['true'] for r in rows]):.1f})")
    if len(a.scripts) >= 2:
        first, second = ({row["seed"]: row["over"] for row in setting["scripts"][s]} for s in a.scripts[:2])
        paired = sorted(set(first) & set(second))
        rng = np.random.default_rng(int(tag[-8:], 16) if tag != "defaults" else 0)
        # P(second < first) is P(-second > -first): the second script overestimates less
        prob, ci = prob_improvement([-second[s] for s in paired], [-first[s] for s in paired], rng)
        setting["paired"] = {"first": a.scripts[0], "second": a.scripts[1], "pairs": len(paired),
                             "p_second_overestimates_less": prob, "ci95": ci}
        print(f"P({a.scripts[1]} overestimates less than {a.scripts[0]}, paired by seed) = {prob:.2f} "
              f"[{ci[0]:.2f}, {ci[1]:.2f}] over {len(paired)} seeds")
    with open(a.out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {os.path.relpath(a.out, ROOT)}")
    if os.path.abspath(a.out) == os.path.join(RESULTS, "true_value.json"):
        # the runs measured are summary.json's (their scripts' hashes are there); this file adds the measuring code
        scripts = {*(s for setting in results.values() for s in setting["scripts"]), "benchmarks/true_value.py"}
        provenance.record("benchmarks/results/true_value.json", scripts=sorted(scripts),
                          command="python benchmarks/lecture_claims.py --list  (double: its commands)")


if __name__ == "__main__":
    main()
