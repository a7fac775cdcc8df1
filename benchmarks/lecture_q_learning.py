"""Lecture 03's tabular Q-learning code for FrozenLake, reproduced as a baseline.

What this is: the code from Lecture 03 ("Value Functions and Q-Learning"), Part 2, "Complete
Implementation": QLearningAgent and train_q_learning, line for line. Only these things are added: the
imports, the env's seed (train_q_learning's `seed`: the first env.reset is seeded), the --fix switches
(train_q_learning's `fixes`, below; none by default), each change marked with a comment naming its fix, and,
after the lecture's code, an exact evaluator and a __main__ that measures a run and evaluates the greedy policy
headless, where the lecture plays one episode with render_mode='human'.

Why it is here: it is the comparison baseline for benchmarks/bench_q_learning.py (time per training step
of q_learning_frozenlake.py next to the lecture's code). It lives inside the repository so that a clone can
reproduce every number without the course material next to it.

The recipe, as in the lecture: a zero-initialised Q-table, epsilon-greedy with a constant epsilon 0.1,
learning rate (alpha) 0.1 and gamma 0.99, both constant, 10,000 episodes of FrozenLake-v1 (4x4,
slippery, 100-step limit).

What it keeps on purpose, which q_learning_frozenlake.py fixes:
  - `done = terminated or truncated` is both the loop's exit and the update's "no future" flag. When the
    100-step limit cuts an episode short, the update treats the clock like a hole (target r = 0).
    q_learning_frozenlake.py bootstraps through a truncation and stops only at a real termination;
  - np.argmax breaks ties toward action 0 (LEFT). On the all-zero initial table, every greedy step goes
    left until rewards spread. q_learning_frozenlake.py breaks ties at random;
  - epsilon and alpha stay constant, where q_learning_frozenlake.py decays both over training;
  - unseeded environment: the lecture calls env.reset() with no seed. Seeding numpy (which drives the agent's
    exploration) does not fix FrozenLake's slippery transitions, so the lecture's runs differ run after run.
    Here train_q_learning(..., seed=s) seeds the first env.reset with s (later resets go on from that
    generator) and __main__ seeds numpy and random with --seed, so a run is the same run after run. Without a
    seed (the default, as the lecture and bench_q_learning.py call it) the env stays unseeded.

--fix NAME (repeatable, or comma-separated) puts one of these differences right, each at the one place it acts
(`if "NAME" in fixes:`), as benchmarks/lecture_dqn.py does for the lecture's DQN:
  ties        a random one of the tied best actions (np.random.choice), not np.argmax's first;
  truncation  the update's "no future" flag is `terminated`; the loop still ends the episode on either;
  schedules   q_learning_frozenlake.py's defaults: epsilon from 1.0 to 0.1 linearly over the first half of the
              episodes, alpha from 0.1 linearly to 0 over all of them (both set at each episode's start);
  all         every one of them.
benchmarks/lecture_q_fixes.py runs each on 40 seeds and compares it with the lecture's code as written.

Interface (the same as the lecture's, which is what bench_q_learning.py calls):
    train_q_learning(env_name='FrozenLake-v1', n_episodes=10000, seed=None, fixes=()) -> (agent, rewards_per_episode)
    agent.q_table is a (16, 4) numpy array. It prints a progress line every 1,000 episodes. The caller
    seeds np.random beforehand. train_q_learning makes its env with the module-level `gym.make(env_name)`,
    which bench_q_learning.py replaces to count steps.

Usage: python benchmarks/lecture_q_learning.py [--seed 1] [--episodes 10000] [--fix NAME[,NAME]] [--eval-episodes 10000]
Prints one line: RESULT seed=.. fixes=.. train_time=..s greedy_success=.. exact_success=..  (greedy_success: the
np.argmax policy on 10,000 evaluation episodes, env seeds 1,000,000 onward; exact_success: the probability that
the greedy policy, np.argmax's or with --fix ties random among tied actions, reaches the goal within the 100-step
limit, computed exactly from env.unwrapped.P)
"""
import argparse
import random
import time

