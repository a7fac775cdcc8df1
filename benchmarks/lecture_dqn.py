"""Lecture 03's DQN code for CartPole, reproduced as a baseline.

What this is: the code from Lecture 03 ("Value Functions and Q-Learning"), Parts 3-5: the SimpleDQN
network (Part 3, "DQN for Simple Environments"), the ReplayBuffer (Part 4, "Trick 1: Experience
Replay"), and DQNAgent with train_dqn (Part 5, "Complete DQN Implementation"). The agent and the training
loop follow the lecture line for line. Only these things are added: the imports at the top, a
filter for one torch warning, the env's seed (train_dqn's `seed`: the first env.reset is seeded, so the same
--seed gives the same returns run after run), the --fix switches (train_dqn's `fixes`, below; none by default),
each change marked with a comment naming its fix, and, after the lecture's code, a __main__ that measures a run
(one torch thread), logs its episodes through an env wrapper, scores the trained agent greedily, writes a run
folder and prints one line. The lecture's
Atari `DQN` conv network (Part 3) is left out because CartPole does not use it, and so is its closing
`render_mode='human'` episode, which needs a display.

Why it is here: it is the comparison baseline for benchmarks/bench_cartpole.py (speed and sample efficiency
of dqn_cartpole.py next to the lecture's DQN). It lives inside the repository so that a clone can reproduce
every number without the course material next to it.

The recipe, as in the lecture:
  - a collections.deque (capacity 100,000) of namedtuples, sampled with random.sample; every update builds
    its batch tensors from Python lists;
  - one gradient step on a batch of 64 at every environment step, once the buffer holds 64 transitions;
  - MSE loss, Adam, gradient-norm clip 10, hard target copy every 1,000 updates, gamma 0.99;
  - epsilon starts at 1.0 and is multiplied by 0.995 after each episode, with a floor of 0.01;
  - SimpleDQN: a 128x128 ReLU MLP;
  - learning rate: DQNAgent's default is 1e-4, but the lecture's train_dqn passes learning_rate=1e-3, so
    a run of train_dqn trains with Adam at 1e-3. Both values are kept as the lecture wrote them.

What it keeps on purpose, which dqn_cartpole.py fixes:
  - `done = terminated or truncated` is both the loop's exit and the stored bootstrap mask. At CartPole's
    500-step time limit, the target becomes r alone, as though the pole had fallen. dqn_cartpole.py stores
    `terminated` and keeps bootstrapping through a truncation;
  - epsilon decays per episode (x 0.995), so the schedule depends on episode lengths instead of a number of
    steps. dqn_cartpole.py uses a linear schedule over environment steps;
  - a deque of tuples and per-update tensors built from lists, where dqn_cartpole.py uses a preallocated
    numpy ring buffer. This is the main cost in steps per second;
  - training starts as soon as the buffer holds one batch (64 transitions), with no warm-up period
    (dqn_cartpole.py: --learning-starts);
  - the batch (64; dqn_cartpole.py: 128), the hidden width (128; dqn_cartpole.py: 64), a hard target copy every
    1,000 gradient steps (dqn_cartpole.py: every 100 env steps, with one gradient step per env step) and
    Adam's eps (PyTorch's 1e-8; dqn_cartpole.py: 1e-4).
The same in both: learning rate 1e-3, MSE loss, gradient-norm clip 10, gamma 0.99, a 100,000-transition buffer,
one gradient step per env step. (Left as it is: random.sample draws a batch without replacement, dqn_cartpole.py
with.)

Seeding, which the lecture leaves out: train_dqn(..., seed=s) seeds the first env.reset with s (later resets go on
from that generator), and __main__ seeds Python's `random`, numpy and torch with --seed too, so a run is the same
run after run. Without a seed (train_dqn's default, as the lecture calls it) CartPole's starts are unseeded.

--fix NAME (repeatable, or comma-separated; args.json records them) puts one of these differences right, each at
the one place it acts (`if "NAME" in fixes:`), to find out which ones keep the lecture's code from its exercise:
  truncation       store `terminated` as the bootstrap mask (the loop still ends the episode on either);
  target-period    copy the target every 100 gradient steps instead of 1,000;
  epsilon          linear over the first 5,000 env steps from 1.0 to 0.01, instead of x0.995 per episode;
  learning-starts  no gradient step before 500 env steps (the first at 501 stored, as dqn_cartpole.py);
  batch            128 transitions per gradient step instead of 64;
  width            64 hidden units instead of 128;
  adam-eps         Adam's eps 1e-4 instead of 1e-8;
  all              every one of them.
docs/lecture03.md (Part 5) has what each does in the exercise's 200 episodes, on 10 seeds
(python benchmarks/lecture_claims.py --list: fixes).

Interface (the same as the lecture's, which is what bench_cartpole.py calls):
    train_dqn(env_name='CartPole-v1', n_episodes=500, seed=None, fixes=()) -> (agent, rewards_per_episode)
    It prints a progress line every 50 episodes. The caller seeds random / np.random / torch beforehand.

Usage: python benchmarks/lecture_dqn.py [--seed 1] [--episodes 500] [--eval-episodes 10] [--fix NAME[,NAME]]
Prints one line: RESULT seed=.. episodes=.. steps=.. time=..s sps=.. solve195_ep=.. solve475_ep=.. last100=.. greedy=..
and writes a run folder as the repository's scripts do, runs/CartPole-v1__lecture_dqn__<seed>__<time>/: args.json,
episodes.csv (global_step, episodic_return, episodic_length, epsilon, elapsed_s; a row per episode as it ends) and
eval.json (the trained agent's greedy returns on dqn_cartpole.py's evaluation episodes of the seed). So
`python benchmarks/run_seeds.py benchmarks/lecture_dqn.py --seeds 1-10` runs and summarises it like the others
(Lecture 03's criterion, episodes to a 100-episode mean of 195, included), and
`python benchmarks/plot_results.py runs/<run>` draws its training curve.
"""
import argparse
import csv
import json
import os
import random
import sys
import time
import warnings
from collections import deque, namedtuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

