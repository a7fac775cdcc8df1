"""Prioritized replay (Schaul et al. 2016, proportional): DQN that replays the transitions it got most wrong more often.

Mnih et al. 2015, "Human-level control through deep reinforcement learning" (Nature 518),
Algorithm 1, on an environment with a vector observation and a discrete action space
(CartPole-v1 by default). Lecture 03, Parts 3-5, builds the same agent step by step (Part 6 the
variants). Its names, in this file:

    lecture                              this file
    SimpleDQN(state_dim, n_actions)      QNetwork(obs_dim, n_actions, hidden_dim)
    PrioritizedReplayBuffer.push(...)    PrioritizedReplayBuffer.add(obs, action, reward, next_obs, terminated)
    state, next_state                    obs, next_obs
    done = terminated or truncated       terminated: only a real end stops bootstrapping
    DQNAgent.select_action               the epsilon-greedy lines at the top of train()'s loop
    decay_epsilon (x 0.995 per episode)  linear_schedule (per env step)
    DQNAgent.update                      compute_td_target and the gradient step in train()
    target_network.load_state_dict(...)  update_target_network

Every other DQN in this collection is dqn_cartpole.py plus one idea: `diff dqn_cartpole.py
double_dqn.py`.
Run `python dqn_cartpole.py --help` for every flag and its default.
"""
import argparse
import copy
import csv
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections import deque

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SCRIPT = os.path.basename(__file__)


# --------------------------------------------------------------- network
class QNetwork(nn.Module):
    """Q(s, ·; θ): one forward pass gives the value of every action (Lecture 03, SimpleDQN)."""

    def __init__(self, obs_dim, n_actions, hidden_dim):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(obs_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, n_actions),
        )

    def forward(self, obs):
        return self.net(obs)


# --------------------------------------------------------- replay buffer
class ReplayBuffer:
    """A ring of preallocated numpy arrays, row i one transition (s, a, r, s', terminated):
    a new row overwrites the oldest once full, and sampling is uniform over the rows
    written so far."""

    def __init__(self, capacity, obs_dim, rng):
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.pos, self.size, self.rng = capacity, 0, 0, rng

    def add(self, obs, action, reward, next_obs, terminated):
        row = self.pos
        self.obs[row], self.actions[row], self.rewards[row] = obs, action, reward
        self.next_obs[row], self.terminated[row] = next_obs, terminated
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size, device):
        rows = self.rng.integers(0, self.size, size=batch_size)
        batch = (self.obs[rows], self.actions[rows], self.rewards[rows],
                 self.next_obs[rows], self.terminated[rows])
        return [torch.from_numpy(x).to(device) for x in batch]