import gymnasium as gym
import numpy as np


# ---- Lecture 03, Part 2: Q-Learning (Tabular), Complete Implementation ----

class QLearningAgent:
    """
    Tabular Q-Learning agent.
    Works for discrete state and action spaces.
    """

    def __init__(self, n_states, n_actions, learning_rate=0.1,
                 gamma=0.99, epsilon=0.1,
                 fixes=()):  # --fix
        self.fixes = fixes  # --fix
        self.n_states = n_states
        self.n_actions = n_actions
        self.lr = learning_rate
        self.gamma = gamma
        self.epsilon = epsilon

        # Initialize Q-table to zeros
        self.q_table = np.zeros((n_states, n_actions))

    def select_action(self, state, training=True):
        """
        Epsilon-greedy action selection.

        With probability epsilon: explore (random action)
        With probability 1-epsilon: exploit (best action)
        """
        if training and np.random.random() < self.epsilon:
            # Explore
            return np.random.randint(self.n_actions)
        else:
            # Exploit
            if "ties" in self.fixes:  # fix ties: a random one of the best actions, not np.argmax's first
                return np.random.choice(np.flatnonzero(self.q_table[state] == self.q_table[state].max()))
            return np.argmax(self.q_table[state])

    def update(self, state, action, reward, next_state, done):
        """
        Q-Learning update: Q(s,a) ← Q(s,a) + α[r + γ max_a' Q(s',a') - Q(s,a)]
        """
        # Current Q-value
        current_q = self.q_table[state, action]

        # TD target
        if done:
            # No future rewards
            td_target = reward
        else:
            # r + γ max_a' Q(s',a')
            max_next_q = np.max(self.q_table[next_state])
            td_target = reward + self.gamma * max_next_q

        # TD error
        td_error = td_target - current_q

        # Update Q-value
        self.q_table[state, action] += self.lr * td_error

        return td_error


def train_q_learning(env_name='FrozenLake-v1', n_episodes=10000, seed=None, fixes=()):  # fix seeding: seed; --fix: fixes
    """
    Train Q-Learning on FrozenLake environment.

    FrozenLake: 4x4 grid, goal is to reach the goal without falling in holes.
    States: 16 (one for each grid cell)
    Actions: 4 (up, down, left, right)
    """
    env = gym.make(env_name)
    agent = QLearningAgent(
        n_states=env.observation_space.n,
        n_actions=env.action_space.n,
        learning_rate=0.1,
        gamma=0.99,
        epsilon=0.1,
        fixes=fixes  # --fix
    )

    rewards_per_episode = []

    for episode in range(n_episodes):
        if "schedules" in fixes:  # fix schedules: q_learning_frozenlake.py's defaults, set per episode
            agent.epsilon = 1.0 + min(episode / (0.5 * n_episodes), 1.0) * (0.1 - 1.0)  # 1.0 to 0.1 over the first half
            agent.lr = 0.1 * (1.0 - episode / n_episodes)  # 0.1 down to 0 linearly over training
        state, _ = env.reset(seed=seed if episode == 0 else None)  # fix seeding: the first reset seeds the env
        total_reward = 0
        done = False

        while not done:
            # Select action
            action = agent.select_action(state, training=True)

            # Take action
            next_state, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated

            # Update Q-table
            if "truncation" in fixes:  # fix truncation: only a hole or the goal ends the bootstrap, not the clock
                agent.update(state, action, reward, next_state, terminated)
            else:
                agent.update(state, action, reward, next_state, done)

            state = next_state
            total_reward += reward

        rewards_per_episode.append(total_reward)

        # Print progress
        if (episode + 1) % 1000 == 0:
            avg_reward = np.mean(rewards_per_episode[-100:])
            print(f"Episode {episode+1}: Avg Reward (last 100) = {avg_reward:.2f}")

    return agent, rewards_per_episode


