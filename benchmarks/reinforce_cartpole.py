"""REINFORCE (Williams 1992) on CartPole-v1: Lecture 02's policy gradient, measured beside Lecture 03's DQN.

The algorithm, one update per episode:
  1. play one episode with the stochastic policy pi_theta(a|s) (a softmax over the policy network's logits);
  2. returns-to-go G_t = r_t + gamma r_{t+1} + ... + gamma^(T-1-t) r_{T-1}, gamma 0.99, not normalised: the
     textbook estimator, unbiased. An episode cut by the 500-step time limit ends there (no bootstrap);
  3. the weight of step t: A_t = G_t (--baseline none), or A_t = G_t - V(s_t) (--baseline value: a state-value
     network V, detached in the policy's loss, trained towards G_t by MSE with its own Adam, one step per episode);
  4. one Adam step on the loss  -sum_t A_t log pi_theta(a_t|s_t), whose gradient is the REINFORCE estimate
     -sum_t A_t grad log pi_theta(a_t|s_t) of minus the gradient of the expected return.
Networks: two hidden layers of --hidden-dim (64) with tanh, for the policy and for V alike. Adam: the policy at
3e-3 with --baseline value, 1e-3 with none; V at 3e-2 (tuned: see LEARNING_RATES).

Seeding: --seed seeds numpy, torch (every action is drawn by torch) and the env (reset(seed=...) on the first
reset only); one torch thread, so the same --seed gives the same returns run after run on the CPU.

Usage: python benchmarks/reinforce_cartpole.py [--seed 1] [--baseline value] [--episodes 500] ...
Prints one line, as benchmarks/lecture_dqn.py does: RESULT seed=.. episodes=.. steps=.. time=..s sps=..
solve195_ep=.. solve475_ep=.. last100=.. greedy=.., and writes runs/CartPole-v1__reinforce__<seed>__<time>/:
args.json, episodes.csv (global_step, episodic_return, episodic_length, epsilon, elapsed_s; epsilon is always 0,
there is none) and eval.json (the final policy's greedy returns, argmax_a pi(a|s), on dqn_cartpole.py's evaluation
episodes of the seed: env seeds (seed + 1) * 2**32 + k; the sampled policy's on the same episodes beside them).
So `python benchmarks/run_seeds.py benchmarks/reinforce_cartpole.py --seeds 1-10 -- --baseline value` runs and
summarises it, Lecture 03's criterion (episodes to a 100-episode mean of 195) included.
"""
import argparse
import csv
import json
import os
import sys
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp(in_dim, out_dim, hidden_dim):
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, hidden_dim), nn.Tanh(),
                         nn.Linear(hidden_dim, out_dim))


def returns_to_go(rewards, gamma):
    """G_t = r_t + gamma * G_{t+1}, from the last step back."""
    returns, g = np.zeros(len(rewards), dtype=np.float32), 0.0
    for t in reversed(range(len(rewards))):
        g = rewards[t] + gamma * g
        returns[t] = g
    return torch.from_numpy(returns)


def reinforce_loss(policy, states, actions, returns, value=None):
    """-sum_t A_t log pi(a_t|s_t) with A_t = G_t, or G_t - V(s_t) (V detached: the baseline only weighs the
    steps; it is trained by its own loss). Returns the policy's loss and V's MSE loss (None without V)."""
    log_probs = torch.distributions.Categorical(logits=policy(states)).log_prob(actions)
    if value is None:
        return -(returns * log_probs).sum(), None
    v = value(states).squeeze(-1)
    return -((returns - v.detach()) * log_probs).sum(), F.mse_loss(v, returns)


def play_episode(env, policy, seed=None):
    """One episode with actions sampled from pi(.|s): its states, actions and rewards."""
    obs, _ = env.reset(seed=seed)
    states, actions, rewards, done = [], [], [], False
    while not done:
        with torch.no_grad():
            logits = policy(torch.as_tensor(obs, dtype=torch.float32))
        action = torch.distributions.Categorical(logits=logits).sample().item()
        states.append(obs)
        actions.append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(float(reward))
        done = terminated or truncated
    return torch.as_tensor(np.array(states), dtype=torch.float32), torch.as_tensor(actions), rewards


def train(a, on_episode=lambda rewards: None):
    """REINFORCE for a.episodes episodes; on_episode(rewards) after each. Returns the policy and every return."""
    env = gym.make(a.env_id)
    n_obs, n_actions = env.observation_space.shape[0], env.action_space.n
    policy = mlp(n_obs, n_actions, a.hidden_dim)
    optimizer = torch.optim.Adam(policy.parameters(), lr=a.learning_rate)
    value = mlp(n_obs, 1, a.hidden_dim) if a.baseline == "value" else None
    value_optimizer = torch.optim.Adam(value.parameters(), lr=a.value_learning_rate) if value else None
    episode_returns = []
    for episode in range(a.episodes):
        states, actions, rewards = play_episode(env, policy, seed=a.seed if episode == 0 else None)
        loss, value_loss = reinforce_loss(policy, states, actions, returns_to_go(rewards, a.gamma), value)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if value is not None:
            value_optimizer.zero_grad()
            value_loss.backward()
            value_optimizer.step()
        episode_returns.append(sum(rewards))
        on_episode(rewards)
    env.close()
    return policy, episode_returns