class SumTree:
    """Priorities at the leaves of a binary tree in one numpy array, every inner node the sum of its two children.

    Node 1 is the root (the total), node i has children 2i and 2i + 1, and leaf j is node
    `first_leaf + j`. The leaf count is a power of two, so all leaves lie in order at one depth;
    those beyond the capacity stay 0. Finding a prefix sum or updating a leaf walks one root-leaf
    path, O(log n), done for a whole batch at once.
    """

    def __init__(self, capacity):
        self.first_leaf = 1 << (capacity - 1).bit_length()  # the least power of two >= capacity
        self.depth = self.first_leaf.bit_length() - 1
        # float64: a float32 total drifts over millions of updates
        self.nodes = np.zeros(2 * self.first_leaf)

    @property
    def total(self):
        return self.nodes[1]

    def priorities(self, leaves):
        return self.nodes[self.first_leaf + leaves]

    def update(self, leaves, priorities):
        """Set the leaves' priorities (of duplicate leaves, the last), then re-sum every
        ancestor, level by level."""
        last = len(leaves) - 1 - np.unique(leaves[::-1], return_index=True)[1]
        nodes = self.first_leaf + leaves[last]
        self.nodes[nodes] = priorities[last]
        for _ in range(self.depth):
            nodes //= 2
            # Re-sum the children instead of adding the change: a node that two leaves share
            # then gets the same right value twice, and rounding errors cannot pile up.
            self.nodes[nodes] = self.nodes[2 * nodes] + self.nodes[2 * nodes + 1]

    def find_prefix_sum(self, values):
        """For each v in [0, total), the leaf j with p_0 + ... + p_{j-1} <= v < p_0 + ... + p_j:
        never a leaf of 0."""
        nodes, values = np.ones(len(values), dtype=np.int64), np.array(values, dtype=np.float64)
        for _ in range(self.depth):
            left_sums = self.nodes[2 * nodes]
            go_right = values >= left_sums
            values -= np.where(go_right, left_sums, 0.0)
            nodes = 2 * nodes + go_right
        return nodes - self.first_leaf


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay, Schaul et al. 2016, Algorithm 1, on the same ring of transitions.

    Transition i is sampled with probability P(i) = p_i^α / Σ_k p_k^α (Eq. (1)), p_i = |δ_i| + ε,
    and its update is weighted by w_i = (N · P(i))^-β / max_j w_j (Section 3.4, max over the
    batch), undoing the sampling bias. The lecture's version keeps priorities in a list (O(n) per
    sample) and needs a TD error at insertion; here a sum tree (O(log n)) holds p_i^α, and a new
    transition enters at the highest priority so far (line 6), which has it replayed soon without
    computing its error first.
    """

    def __init__(self, capacity, obs_dim, rng, alpha, eps):
        super().__init__(capacity, obs_dim, rng)
        self.tree, self.alpha, self.eps = SumTree(capacity), alpha, eps
        self.max_priority = 1.0  # the largest p_i^α so far (Algorithm 1 starts from p_1 = 1)

    def add(self, obs, action, reward, next_obs, terminated):
        self.tree.update(np.array([self.pos]), np.array([self.max_priority]))
        super().add(obs, action, reward, next_obs, terminated)

    def sample(self, batch_size, device, beta):
        # Stratified (Appendix B.2.1): one uniform draw in each of batch_size equal segments of [0, total).
        segment = self.tree.total / batch_size
        prefix_sums = (np.arange(batch_size) + self.rng.random(batch_size)) * segment
        rows = np.minimum(self.tree.find_prefix_sum(prefix_sums), self.size - 1)  # round-off could pass the last row
        probs = self.tree.priorities(rows) / self.tree.total  # P(i), Eq. (1)
        weights = (self.size * probs) ** -beta
        weights /= weights.max()  # normalised by the batch's largest weight: only ever scaled down
        batch = (self.obs[rows], self.actions[rows], self.rewards[rows],
                 self.next_obs[rows], self.terminated[rows])
        return [torch.from_numpy(x).to(device) for x in batch] + [
            rows, torch.from_numpy(weights).float().to(device)]

    def update_priorities(self, rows, td_errors):
        """Algorithm 1, line 12: p_i = |δ_i| + ε; ε > 0 so that a transition with zero error
        still comes back."""
        priorities = (np.abs(td_errors) + self.eps) ** self.alpha
        self.tree.update(rows, priorities)
        self.max_priority = max(self.max_priority, priorities.max())


# ------------------------------------------------------------- schedules
def linear_schedule(start_e, end_e, duration, t):
    """Epsilon falls linearly from start_e to end_e over `duration` steps, then stays at
    end_e."""
    return max(end_e, start_e + (end_e - start_e) * t / duration)


def learning_rate_at(args, global_step):
    """--anneal-lr: constant for the first --anneal-lr-start of the run, then linearly down to 0
    at its end."""
    decay_start = args.anneal_lr_start * args.total_timesteps
    if global_step < decay_start:
        return args.learning_rate
    decay_steps = args.total_timesteps - decay_start
    return args.learning_rate * (1 - (global_step - decay_start) / decay_steps)


# ------------------------------------------------------------- TD target
def compute_td_target(target_network, rewards, next_obs, terminated, gamma):
    """TD target of Mnih et al. 2015, Eq. (2): y = r + γ max_a' Q(s', a'; θ⁻), or y = r when
    s' is terminal.

    Only termination zeroes the bootstrap term. A time-limit truncation was stored with
    terminated = 0: the pole was still up, so the return would have gone on and the target
    must bootstrap.
    """
    with torch.no_grad():
        next_q_max = target_network(next_obs).max(dim=1).values
    return rewards + gamma * (1 - terminated) * next_q_max


def update_target_network(target_network, q_network, tau):
    """θ⁻ ← τ θ + (1 − τ) θ⁻: at τ = 1 Algorithm 1's copy θ⁻ = θ every C steps, below 1
    Polyak averaging."""
    for target_param, param in zip(target_network.parameters(), q_network.parameters()):
        target_param.data.copy_(tau * param.data + (1 - tau) * target_param.data)


# --------------------------------------------------------- training loop
def train(args, env, q_network, device, logs, best):
    rng, env_seed, probe_rng = random_streams(args.seed)
    target_network = copy.deepcopy(q_network)
    # fused: Adam's update of every parameter in one kernel, the same numbers, fewer small
    # operations
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate,
                                 eps=args.adam_eps, fused=True)
    rb = PrioritizedReplayBuffer(args.buffer_size, env.observation_space.shape[0], rng,
                                 args.prioritized_replay_alpha, args.prioritized_replay_eps)
    loss_fn = F.mse_loss if args.loss == "mse" else F.smooth_l1_loss
    probe = probe_states(args.env_id, args.seed, args.probe_states, probe_rng)
    probe_obs = torch.from_numpy(probe).to(device)

    obs, _ = env.reset(seed=env_seed)
    episode_return, episode_length, recent_returns = 0.0, 0, deque(maxlen=20)
    for global_step in range(args.total_timesteps):
        # Epsilon-greedy (Algorithm 1): with probability epsilon a random action, else
        # argmax_a Q(s, a).
        exploration_steps = args.exploration_fraction * args.total_timesteps
        epsilon = linear_schedule(args.start_e, args.end_e, exploration_steps, global_step)
        # drawn on every step: the same stream whatever Q says
        random_action = rng.integers(env.action_space.n)
        if rng.random() < epsilon:
            action = random_action
        else:
            with torch.no_grad():  # a batch of one state (float64 envs too)
                obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)
                action = q_network(obs_t.unsqueeze(0)).argmax(dim=1).item()

        next_obs, reward, terminated, truncated, _ = env.step(action)
        # Store `terminated`, not `terminated or truncated` (the lecture's `done`): a time-limit
        # truncation (CartPole's 500 steps) is not a terminal state of the MDP, so its target
        # must still bootstrap.
        rb.add(obs, action, reward, next_obs, terminated)
        obs = next_obs
        episode_return, episode_length = episode_return + reward, episode_length + 1
        # the next episode starts here: no stored transition crosses the boundary
        if terminated or truncated:
            logs.episode(global_step + 1, episode_return, episode_length, epsilon)
            recent_returns.append(episode_return)
            obs, _ = env.reset()
            episode_return, episode_length = 0.0, 0

        learning = global_step >= args.learning_starts
        if learning and global_step % args.train_frequency == 0:
            if args.anneal_lr:
                optimizer.param_groups[0]["lr"] = learning_rate_at(args, global_step)
            # β rises linearly to 1: the bias matters most near the end, when the estimates should converge.
            beta = 1 - (1 - args.prioritized_replay_beta) * (1 - global_step / args.total_timesteps)
            *batch, rows, is_weights = rb.sample(args.batch_size, device, beta)
            obs_b, actions_b, rewards_b, next_obs_b, terminated_b = batch
            td_target = compute_td_target(target_network, rewards_b, next_obs_b,
                                          terminated_b, args.gamma)
            # Q(s, a; θ)
            q_taken = q_network(obs_b).gather(1, actions_b.unsqueeze(1)).squeeze(1)
            # Algorithm 1, line 13: each transition's loss (squared, or Huber) weighted by its w_i
            loss = (is_weights * loss_fn(q_taken, td_target, reduction="none")).mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss.item()} at global step {global_step}")
            optimizer.zero_grad()
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(q_network.parameters(), args.max_grad_norm)
            optimizer.step()
            rb.update_priorities(rows, (td_target - q_taken.detach()).cpu().numpy())  # this update's δ_i
            logs.train_step(global_step, loss, grad_norm, q_taken, q_network, probe_obs)

        # Target network θ⁻ (Algorithm 1: reset to θ every C steps); --tau < 1 blends
        # instead (Polyak).
        if learning and global_step % args.target_network_frequency == 0:
            update_target_network(target_network, q_network, args.tau)

        steps_done = global_step + 1  # a check every --check-frequency steps and at the end
        if args.check_frequency and (steps_done % args.check_frequency == 0
                                     or steps_done == args.total_timesteps):
            best.check(q_network, steps_done, logs)
        logs.progress(steps_done, epsilon, recent_returns)


def random_streams(seed):
    """From one --seed, three independent streams (SeedSequence.spawn): the agent's
    (exploration, replay sampling), the training env's seed (31 bits: below the evaluation's,
    see episode_seed) and the probe's. Had they been default_rng(s) and reset(seed=s), they
    would be one stream: exploration would replay the env's own noise."""
    agent, env, probe = np.random.SeedSequence(seed).spawn(3)
    env_seed = int(env.generate_state(1)[0] >> 1)
    return np.random.default_rng(agent), env_seed, np.random.default_rng(probe)


