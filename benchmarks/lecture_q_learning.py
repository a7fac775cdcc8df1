"""Lecture 03's tabular Q-learning code for FrozenLake, reproduced as a baseline.

What this is: the code from Lecture 03 ("Value Functions and Q-Learning"), Part 2, "Complete
Implementation": QLearningAgent and train_q_learning, line for line. Only the imports and a __main__
are added. The __main__ measures a run and evaluates the greedy policy headless, where the lecture
plays one episode with render_mode='human'.

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
  - unseeded environment: train_q_learning calls gym.make(env_name) and env.reset() with no seed, as in the
    lecture. Seeding numpy (which drives the agent's exploration), as bench_q_learning.py and __main__ do,
    does not fix FrozenLake's slippery transitions, so runs differ. Most end near 0.73 greedy success, and
    some end at 0.000.

Interface (the same as the lecture's, which is what bench_q_learning.py calls):
    train_q_learning(env_name='FrozenLake-v1', n_episodes=10000) -> (agent, rewards_per_episode)
    agent.q_table is a (16, 4) numpy array. It prints a progress line every 1,000 episodes. The caller
    seeds np.random beforehand. train_q_learning makes its env with the module-level `gym.make(env_name)`,
    which bench_q_learning.py replaces to count steps.

Usage: python benchmarks/lecture_q_learning.py [--seed 1] [--episodes 10000]
Prints one line: RESULT seed=.. train_time=..s greedy_success=..  (greedy policy, 10,000 evaluation episodes,
env seeds 1,000,000 onward)
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
                 gamma=0.99, epsilon=0.1):
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


def train_q_learning(env_name='FrozenLake-v1', n_episodes=10000):
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
        epsilon=0.1
    )

    rewards_per_episode = []

    for episode in range(n_episodes):
        state, _ = env.reset()
        total_reward = 0
        done = False

        while not done:
            # Select action
            action = agent.select_action(state, training=True)

            # Take action
            next_state, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated

            # Update Q-table
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


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Lecture 03's Q-learning on FrozenLake-v1, timed (see the module docstring).")
    p.add_argument("--seed", type=int, default=1, help="seeds numpy and random (the env stays unseeded, as in the lecture)")
    p.add_argument("--episodes", type=int, default=10_000, help="training episodes (the lecture: 10,000)")
    a = p.parse_args()
    np.random.seed(a.seed)
    random.seed(a.seed)
    t0 = time.time()
    agent, rewards = train_q_learning(n_episodes=a.episodes)
    dt = time.time() - t0
    print(f"RESULT seed={a.seed} train_time={dt:.2f}s greedy_success={greedy_success(agent.q_table):.3f}")