# The lecture's ReplayBuffer.sample builds tensors from lists of numpy arrays. torch warns about this once
# ("extremely slow"). The slowness is part of the baseline, so this silences only that warning.
warnings.filterwarnings("ignore", message="Creating a tensor from a list of numpy.ndarrays")


# ---- Added here: --fix, each value one difference from dqn_cartpole.py put right (none: the lecture as written) ----

FIXES = ("truncation", "target-period", "epsilon", "learning-starts", "batch", "width", "adam-eps")


def linear_epsilon(env_steps):
    """fix epsilon: dqn_cartpole.py's schedule, 1.0 down to 0.01 linearly over the first 5,000 env steps
    (--exploration-fraction 0.1 of its 50,000), then 0.01. env_steps: the steps taken before this action."""
    return max(0.01, 1.0 + (0.01 - 1.0) * env_steps / 5000)


# ---- Lecture 03, Part 3: DQN for Simple Environments ----

class SimpleDQN(nn.Module):
    """
    DQN for low-dimensional state spaces (e.g., CartPole).

    Input: state vector
    Output: Q-values for each action
    """

    def __init__(self, state_dim, n_actions, hidden_dim=128):
        super().__init__()

        self.net = nn.Sequential(
            nn.Linear(state_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, n_actions)
        )

    def forward(self, state):
        """
        state: (batch, state_dim) tensor
        Returns: (batch, n_actions) tensor of Q-values
        """
        return self.net(state)


# ---- Lecture 03, Part 4, Trick 1: Experience Replay ----

# Experience tuple
Experience = namedtuple('Experience',
                        ['state', 'action', 'reward', 'next_state', 'done'])


class ReplayBuffer:
    """
    Stores experiences and samples random batches for training.
    """

    def __init__(self, capacity=100000):
        self.buffer = deque(maxlen=capacity)

    def push(self, state, action, reward, next_state, done):
        """Add experience to buffer."""
        exp = Experience(state, action, reward, next_state, done)
        self.buffer.append(exp)

    def sample(self, batch_size):
        """Sample random batch of experiences."""
        batch = random.sample(self.buffer, batch_size)

        # Unzip batch
        states = torch.tensor([e.state for e in batch], dtype=torch.float32)
        actions = torch.tensor([e.action for e in batch], dtype=torch.long)
        rewards = torch.tensor([e.reward for e in batch], dtype=torch.float32)
        next_states = torch.tensor([e.next_state for e in batch], dtype=torch.float32)
        dones = torch.tensor([e.done for e in batch], dtype=torch.float32)

        return states, actions, rewards, next_states, dones

    def __len__(self):
        return len(self.buffer)