def make_env(env_id):
    """The training env; one this DQN cannot drive raises ValueError."""
    if env_id.startswith("ALE/") or "NoFrameskip" in env_id:
        raise ValueError(f"--env-id {env_id} is an Atari game: use dqn_atari.py")
    try:
        env = gym.make(env_id)
    except gym.error.Error as e:
        raise ValueError(f"cannot make --env-id {env_id}: {str(e).splitlines()[0]}")
    box, discrete = env.observation_space, isinstance(env.action_space, gym.spaces.Discrete)
    if not (discrete and isinstance(box, gym.spaces.Box) and len(box.shape) == 1):
        raise ValueError(f"{env_id}: DQN needs Discrete actions, a flat Box observation")
    return env


# ------------------------------------------------------------ evaluation
def episode_seed(seed, episode, check_step=None):
    """The env seed of greedy episode `episode`. Training seed s owns [(s + 1) * 2**32,
    (s + 2) * 2**32): the final evaluation its first half, the checks (offset by their step)
    the second. So no two training seeds, and no check and the evaluation, share a start, and
    training itself (seeds below 2**32) shares none with either."""
    block = (seed + 1) * 2**32
    return block + episode if check_step is None else block + 2**31 + check_step + episode


def evaluate(q_network, env_id, seeds, device, max_episode_steps=None, video_dir=None):
    """Greedy policy argmax_a Q(s, a), no exploration: one episode per env seed in `seeds`,
    side by side (one forward pass picks the actions of all those still going); with
    `video_dir`, an mp4 of each episode."""
    mode = "rgb_array" if video_dir else None
    envs = [gym.make(env_id, max_episode_steps=max_episode_steps, render_mode=mode)
            for _ in seeds]
    obs = np.stack([env.reset(seed=seed)[0] for seed, env in zip(seeds, envs)])
    frames = [[env.render()] if video_dir else [] for env in envs]
    returns, running = np.zeros(len(seeds)), np.ones(len(seeds), dtype=bool)
    while running.any():
        with torch.no_grad():
            obs_t = torch.as_tensor(obs, dtype=torch.float32, device=device)
            actions = q_network(obs_t).argmax(dim=1).cpu().numpy()
        for i in np.flatnonzero(running):
            obs[i], reward, terminated, truncated, _ = envs[i].step(actions[i])
            returns[i] += reward
            running[i] = not (terminated or truncated)
            frames[i] += [envs[i].render()] if video_dir else []
    for env in envs:
        env.close()
    if video_dir:
        write_videos(frames, video_dir, envs[0].metadata.get("render_fps", 30))
    return returns