# ---- Added here: a headless, measuring entry point (the lecture renders one test episode instead) ----

def greedy_success(q_table, episodes=10_000, first_seed=1_000_000):
    """Fraction of `episodes` FrozenLake-v1 episodes (env seeds first_seed onward) that the greedy policy
    np.argmax(q_table[s]) ends at the goal. This is the lecture's select_action(state, training=False)."""
    env = gym.make("FrozenLake-v1")
    wins = 0.0
    for i in range(episodes):
        state, _ = env.reset(seed=first_seed + i)
        done = False
        reward = 0.0
        while not done:
            state, reward, terminated, truncated, _ = env.step(int(np.argmax(q_table[state])))
            done = terminated or truncated
        wins += reward
    return wins / episodes


FIXES = ("ties", "truncation", "schedules")


def parse_fixes(values):
    """--fix values (repeated or comma-separated; "all": every one) as a tuple in FIXES' order."""
    names = {name.strip() for value in values for name in value.split(",") if name.strip()}
    unknown = names - set(FIXES) - {"all"}
    if unknown:
        raise ValueError(f"unknown --fix {', '.join(sorted(unknown))} (choose from {', '.join(FIXES)}, all)")
    return FIXES if "all" in names else tuple(f for f in FIXES if f in names)


def greedy_policy(q_table, ties_at_random=False):
    """The greedy policy as a [state, action] matrix of probabilities: np.argmax's first best action (the lecture's
    select_action(state, training=False)), or with ties_at_random each tied best action with equal probability."""
    q = np.asarray(q_table, dtype=float)
    if ties_at_random:
        best = q == q.max(axis=1, keepdims=True)
        return best / best.sum(axis=1, keepdims=True)
    return np.eye(q.shape[1])[np.argmax(q, axis=1)]


def exact_success(env, policy):
    """P(the policy reaches the goal within the env's time limit), by dynamic programming on env.unwrapped.P.

    success_t[s] = P(goal within t more steps | in s): success_0 = 0, and one more step
    success_t[s] = sum_a policy[s, a] sum_(p, s', r, term) in P[s][a] p * (r + (not term) * success_(t-1)[s']).
    FrozenLake pays r = 1 only on reaching the goal, so this is the probability of success. The start state is
    drawn from env.unwrapped.initial_state_distrib."""
    P, policy = env.unwrapped.P, np.asarray(policy, dtype=float)
    success = np.zeros(len(P))
    for _ in range(env.spec.max_episode_steps):
        success = np.array([sum(policy[s, a] * sum(p * (r + (0.0 if term else success[s2])) for p, s2, r, term in P[s][a])
                                for a in P[s]) for s in P])
    return float(env.unwrapped.initial_state_distrib @ success)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Lecture 03's Q-learning on FrozenLake-v1, timed (see the module docstring).")
    p.add_argument("--seed", type=int, default=1, help="seeds numpy, random and the env's first reset")
    p.add_argument("--episodes", type=int, default=10_000, help="training episodes (the lecture: 10,000)")
    p.add_argument("--fix", action="append", default=[], help=f"put a difference right: {', '.join(FIXES)} or all")
    p.add_argument("--eval-episodes", type=int, default=10_000, help="greedy_success's episodes (default 10,000)")
    a = p.parse_args()
    try:
        fixes = parse_fixes(a.fix)
    except ValueError as e:
        p.error(str(e))
    np.random.seed(a.seed)
    random.seed(a.seed)
    t0 = time.time()
    agent, rewards = train_q_learning(n_episodes=a.episodes, seed=a.seed, fixes=fixes)
    dt = time.time() - t0
    exact = exact_success(gym.make("FrozenLake-v1"), greedy_policy(agent.q_table, "ties" in fixes))
    print(f"RESULT seed={a.seed} fixes={','.join(fixes) or 'none'} train_time={dt:.2f}s "
          f"greedy_success={greedy_success(agent.q_table, a.eval_episodes):.3f} exact_success={exact:.4f}")