# ---- Lecture 03, Part 5: Complete DQN Implementation ----

class DQNAgent:
    """
    Complete DQN agent with experience replay and target network.
    """

    def __init__(
        self,
        state_dim,
        n_actions,
        learning_rate=1e-4,
        gamma=0.99,
        epsilon_start=1.0,
        epsilon_end=0.01,
        epsilon_decay=0.995,
        buffer_capacity=100000,
        batch_size=64,
        target_update_freq=1000,
        fixes=()  # --fix
    ):
        self.n_actions = n_actions
        self.gamma = gamma
        self.epsilon = epsilon_start
        self.epsilon_end = epsilon_end
        self.epsilon_decay = epsilon_decay
        self.batch_size = batch_size
        self.target_update_freq = target_update_freq
        self.fixes = fixes  # --fix
        if "batch" in fixes:  # fix batch: dqn_cartpole.py's --batch-size 128
            self.batch_size = 128
        if "target-period" in fixes:  # fix target-period: a copy every 100 gradient steps (dqn_cartpole.py: 100 env steps, one gradient step each)
            self.target_update_freq = 100
        hidden_dim = 128  # SimpleDQN's default
        if "width" in fixes:  # fix width: dqn_cartpole.py's --hidden-dim 64
            hidden_dim = 64

        # Q-network and target network
        self.q_network = SimpleDQN(state_dim, n_actions, hidden_dim)  # fix width: hidden_dim
        self.target_network = SimpleDQN(state_dim, n_actions, hidden_dim)  # fix width: hidden_dim
        self.target_network.load_state_dict(self.q_network.state_dict())

        # Optimizer
        self.optimizer = optim.Adam(self.q_network.parameters(), lr=learning_rate)
        if "adam-eps" in fixes:  # fix adam-eps: dqn_cartpole.py's --adam-eps 1e-4 (PyTorch's default: 1e-8)
            self.optimizer.param_groups[0]["eps"] = 1e-4

        # Replay buffer
        self.replay_buffer = ReplayBuffer(buffer_capacity)

        # Training step counter
        self.steps = 0

    def select_action(self, state, training=True):
        """Epsilon-greedy action selection."""
        if training and np.random.random() < self.epsilon:
            return np.random.randint(self.n_actions)

        # Convert to tensor
        state_tensor = torch.tensor(state, dtype=torch.float32).unsqueeze(0)

        # Get Q-values
        with torch.no_grad():
            q_values = self.q_network(state_tensor)

        # Return action with highest Q-value
        return q_values.argmax().item()

    def update(self):
        """Sample batch from replay buffer and perform one gradient step."""
        if len(self.replay_buffer) < self.batch_size:
            return None  # Not enough samples yet
        if "learning-starts" in self.fixes and len(self.replay_buffer) <= 500:  # fix learning-starts: dqn_cartpole.py's first step is at env step 500 (0-based), with 501 stored
            return None

        # Sample batch
        states, actions, rewards, next_states, dones = \
            self.replay_buffer.sample(self.batch_size)

        # Compute current Q-values
        # Q(s,a) for the actions that were actually taken
        current_q_values = self.q_network(states).gather(1, actions.unsqueeze(1))

        # Compute target Q-values
        with torch.no_grad():
            # max_a' Q(s', a'; θ^-)
            next_q_values = self.target_network(next_states).max(1)[0]

            # r + γ max_a' Q(s', a'; θ^-) if not done, else just r
            target_q_values = rewards + (1 - dones) * self.gamma * next_q_values

        # Compute loss (MSE between current and target Q-values)
        loss = F.mse_loss(current_q_values.squeeze(), target_q_values)

        # Gradient descent
        self.optimizer.zero_grad()
        loss.backward()
        # Clip gradients (stabilizes training)
        torch.nn.utils.clip_grad_norm_(self.q_network.parameters(), 10)
        self.optimizer.step()

        # Update target network periodically
        self.steps += 1
        if self.steps % self.target_update_freq == 0:
            self.target_network.load_state_dict(self.q_network.state_dict())

        return loss.item()

    def decay_epsilon(self):
        """Decay exploration rate."""
        self.epsilon = max(self.epsilon_end, self.epsilon * self.epsilon_decay)