def write_videos(frames, video_dir, fps):
    """One mp4 per episode at the env's own frame rate (CartPole: 50 fps), every frame: pygame
    draws them, imageio-ffmpeg (it comes with moviepy) writes them."""
    import imageio_ffmpeg
    os.makedirs(video_dir, exist_ok=True)
    for i, episode in enumerate(frames):
        height, width = episode[0].shape[:2]
        writer = imageio_ffmpeg.write_frames(f"{video_dir}/episode-{i:03d}.mp4",
                                             (width, height), fps=fps, macro_block_size=1)
        writer.send(None)  # starts ffmpeg
        for frame in episode:
            writer.send(np.ascontiguousarray(frame))
        writer.close()


def probe_states(env_id, seed, count, rng):
    """`count` states that a uniformly random policy visits, from envs and a generator `rng` of
    their own (training's random stream is untouched, so the probe changes no training number).
    Q on them, logged in train.csv, shows whether the estimates rise above what any return can
    be (on CartPole 1/(1 - γ) = 100: every reward is 1)."""
    env, states, episode = gym.make(env_id), [], 0
    while len(states) < count:
        # the evaluation's starts, then random actions
        obs, _ = env.reset(seed=episode_seed(seed, episode))
        done, episode = False, episode + 1
        while not done and len(states) < count:
            states.append(obs)
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            done = terminated or truncated
    env.close()
    return np.array(states, dtype=np.float32).reshape(count, *env.observation_space.shape)