def evaluate(policy, env_id, seed, episodes, greedy=True):
    """The policy's returns on dqn_cartpole.py's evaluation episodes of this seed: env seeds (seed + 1) * 2**32 + k,
    the env's own time limit. greedy: argmax_a pi(a|s); else actions sampled from pi."""
    env, returns = gym.make(env_id), []
    for k in range(episodes):
        obs, _ = env.reset(seed=(seed + 1) * 2**32 + k)
        total, done = 0.0, False
        while not done:
            with torch.no_grad():
                logits = policy(torch.as_tensor(obs, dtype=torch.float32))
            pick = logits.argmax() if greedy else torch.distributions.Categorical(logits=logits).sample()
            obs, reward, terminated, truncated, _ = env.step(pick.item())
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    env.close()
    return np.array(returns)


def first_episode(returns, bar, window=100):
    """The first episode k >= window at which the mean return of episodes k-window+1..k is at least bar."""
    for k in range(window, len(returns) + 1):
        if np.mean(returns[k - window:k]) >= bar:
            return k
    return None


# Tuned on seeds 1-5 (300 episodes; the median over seeds of the episodes to Lecture 03's criterion, a 100-episode
# mean of 195): the policy's rate in 3e-4, 1e-3, 3e-3, 1e-2 (and 6e-4 for none), V's in 3e-3, 1e-2, 3e-2, 1e-1.
# docs/lecture03.md has the grid's numbers (python benchmarks/lecture_claims.py --list: reinforce).
LEARNING_RATES = {"value": 3e-3, "none": 1e-3}


class ArgumentParser(argparse.ArgumentParser):
    """Bad input: one `error:` line on stderr and exit code 2, as the repository's scripts do."""

    def error(self, message):
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def parse_args(argv=None):
    p = ArgumentParser(description="REINFORCE on CartPole-v1 (see the module docstring).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seed", type=int, default=1, help="seeds numpy, torch and the env's first reset")
    p.add_argument("--episodes", type=int, default=500, help="training episodes, one update each")
    p.add_argument("--learning-rate", type=float, default=argparse.SUPPRESS,
                   help="the policy's Adam step size (default: 3e-3 with --baseline value, 1e-3 with none)")
    p.add_argument("--baseline", choices=["none", "value"], default="value", help="A_t = G_t, or G_t - V(s_t)")
    p.add_argument("--value-learning-rate", type=float, default=3e-2, help="V's Adam step size (--baseline value)")
    p.add_argument("--hidden-dim", type=int, default=64, help="units in each of the two hidden layers (tanh)")
    p.add_argument("--gamma", type=float, default=0.99, help="discount of the returns-to-go")
    p.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes of the final policy")
    p.add_argument("--env-id", default="CartPole-v1", help="a gymnasium env with discrete actions")
    a = p.parse_args(argv)
    a.learning_rate = getattr(a, "learning_rate", LEARNING_RATES[a.baseline])
    if a.seed < 0 or a.episodes < 1 or a.eval_episodes < 1 or a.hidden_dim < 1:
        p.error("--seed must be >= 0; --episodes, --eval-episodes and --hidden-dim at least 1")
    if not (a.learning_rate > 0 and a.value_learning_rate > 0 and 0 <= a.gamma <= 1):
        p.error("--learning-rate and --value-learning-rate must be > 0, --gamma in [0, 1]")
    return a


def main(argv=None):
    a = parse_args(argv)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    run_dir = os.path.join("runs", f"{a.env_id}__reinforce__{a.seed}__{int(time.time())}")
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "args.json"), "w") as f:
        json.dump({**vars(a), "exp_name": "reinforce", "script": "reinforce_cartpole.py"}, f, indent=2)
    t0, step = time.time(), [0]
    with open(os.path.join(run_dir, "episodes.csv"), "w", newline="", buffering=1) as f:
        writer = csv.writer(f)
        writer.writerow(["global_step", "episodic_return", "episodic_length", "epsilon", "elapsed_s"])

        def log(rewards):
            step[0] += len(rewards)
            writer.writerow([step[0], sum(rewards), len(rewards), 0, round(time.time() - t0, 2)])
        policy, returns = train(a, log)
    dt = time.time() - t0
    greedy = evaluate(policy, a.env_id, a.seed, a.eval_episodes)
    sampled = evaluate(policy, a.env_id, a.seed, a.eval_episodes, greedy=False)
    with open(os.path.join(run_dir, "eval.json"), "w") as f:  # no checks: the reported policy is the final one
        json.dump({"returns": greedy.tolist(), "mean": greedy.mean(), "std": greedy.std(),
                   "final_returns": greedy.tolist(), "final_mean": greedy.mean(), "final_std": greedy.std(),
                   "sampled_returns": sampled.tolist(), "sampled_mean": sampled.mean()}, f, indent=2)
    print(f"RESULT seed={a.seed} episodes={len(returns)} steps={step[0]} time={dt:.1f}s sps={step[0] / dt:.0f} "
          f"solve195_ep={first_episode(returns, 195)} solve475_ep={first_episode(returns, 475)} "
          f"last100={np.mean(returns[-100:]):.1f} greedy={greedy.mean():.1f} sampled={sampled.mean():.1f}")
    print(f"files:  {run_dir}/ (args.json, episodes.csv, eval.json)")


if __name__ == "__main__":
    main()