def train_dqn(env_name='CartPole-v1', n_episodes=500, seed=None, fixes=()):  # fix seeding: seed; --fix: fixes
    """Train DQN agent."""
    env = gym.make(env_name)

    agent = DQNAgent(
        state_dim=env.observation_space.shape[0],
        n_actions=env.action_space.n,
        learning_rate=1e-3,
        gamma=0.99,
        epsilon_start=1.0,
        epsilon_end=0.01,
        epsilon_decay=0.995,
        batch_size=64,
        fixes=fixes  # --fix
    )
    env_steps = 0  # fix epsilon: its schedule counts env steps

    rewards_per_episode = []

    for episode in range(n_episodes):
        state, _ = env.reset(seed=seed if episode == 0 else None)  # fix seeding: the first reset seeds the env
        total_reward = 0
        done = False

        while not done:
            # Select action
            if "epsilon" in fixes:  # fix epsilon: linear over env steps, not x0.995 per episode
                agent.epsilon = linear_epsilon(env_steps)
            action = agent.select_action(state, training=True)

            # Take action
            next_state, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            env_steps += 1  # fix epsilon

            # Store experience
            stored_done = done
            if "truncation" in fixes:  # fix truncation: only a fall ends the bootstrap; the time limit does not
                stored_done = terminated
            agent.replay_buffer.push(state, action, reward, next_state, stored_done)  # fix truncation: stored_done

            # Train agent
            loss = agent.update()

            state = next_state
            total_reward += reward

        # Decay epsilon
        if "epsilon" not in fixes:  # fix epsilon: the linear schedule replaces the decay
            agent.decay_epsilon()

        rewards_per_episode.append(total_reward)

        # Logging
        if (episode + 1) % 50 == 0:
            avg_reward = np.mean(rewards_per_episode[-50:])
            print(f"Episode {episode+1}: Avg Reward = {avg_reward:.2f}, "
                  f"Epsilon = {agent.epsilon:.3f}")

    return agent, rewards_per_episode


# ---- Added here: a headless, measuring entry point (the lecture's renders one episode instead) ----

def first_episode(rewards, threshold, window=100):
    """The first episode at which the mean return of the last `window` episodes reaches `threshold`."""
    for i in range(window - 1, len(rewards)):
        if np.mean(rewards[i + 1 - window: i + 1]) >= threshold:
            return i + 1
    return None


class EpisodeLog(gym.Wrapper):
    """Writes a row to episodes.csv at the end of each episode, as the repository's scripts do: global_step,
    episodic_return, episodic_length, epsilon, elapsed_s. The file is line-buffered (a run can be plotted while
    it goes). epsilon is the agent's during the episode: DQNAgent's schedule, max(0.01, 0.995 ** episode); with
    --fix epsilon, the linear schedule's at the episode's last step."""

    def __init__(self, env, writer, start_time, fixes=()):
        super().__init__(env)
        self.writer, self.start_time, self.fixes = writer, start_time, fixes
        self.global_step, self.episode, self.episode_return, self.episode_length = 0, 0, 0.0, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.global_step += 1
        self.episode_return += float(reward)
        self.episode_length += 1
        if terminated or truncated:
            epsilon = max(0.01, 0.995 ** self.episode)
            if "epsilon" in self.fixes:
                epsilon = linear_epsilon(self.global_step - 1)
            self.writer.writerow([self.global_step, self.episode_return, self.episode_length,
                                  round(epsilon, 4), round(time.time() - self.start_time, 2)])
            self.episode, self.episode_return, self.episode_length = self.episode + 1, 0.0, 0
        return obs, reward, terminated, truncated, info