class BestModel:
    """Keeps the weights that scored best on greedy check episodes (like SB3's EvalCallback),
    reported beside the final network. A check plays twice the env's time limit: a policy whose
    cart drifts off the track after 200-450 steps often still reaches CartPole's 500. Its
    episodes are seeded apart from the final evaluation's."""

    def __init__(self, q_network, env_id, episodes, seed, device):
        self.env_id, self.episodes, self.seed, self.device = env_id, episodes, seed, device
        time_limit = gym.spec(env_id).max_episode_steps
        self.max_episode_steps = 2 * time_limit if time_limit else None
        self.score, self.step, self.weights = -np.inf, 0, copy.deepcopy(q_network.state_dict())

    def check(self, q_network, global_step, logs):
        seeds = [episode_seed(self.seed, episode, check_step=global_step)
                 for episode in range(self.episodes)]
        score = evaluate(q_network, self.env_id, seeds, self.device,
                         self.max_episode_steps).mean()
        kept = score >= self.score  # a tie goes to the later model, which has trained longer
        if kept:
            self.score, self.step, self.weights = score, global_step, copy.deepcopy(
                q_network.state_dict())
        logs.check(global_step, score, self.episodes, kept)


def load_model(q_network, path):
    """Weights this script saved; any other file raises ValueError."""
    try:
        q_network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:  # missing, empty, not a model, another shape
        raise ValueError(f"{path} is not a model of {SCRIPT} at this --env-id and "
                         f"--hidden-dim ({type(e).__name__})") from e


# ============================================================== plumbing
# What runs the lesson above: flags and their ranges, logs, model files and main().
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False,
                                exit_on_error=False,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    on_off = argparse.BooleanOptionalAction
    add = p.add_argument_group("algorithm").add_argument
    add("--env-id", default="CartPole-v1", help="a flat Box observation, Discrete actions")
    add("--total-timesteps", type=int, default=50_000, help="env steps")
    add("--learning-rate", type=float, default=1e-3, help="Adam's step size (lecture: 1e-4)")
    add("--anneal-lr", action=on_off, default=False, help="decay the learning rate to 0")
    add("--anneal-lr-start", type=float, default=0.0, help="the run's share before the decay")
    add("--adam-eps", type=float, default=1e-4, help="Adam's epsilon (PyTorch's: 1e-8)")
    add("--buffer-size", type=int, default=100_000, help="replay memory, in transitions")
    add("--batch-size", type=int, default=128, help="transitions per gradient step, <= --buffer-size")
    add("--gamma", type=float, default=0.99, help="discount factor")
    add("--tau", type=float, default=1.0, help="target update rate: 1 = a hard copy")
    add("--target-network-frequency", type=int, default=100, help="steps between updates of θ⁻")
    add("--train-frequency", type=int, default=1, help="env steps between gradient steps")
    add("--learning-starts", type=int, default=500, help="env steps before the first update")
    add("--start-e", type=float, default=1.0, help="epsilon at the start")
    add("--end-e", type=float, default=0.01, help="epsilon after the decay (Nature: 0.1)")
    add("--exploration-fraction", type=float, default=0.1, help="share of the run for the decay")
    add("--hidden-dim", type=int, default=64, help="units in each hidden layer (lecture: 128)")
    add("--loss", choices=["mse", "huber"], default="mse", help="squared error, or Huber")
    add("--max-grad-norm", type=float, default=10.0, help="clip the gradient's norm to this")
    add("--prioritized-replay-alpha", type=float, default=0.6, help="priorities' weight: 0 = uniform")
    add("--prioritized-replay-beta", type=float, default=0.4, help="IS-weight exponent, annealed to 1")
    add("--prioritized-replay-eps", type=float, default=1e-6, help="added to |TD error|: no priority 0")
    add = p.add_argument_group("run and logs").add_argument
    add("--seed", type=int, default=1, help="seeds it all")
    add("--exp-name", default=SCRIPT[:-3], help="runs/<env>__<exp-name>__<seed>__<time>_<suffix>")
    add("--save-model", action=on_off, default=True, help="save the final and kept network")
    add("--probe-states", type=int, default=1_000, help="states whose Q train.csv logs")
    add("--cuda", action="store_true", help="use a GPU when there is one")
    add("--torch-deterministic", action=on_off, default=True, help="cudnn.deterministic")
    add = p.add_argument_group("evaluation").add_argument
    add("--eval-episodes", type=int, default=10, help="greedy episodes that score the models")
    add("--check-frequency", type=int, default=5_000, help="steps between checks (0: none)")
    add("--check-episodes", type=int, default=10, help="greedy episodes per check")
    add("--eval-model", metavar="PATH", help="evaluate a saved model with its run's settings")
    add("--capture-video", action="store_true", help="mp4s of the evaluation in videos/")
    for _ in range(2):  # with --eval-model again: its run's args.json gives the defaults
        try:
            args, unknown = p.parse_known_args(argv)
        except argparse.ArgumentError as e:
            fail(e)
        if unknown:
            fail(f"unrecognized arguments: {' '.join(unknown)}")
        if args.eval_model:
            p.set_defaults(**saved_run_args(args.eval_model, vars(args)))
    a, inf = args, math.inf
    for flag, ok in [("total-timesteps", 0 < a.total_timesteps < 2**31),
                     ("learning-rate", 0 < a.learning_rate < inf),
                     ("anneal-lr-start", 0 <= a.anneal_lr_start < 1),
                     ("adam-eps", 0 < a.adam_eps < inf), ("buffer-size", a.buffer_size > 0),
                     ("batch-size", 0 < a.batch_size <= a.buffer_size),
                     ("gamma", 0 <= a.gamma <= 1), ("tau", 0 < a.tau <= 1),
                     ("target-network-frequency", a.target_network_frequency > 0),
                     ("train-frequency", a.train_frequency > 0),
                     ("learning-starts", a.learning_starts >= 0),
                     ("start-e", 0 <= a.start_e <= 1), ("end-e", 0 <= a.end_e <= 1),
                     ("exploration-fraction", 0 < a.exploration_fraction <= 1),
                     ("hidden-dim", a.hidden_dim > 0),
                     ("max-grad-norm", 0 < a.max_grad_norm < inf),
                     ("seed", 0 <= a.seed < 2**32), ("probe-states", 0 <= a.probe_states <= 10**6),
                     ("eval-episodes", 0 < a.eval_episodes <= 10**4),
                     ("check-frequency", a.check_frequency >= 0),
                     ("check-episodes", 0 < a.check_episodes <= 10**4),
                     ("prioritized-replay-alpha", 0 <= a.prioritized_replay_alpha <= 1),
                     ("prioritized-replay-beta", 0 <= a.prioritized_replay_beta <= 1),
                     ("prioritized-replay-eps", 0 < a.prioritized_replay_eps < inf)]:
        if not ok:  # NaN, a negative count, a batch larger than the buffer, ...
            fail(f"--{flag} {getattr(a, flag.replace('-', '_'))} is out of range")
    return args


def fail(message):  # bad input: one line and exit code 2, as argparse's
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def saved_run_args(model_path, known):
    """The settings of the run that saved `model_path`: its args.json ({} if none)."""
    path = os.path.join(os.path.dirname(model_path), "args.json")
    try:
        with open(path) as f:
            saved = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        fail(f"cannot read {path}, the settings of {model_path}")
    skip = ("eval_model", "capture_video")
    return {k: v for k, v in saved.items() if k in known and k not in skip}