def greedy_returns(agent, env_id, seed, episodes):
    """The trained agent's greedy returns (select_action with training=False) on the episodes dqn_cartpole.py's
    own evaluation plays for this seed: env seeds (seed + 1) * 2**32 + k, the env's own time limit."""
    env, returns = gym.make(env_id), []
    for k in range(episodes):
        state, _ = env.reset(seed=(seed + 1) * 2**32 + k)
        total, done = 0.0, False
        while not done:
            state, reward, terminated, truncated, _ = env.step(agent.select_action(state, training=False))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    env.close()
    return np.array(returns)


class ArgumentParser(argparse.ArgumentParser):
    """Bad input: one `error:` line on stderr and exit code 2, as the repository's scripts do."""

    def error(self, message):
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    p = ArgumentParser(description="Lecture 03's DQN on CartPole-v1, timed (see the module docstring).")
    p.add_argument("--seed", type=int, default=1, help="seeds random, numpy, torch and the env's first reset")
    p.add_argument("--episodes", type=int, default=500, help="training episodes (the lecture: 500)")
    p.add_argument("--env-id", default="CartPole-v1", help="the env train_dqn makes (the lecture: CartPole-v1)")
    p.add_argument("--eval-episodes", type=int, default=10, help="greedy episodes that score the trained agent")
    p.add_argument("--fix", action="append", default=[], metavar="NAME[,NAME]",
                   help=f"put one difference from dqn_cartpole.py right (repeatable): {', '.join(FIXES)}, or all; "
                        "none: the lecture's code as written")
    a = p.parse_args()
    if a.episodes < 1 or a.eval_episodes < 1:
        p.error(f"--episodes and --eval-episodes must be at least 1, got {a.episodes} and {a.eval_episodes}")
    names = {name.strip() for value in a.fix for name in value.split(",")}
    if names - {*FIXES, "all"}:
        p.error(f"--fix takes {', '.join(FIXES)} or all, got {', '.join(sorted(names - {*FIXES, 'all'}))}")
    a.fix = list(FIXES) if "all" in names else [name for name in FIXES if name in names]  # args.json records them
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    # The run folder the repository's scripts write, so benchmarks/run_seeds.py and plot_results.py read it alike:
    # args.json, episodes.csv (written during training), eval.json (at the end: the run finished).
    run_dir = os.path.join("runs", f"{a.env_id}__lecture_dqn__{a.seed}__{int(time.time())}")
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "args.json"), "w") as f:
        json.dump({**vars(a), "exp_name": "lecture_dqn", "gamma": 0.99, "script": "lecture_dqn.py"}, f, indent=2)
    t0 = time.time()
    with open(os.path.join(run_dir, "episodes.csv"), "w", newline="", buffering=1) as f:
        writer = csv.writer(f)
        writer.writerow(["global_step", "episodic_return", "episodic_length", "epsilon", "elapsed_s"])
        # train_dqn makes its env by name: a registered name that makes the env wrapped in the log
        logged_id = f"LectureLog/{a.env_id}"
        gym.register(logged_id, entry_point=lambda: EpisodeLog(gym.make(a.env_id), writer, t0, a.fix))
        agent, rewards = train_dqn(env_name=logged_id, n_episodes=a.episodes, seed=a.seed, fixes=a.fix)
    dt = time.time() - t0
    steps = int(sum(rewards))  # a CartPole episode's return is its length
    returns = greedy_returns(agent, a.env_id, a.seed, a.eval_episodes)
    with open(os.path.join(run_dir, "eval.json"), "w") as f:  # no checks: the reported model is the final one
        json.dump({"returns": returns.tolist(), "mean": returns.mean(), "std": returns.std(),
                   "final_returns": returns.tolist(), "final_mean": returns.mean(), "final_std": returns.std()}, f, indent=2)
    print(
        f"RESULT seed={a.seed} episodes={len(rewards)} steps={steps} time={dt:.1f}s sps={steps / dt:.0f} "
        f"solve195_ep={first_episode(rewards, 195)} solve475_ep={first_episode(rewards, 475)} "
        f"last100={np.mean(rewards[-100:]):.1f} greedy={returns.mean():.1f}"
    )
    print(f"files:  {run_dir}/ (args.json, episodes.csv, eval.json)")
    print(f"plot:   python {os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'plot_results.py'))} {run_dir}")