class Logs:
    """runs/<run>/: args.json; episodes.csv, train.csv, checks.csv (line-buffered: a run can be
    plotted while it goes); the same numbers as TensorBoard events under CleanRL's tags."""
    TAGS = {  # each CSV's columns and their TensorBoard tags
        "episodes": {"episodic_return": "charts/episodic_return",
                     "episodic_length": "charts/episodic_length",
                     "epsilon": "charts/epsilon", "elapsed_s": None},
        "train": {"loss": "losses/td_loss", "q_values": "losses/q_values",
                  "sps": "charts/SPS", "probe_q_mean": "charts/probe_q_mean",
                  "probe_q_max": "charts/probe_q_max", "grad_norm": "losses/grad_norm"},
        "checks": {"score": "charts/check_score", "kept": None, "elapsed_s": None}}

    def __init__(self, run_dir, args):
        from torch.utils.tensorboard import SummaryWriter
        with open(f"{run_dir}/args.json", "w") as f:
            json.dump({**vars(args), "script": SCRIPT}, f, indent=2)
        self.files = {name: open(f"{run_dir}/{name}.csv", "w", newline="", buffering=1)
                      for name in self.TAGS}
        self.csv = {name: csv.writer(f) for name, f in self.files.items()}
        for name, columns in self.TAGS.items():
            self.csv[name].writerow(["global_step", *columns])
        self.writer, self.total = SummaryWriter(run_dir), args.total_timesteps
        self.every = min(10_000, math.ceil(self.total / 10))
        self.next_train_log, self.start = 0, time.time()

    def row(self, name, global_step, *values):
        self.csv[name].writerow([global_step, *values])
        for tag, value in zip(self.TAGS[name].values(), values):
            if tag:
                self.writer.add_scalar(tag, value, global_step)

    def seconds(self):
        return max(time.time() - self.start, 1e-9)

    def episode(self, global_step, episodic_return, length, epsilon):
        self.row("episodes", global_step, episodic_return, length, round(epsilon, 4),
                 round(self.seconds(), 2))

    def train_step(self, global_step, loss, grad_norm, q_taken, q_network, probe_obs):
        if global_step >= self.next_train_log:  # .item() syncs, so only on the steps we log
            with torch.no_grad():
                probe_q = torch.full((1,), math.nan)
                if len(probe_obs):
                    probe_q = q_network(probe_obs)
            self.row("train", global_step, loss.item(), q_taken.mean().item(),
                     int(global_step / self.seconds()), probe_q.mean().item(),
                     probe_q.max().item(), grad_norm.item())
            self.next_train_log = global_step + 1_000

    def check(self, global_step, score, episodes, kept):
        self.row("checks", global_step, score, int(kept), round(self.seconds(), 2))
        mark = "  (kept)" if kept else ""
        print(f"check  step {global_step:>8}: {score:7.1f} over {episodes} greedy "
              f"episodes{mark}")

    def progress(self, step, epsilon, recent_returns):
        if Logs.ctrl_c:  # noted by on_ctrl_c: stop between two steps
            raise KeyboardInterrupt
        if step % self.every == 0 or step == self.total:
            mean = f"{np.mean(recent_returns):7.1f}" if recent_returns else "      -"
            sps = step / self.seconds()
            print(f"step {step:>8}/{self.total} | {sps:6.0f} SPS | ETA "
                  f"{(self.total - step) / sps:5.0f}s | return (last "
                  f"{len(recent_returns)}) {mean} | epsilon {epsilon:.3f}", flush=True)

    def close(self):
        for f in [*self.files.values(), self.writer]:
            f.close()


def on_ctrl_c(signum, frame):
    """Ctrl-C while training is noted, and the run stops after the step: raised wherever
    it lands, it could cut a TensorBoard write in half and hang its writer thread."""
    Logs.ctrl_c = True


def train_and_report(args, env, q_network, device, eval_seeds):
    # a random suffix: two runs started in the same second never share a folder
    os.makedirs("runs", exist_ok=True)
    name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}_"
    run_dir = tempfile.mkdtemp(prefix=name, dir="runs")
    run_name, stopped = os.path.basename(run_dir), False
    best = BestModel(q_network, args.env_id, args.check_episodes, args.seed, device)
    logs = Logs(run_dir, args)
    Logs.ctrl_c, previous = False, signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        train(args, env, q_network, device, logs, best)
    except KeyboardInterrupt:  # the models are saved, then main() says so
        stopped = True
    finally:
        signal.signal(signal.SIGINT, previous)
        logs.close()
        env.close()
    # The run reports its final network (the online weights after the last gradient step), as
    # CleanRL and SB3 do; the model the checks kept (the last model competes too) is saved and
    # scored beside it.
    final_weights = copy.deepcopy(q_network.state_dict())
    kept = bool(args.check_frequency and best.step)
    model_file = f"{run_dir}/{args.exp_name}.pt"
    if args.save_model:
        torch.save(final_weights, model_file)
        if kept:
            torch.save(best.weights, f"{run_dir}/{args.exp_name}_kept.pt")
    if stopped:
        raise KeyboardInterrupt
    video_dir = f"videos/{run_name}" if args.capture_video else None
    final = evaluate(q_network, args.env_id, eval_seeds, device, video_dir=video_dir)
    result = {"final_returns": final.tolist(), "final_mean": final.mean(),
              "final_std": final.std()}
    if kept:  # the same evaluation episodes score the model the checks kept
        q_network.load_state_dict(best.weights)
        kept_returns = evaluate(q_network, args.env_id, eval_seeds, device)
        result.update(kept_returns=kept_returns.tolist(), kept_mean=kept_returns.mean(),
                      kept_std=kept_returns.std(), kept_step=best.step,
                      kept_check_score=best.score)
        q_network.load_state_dict(final_weights)
    with open(f"{run_dir}/eval.json", "w") as f:
        json.dump(result, f, indent=2, allow_nan=False)
    script = os.path.relpath(__file__)  # the commands below run as printed from here
    here = os.path.dirname(os.path.abspath(__file__))
    plot = os.path.relpath(f"{here}/benchmarks/plot_results.py")
    print(f"result: {final.mean():.1f} ± {final.std():.1f} over {len(final)} greedy episodes: "
          "the final network")
    if kept:  # the best greedy check: a model chosen by its score, so reported beside
        print(f"        the kept model (step {best.step}, {best.score:.1f} on "
              f"{best.episodes} check episodes): {kept_returns.mean():.1f} ± "
              f"{kept_returns.std():.1f} on the same episodes")
    print(f"files:  {run_dir}/ ({', '.join(sorted(os.listdir(run_dir)))})")
    print(f"plot:   python {plot} {run_dir}")
    if args.save_model:
        print(f"again:  python {script} --eval-model {model_file}")
        print(f"video:  python {script} --eval-model {model_file} --capture-video")
    if video_dir:
        print(f"        videos of the final network: {video_dir}/")
    return final


def main(argv=None):
    args = parse_args(argv)
    if args.capture_video:
        try:  # pygame draws classic-control frames, imageio-ffmpeg writes them
            import imageio_ffmpeg, pygame  # noqa: F401,E401
        except ImportError:
            fail("--capture-video needs pygame and moviepy: pip install -r requirements.txt")
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # no screen needed
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)  # a small MLP does not gain from more threads (benchmarks/)
    try:
        env = make_env(args.env_id)
        n_obs, n_actions = env.observation_space.shape[0], env.action_space.n
        q_network = QNetwork(n_obs, n_actions, args.hidden_dim).to(device)
        if args.eval_model:
            env.close()
            load_model(q_network, args.eval_model)
    except ValueError as e:
        fail(e)
    except (MemoryError, RuntimeError):  # torch cannot allocate the layers
        fail(f"--hidden-dim {args.hidden_dim} does not fit in memory")
    eval_seeds = [episode_seed(args.seed, episode) for episode in range(args.eval_episodes)]
    if args.eval_model:
        run_folder = os.path.basename(os.path.dirname(os.path.abspath(args.eval_model)))
        video_dir = f"videos/{run_folder}-eval" if args.capture_video else None
        returns = evaluate(q_network, args.env_id, eval_seeds, device, video_dir=video_dir)
        print(f"result: {returns.mean():.1f} ± {returns.std():.1f} over {len(returns)} "
              f"greedy episodes: {args.eval_model}")
        if video_dir:
            print(f"video:  {video_dir}/")
        return returns
    try:
        return train_and_report(args, env, q_network, device, eval_seeds)
    except MemoryError:  # numpy's allocation of the replay buffer
        fail(f"--buffer-size {args.buffer_size} does not fit in memory")
    except OSError as e:  # no space left, no permission: which file and why
        print(f"error: cannot write {e.filename or 'runs/'}: {e.strerror or e}",
              file=sys.stderr)
        sys.exit(1)
    except FloatingPointError as e:  # a NaN or infinite loss
        print(f"error: {e}; stopping the run", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # the logs and models written by then stay
        saved = ", the model is saved" if args.save_model else ""
        print(f"interrupted (Ctrl-C): logs are complete up to here{saved}", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
