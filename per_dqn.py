"""Prioritized replay (Schaul et al. 2016, proportional): DQN that replays the transitions it got most wrong more often.

Mnih et al. 2015, "Human-level control through deep reinforcement learning" (Nature 518), Algorithm 1,
on an environment with a vector observation and a discrete action space (CartPole-v1 by default).
Lecture 03, Parts 3-5, builds the same agent step by step (Part 6 the variants). Its names, in this file:

    lecture                                  this file
    SimpleDQN(state_dim, n_actions)          QNetwork(obs_dim, n_actions, hidden_dim)
    PrioritizedReplayBuffer.push(...)        PrioritizedReplayBuffer.add(obs, action, reward, next_obs, terminated)
    state, next_state                        obs, next_obs
    done = terminated or truncated           terminated: only a real end stops bootstrapping
    DQNAgent.select_action                   the epsilon-greedy lines at the top of train()'s loop
    decay_epsilon (x 0.995 per episode)      linear_schedule (per env step)
    DQNAgent.update                          compute_td_target and the gradient step in train()
    target_network.load_state_dict(...)      update_target_network

Every other DQN in this collection is dqn_cartpole.py plus one idea: `diff dqn_cartpole.py double_dqn.py`.
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
import time
from collections import deque

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SCRIPT = os.path.basename(__file__)


# ----------------------------------------------------------------------------------------- network
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


# ----------------------------------------------------------------------------------------- replay buffer
class ReplayBuffer:
    """A ring of preallocated numpy arrays, row i one transition (s, a, r, s', terminated): a new row overwrites the
    oldest once full, and sampling is uniform over the rows written so far."""

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
        batch = (self.obs[rows], self.actions[rows], self.rewards[rows], self.next_obs[rows], self.terminated[rows])
        return [torch.from_numpy(x).to(device) for x in batch]


class SumTree:
    """Priorities at the leaves of a binary tree in one numpy array, every inner node the sum of its two children.

    Node 1 is the root (the total), node i has children 2i and 2i + 1, and leaf j is node `first_leaf + j`. The leaf
    count is a power of two, so all leaves lie in order at one depth; those beyond the capacity stay 0. Finding a
    prefix sum or updating a leaf walks one root-leaf path, O(log n), done for a whole batch at once.
    """

    def __init__(self, capacity):
        self.first_leaf = 1 << (capacity - 1).bit_length()  # the least power of two >= capacity
        self.depth = self.first_leaf.bit_length() - 1
        self.nodes = np.zeros(2 * self.first_leaf)  # float64: a float32 total drifts over millions of updates

    @property
    def total(self):
        return self.nodes[1]

    def priorities(self, leaves):
        return self.nodes[self.first_leaf + leaves]

    def update(self, leaves, priorities):
        """Set the leaves' priorities (of duplicate leaves, the last), then re-sum every ancestor, level by level."""
        last = len(leaves) - 1 - np.unique(leaves[::-1], return_index=True)[1]
        nodes = self.first_leaf + leaves[last]
        self.nodes[nodes] = priorities[last]
        for _ in range(self.depth):
            nodes //= 2
            # Re-sum the children instead of adding the change: a node that two leaves share then gets the same
            # right value twice, and rounding errors cannot pile up.
            self.nodes[nodes] = self.nodes[2 * nodes] + self.nodes[2 * nodes + 1]

    def find_prefix_sum(self, values):
        """For each v in [0, total), the leaf j with p_0 + ... + p_{j-1} <= v < p_0 + ... + p_j: never a leaf of 0."""
        nodes, values = np.ones(len(values), dtype=np.int64), np.array(values, dtype=np.float64)
        for _ in range(self.depth):
            left_sums = self.nodes[2 * nodes]
            go_right = values >= left_sums
            values -= np.where(go_right, left_sums, 0.0)
            nodes = 2 * nodes + go_right
        return nodes - self.first_leaf


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay, Schaul et al. 2016, Algorithm 1, on the same ring of transitions.

    Transition i is sampled with probability P(i) = p_i^α / Σ_k p_k^α (Eq. (1)), p_i = |δ_i| + ε, and its update
    is weighted by w_i = (N · P(i))^-β / max_j w_j (Section 3.4, max over the batch), undoing the sampling bias.
    The lecture's version keeps priorities in a list (O(n) per sample) and needs a TD error at insertion; here a
    sum tree (O(log n)) holds p_i^α, and a new transition enters at the highest priority so far (line 6), which
    has it replayed soon without computing its error first.
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
        weights /= weights.max()  # normalised by the batch's largest weight: updates are only ever scaled down
        batch = (self.obs[rows], self.actions[rows], self.rewards[rows], self.next_obs[rows], self.terminated[rows])
        return [torch.from_numpy(x).to(device) for x in batch] + [rows, torch.from_numpy(weights).float().to(device)]

    def update_priorities(self, rows, td_errors):
        """Algorithm 1, line 12: p_i = |δ_i| + ε; ε > 0 so that a transition with zero error still comes back."""
        priorities = (np.abs(td_errors) + self.eps) ** self.alpha
        self.tree.update(rows, priorities)
        self.max_priority = max(self.max_priority, priorities.max())


# ----------------------------------------------------------------------------------------- schedules
def linear_schedule(start_e, end_e, duration, t):
    """Epsilon falls linearly from start_e to end_e over `duration` steps, then stays at end_e."""
    return max(end_e, start_e + (end_e - start_e) * t / duration)


def learning_rate_at(args, global_step):
    """--anneal-lr: constant for the first --anneal-lr-start of the run, then linearly down to 0 at its end."""
    decay_start = args.anneal_lr_start * args.total_timesteps
    if global_step < decay_start:
        return args.learning_rate
    return args.learning_rate * (1 - (global_step - decay_start) / (args.total_timesteps - decay_start))


# ----------------------------------------------------------------------------------------- TD target
def compute_td_target(target_network, rewards, next_obs, terminated, gamma):
    """TD target of Mnih et al. 2015, Eq. (2): y = r + γ max_a' Q(s', a'; θ⁻), or y = r when s' is terminal.

    Only termination zeroes the bootstrap term. A time-limit truncation was stored with terminated = 0:
    the pole was still up, so the return would have gone on and the target must bootstrap.
    """
    with torch.no_grad():
        next_q_max = target_network(next_obs).max(dim=1).values
    return rewards + gamma * (1 - terminated) * next_q_max


def update_target_network(target_network, q_network, tau):
    """θ⁻ ← τ θ + (1 − τ) θ⁻: at τ = 1 Algorithm 1's copy θ⁻ = θ every C steps, below 1 Polyak averaging."""
    for target_param, param in zip(target_network.parameters(), q_network.parameters()):
        target_param.data.copy_(tau * param.data + (1 - tau) * target_param.data)


# ----------------------------------------------------------------------------------------- training loop
def train(args, env, q_network, device, logs, best):
    rng, env_seed, probe_rng = random_streams(args.seed)
    target_network = copy.deepcopy(q_network)
    # fused: Adam's update of every parameter in one kernel, the same numbers, fewer small operations
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, eps=args.adam_eps, fused=True)
    rb = PrioritizedReplayBuffer(args.buffer_size, env.observation_space.shape[0], rng,
                                 args.prioritized_replay_alpha, args.prioritized_replay_eps)
    loss_fn = F.mse_loss if args.loss == "mse" else F.smooth_l1_loss
    probe_obs = torch.from_numpy(probe_states(args.env_id, args.seed, args.probe_states, probe_rng)).to(device)

    obs, _ = env.reset(seed=env_seed)
    episode_return, episode_length, recent_returns = 0.0, 0, deque(maxlen=20)
    for global_step in range(args.total_timesteps):
        # Epsilon-greedy (Algorithm 1): with probability epsilon a random action, else argmax_a Q(s, a).
        exploration_steps = args.exploration_fraction * args.total_timesteps
        epsilon = linear_schedule(args.start_e, args.end_e, exploration_steps, global_step)
        random_action = rng.integers(env.action_space.n)  # drawn on every step: the same stream whatever Q says
        if rng.random() < epsilon:
            action = random_action
        else:
            with torch.no_grad():  # a batch of one state (float64 envs too)
                q_values = q_network(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0))
            action = q_values.argmax(dim=1).item()

        next_obs, reward, terminated, truncated, _ = env.step(action)
        # Store `terminated`, not `terminated or truncated` (the lecture's `done`): a time-limit truncation
        # (CartPole's 500 steps) is not a terminal state of the MDP, so its target must still bootstrap.
        rb.add(obs, action, reward, next_obs, terminated)
        obs = next_obs
        episode_return, episode_length = episode_return + reward, episode_length + 1
        if terminated or truncated:  # the next episode starts here: no stored transition crosses the boundary
            logs.episode(global_step + 1, episode_return, episode_length, epsilon)
            recent_returns.append(episode_return)
            obs, _ = env.reset()
            episode_return, episode_length = 0.0, 0

        if global_step >= args.learning_starts and global_step % args.train_frequency == 0:
            if args.anneal_lr:
                optimizer.param_groups[0]["lr"] = learning_rate_at(args, global_step)
            # β rises linearly to 1: the bias matters most near the end, when the estimates should converge.
            beta = 1 - (1 - args.prioritized_replay_beta) * (1 - global_step / args.total_timesteps)
            *batch, rows, is_weights = rb.sample(args.batch_size, device, beta)
            obs_b, actions_b, rewards_b, next_obs_b, terminated_b = batch
            td_target = compute_td_target(target_network, rewards_b, next_obs_b, terminated_b, args.gamma)
            q_taken = q_network(obs_b).gather(1, actions_b.unsqueeze(1)).squeeze(1)  # Q(s, a; θ)
            # Algorithm 1, line 13: each transition's loss (squared, or Huber) weighted by its w_i
            loss = (is_weights * loss_fn(q_taken, td_target, reduction="none")).mean()
            if not torch.isfinite(loss):
                logs.fault(f"loss became {loss.item()} at global step {global_step}; stopping the run")
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(q_network.parameters(), args.max_grad_norm)
            optimizer.step()
            rb.update_priorities(rows, (td_target - q_taken.detach()).cpu().numpy())  # with the δ_i of this update
            logs.train_step(global_step, loss, q_taken, q_network, probe_obs)

        # Target network θ⁻ (Algorithm 1: reset to θ every C steps); --tau < 1 blends instead (Polyak).
        if global_step >= args.learning_starts and global_step % args.target_network_frequency == 0:
            update_target_network(target_network, q_network, args.tau)

        steps_done = global_step + 1
        if args.check_frequency and (steps_done % args.check_frequency == 0 or steps_done == args.total_timesteps):
            best.check(q_network, steps_done, logs)  # every --check-frequency steps, and the last model competes too
        logs.progress(steps_done, epsilon, recent_returns)
        if Stopped.signum:  # Ctrl-C or SIGTERM during this step (plumbing): stop here, between two steps
            raise Stopped


# ----------------------------------------------------------------------------------------- evaluation
def episode_seed(seed, episode, check_step=None):
    """The env seed of greedy episode `episode`. Training seed s owns [(s + 1) * 2**32, (s + 2) * 2**32): the final
    evaluation its first half, the checks (offset by their step) the second. So no two training seeds, and no check
    and the evaluation, share a start, and training itself (seeds below 2**32) shares none with either."""
    block = (seed + 1) * 2**32
    return block + episode if check_step is None else block + 2**31 + check_step + episode


def evaluate(q_network, env_id, seeds, device, max_episode_steps=None, video_dir=None):
    """Greedy policy argmax_a Q(s, a), no exploration: one episode per env seed in `seeds`, side by side (one
    forward pass picks the actions of all those still going); with `video_dir`, an mp4 of each episode."""
    envs = [gym.make(env_id, max_episode_steps=max_episode_steps, render_mode="rgb_array" if video_dir else None)
            for _ in seeds]
    try:
        obs = np.stack([env.reset(seed=seed)[0] for seed, env in zip(seeds, envs)])
        frames = [[env.render()] if video_dir else [] for env in envs]
        returns, running = np.zeros(len(seeds)), np.ones(len(seeds), dtype=bool)
        while running.any():
            with torch.no_grad():
                q_values = q_network(torch.as_tensor(obs, dtype=torch.float32, device=device))
            actions = q_values.argmax(dim=1).cpu().numpy()
            for i in np.flatnonzero(running):
                obs[i], reward, terminated, truncated, _ = envs[i].step(actions[i])
                returns[i] += reward
                running[i] = not (terminated or truncated)
                frames[i] += [envs[i].render()] if video_dir else []
    finally:
        for env in envs:
            env.close()
    if video_dir:
        write_videos(frames, video_dir, envs[0].metadata.get("render_fps", 30))
    return returns


def probe_states(env_id, seed, count, rng):
    """`count` states that a uniformly random policy visits, from envs and a generator `rng` of their own (training's
    random stream is untouched, so the probe changes no training number). Q on them, logged in train.csv, shows whether
    the estimates rise above what any return can be (on CartPole 1/(1 - γ) = 100: every reward is 1)."""
    env, states, episode = gym.make(env_id), [], 0
    while len(states) < count:
        obs, _ = env.reset(seed=episode_seed(seed, episode))  # the evaluation's starts, then random actions
        done, episode = False, episode + 1
        while not done and len(states) < count:
            states.append(obs)
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            done = terminated or truncated
    env.close()
    return np.array(states, dtype=np.float32).reshape(count, *env.observation_space.shape)


class BestModel:
    """Keeps the weights that scored best on greedy check episodes (like SB3's EvalCallback), reported beside the
    final network. A check plays twice the env's time limit: a policy whose cart drifts off the track after 200-450
    steps often still reaches CartPole's 500. Its episodes are seeded apart from the final evaluation's."""

    def __init__(self, q_network, env_id, episodes, seed, device):
        self.env_id, self.episodes, self.seed, self.device = env_id, episodes, seed, device
        time_limit = gym.spec(env_id).max_episode_steps
        self.max_episode_steps = 2 * time_limit if time_limit else None
        self.score, self.step, self.weights = -np.inf, 0, copy.deepcopy(q_network.state_dict())

    def check(self, q_network, global_step, logs):
        seeds = [episode_seed(self.seed, episode, check_step=global_step) for episode in range(self.episodes)]
        score = evaluate(q_network, self.env_id, seeds, self.device, self.max_episode_steps).mean()
        kept = score >= self.score  # a tie goes to the later model, which has trained longer
        if kept:
            self.score, self.step, self.weights = score, global_step, copy.deepcopy(q_network.state_dict())
        logs.check(global_step, score, self.episodes, kept)


# ========================================================================================= plumbing
# What runs the lesson above: flags and their checks, seeds, logs, model files, signals and main().

def parse_args(argv=None):
    p = ArgumentParser(description=__doc__.split("\n")[0], formatter_class=HelpFormatter, allow_abbrev=False,
                       epilog=f"examples:\n  python {SCRIPT} --seed 1\n  python {SCRIPT} --env-id Acrobot-v1\n"
                              f"  python {SCRIPT} --eval-model runs/<run>/{SCRIPT[:-3]}.pt --capture-video")
    positive_int, count, positive = number(int, 0), number(int, 0, low_in=True), number(float, 0)
    probability, fraction = number(float, 0, 1, low_in=True), number(float, 0, 1)
    g = p.add_argument_group("algorithm")
    g.add_argument("--env-id", default="CartPole-v1", help="any env with a flat Box observation and Discrete actions")
    g.add_argument("--total-timesteps", type=number(int, 0, 2**31, high_in=False), default=50_000, help="env steps")
    g.add_argument("--learning-rate", type=positive, default=1e-3, help="Adam's step size (the lecture: 1e-4)")
    g.add_argument("--anneal-lr", action=argparse.BooleanOptionalAction, default=False,
                   help="decay the learning rate linearly to 0 at the end of the run (Nature: constant)")
    g.add_argument("--anneal-lr-start", type=number(float, 0, 1, low_in=True, high_in=False), default=0.0,
                   help="with --anneal-lr: the fraction of the run before the decay starts")
    g.add_argument("--adam-eps", type=positive, default=1e-4, help="Adam's epsilon (PyTorch's default: 1e-8)")
    g.add_argument("--buffer-size", type=positive_int, default=100_000, help="replay memory, in transitions")
    g.add_argument("--batch-size", type=positive_int, default=128, help="transitions per gradient step (lecture: 64)")
    g.add_argument("--gamma", type=probability, default=0.99, help="discount factor")
    g.add_argument("--tau", type=fraction, default=1.0, help="target update rate: 1 = a hard copy, < 1 = Polyak")
    g.add_argument("--target-network-frequency", type=positive_int, default=100,
                   help="env steps between target updates (the lecture: 1000 gradient steps)")
    g.add_argument("--train-frequency", type=positive_int, default=1,
                   help="env steps between gradient steps (Nature's 4; the lecture: every step)")
    g.add_argument("--learning-starts", type=count, default=500, help="env steps before the first gradient step")
    g.add_argument("--start-e", type=probability, default=1.0, help="epsilon at the start")
    g.add_argument("--end-e", type=probability, default=0.01, help="epsilon after the decay (Nature: 0.1)")
    g.add_argument("--exploration-fraction", type=fraction, default=0.1, help="fraction of the run epsilon decays over")
    g.add_argument("--hidden-dim", type=positive_int, default=64, help="units in each hidden layer (the lecture: 128)")
    g.add_argument("--loss", choices=["mse", "huber"], default="mse", help="the lecture's squared error, or Huber")
    g.add_argument("--max-grad-norm", type=positive, default=10.0, help="clip the gradient's norm (the lecture: 10)")
    g.add_argument("--prioritized-replay-alpha", type=probability, default=0.6, help="priorities' weight: 0 = uniform")
    g.add_argument("--prioritized-replay-beta", type=probability, default=0.4, help="IS-weight exponent, annealed to 1")
    g.add_argument("--prioritized-replay-eps", type=positive, default=1e-6, help="added to |TD error|: no priority 0")
    g = p.add_argument_group("run and logs")
    g.add_argument("--seed", type=number(int, 0, 2**32, low_in=True, high_in=False), default=1, help="seeds it all")
    g.add_argument("--exp-name", default=SCRIPT[:-3], help="the run folder: runs/<env>__<exp-name>__<seed>__<time>")
    g.add_argument("--save-model", action=argparse.BooleanOptionalAction, default=True,
                   help="save the final network (and the kept model) in the run folder")
    g.add_argument("--probe-states", type=count, default=1_000, help="random-policy states whose Q train.csv follows")
    g.add_argument("--cuda", action="store_true", help="use a GPU when there is one")
    g.add_argument("--torch-deterministic", action=argparse.BooleanOptionalAction, default=True,
                   help="cudnn.deterministic on a GPU (the CPU is always deterministic)")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-episodes", type=positive_int, default=10, help="greedy episodes that score the models")
    g.add_argument("--check-frequency", type=count, default=5_000, help="env steps between greedy checks (0: none)")
    g.add_argument("--check-episodes", type=positive_int, default=10, help="episodes per check, seeded apart")
    g.add_argument("--eval-model", metavar="PATH", help="evaluate a saved model with its run's settings, and exit")
    g.add_argument("--capture-video", action="store_true", help="mp4s of the evaluation episodes in videos/<run>/")
    args = p.parse_args(argv)
    if args.eval_model:  # the run that saved the model gives the defaults; flags typed here still win
        p.set_defaults(**saved_run_args(args.eval_model, known=vars(args)))
        args = p.parse_args(argv)
    if args.batch_size > args.buffer_size:
        fail(f"--batch-size ({args.batch_size}) cannot exceed --buffer-size ({args.buffer_size})")
    return args


def number(kind, low, high=math.inf, low_in=False, high_in=True):
    """An argparse type: a finite int or float above `low` (or at it: low_in) and up to `high` (not at it: high_in)."""
    def parse(text):
        value = kind(text)  # a ValueError here is argparse's "invalid int value"
        if not (math.isfinite(value) and (low <= value if low_in else low < value)
                and (value <= high if high_in else value < high)):
            ends = "([" [low_in] + f"{low}, {high}" + ")]"[high_in] if high < math.inf else f">{'=' * low_in} {low}"
            raise argparse.ArgumentTypeError(f"must be a finite number {'in ' * (high < math.inf)}{ends}, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own complaints (an unknown flag, "abc" for a number): one line too
        fail(message)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows every flag's default, and the example commands as they are written."""


def fail(message):  # bad input: one line and exit code 2, as argparse does, never a traceback
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def random_streams(seed):
    """From one --seed, three independent streams (SeedSequence.spawn): the agent's (exploration, replay sampling),
    the training env's seed (31 bits: below the evaluation's, see episode_seed) and the probe's. Had they been
    default_rng(s) and reset(seed=s), they would be one stream: exploration would replay the env's own noise."""
    agent, env, probe = np.random.SeedSequence(seed).spawn(3)
    return np.random.default_rng(agent), int(env.generate_state(1)[0] >> 1), np.random.default_rng(probe)


def make_env(args):
    if args.env_id.startswith("ALE/") or "NoFrameskip" in args.env_id:
        fail(f"--env-id {args.env_id} is an Atari game: use dqn_atari.py")
    try:
        env = gym.make(args.env_id)
    except gym.error.DependencyNotInstalled as e:
        fail(f"--env-id {args.env_id} needs a package that is not installed: {str(e).splitlines()[0]}")
    except gym.error.Error as e:
        fail(f"cannot make --env-id {args.env_id}: {e}")
    if not isinstance(env.action_space, gym.spaces.Discrete):
        fail(f"{args.env_id} has a {type(env.action_space).__name__} action space; DQN needs Discrete")
    if not (isinstance(env.observation_space, gym.spaces.Box) and len(env.observation_space.shape) == 1):
        fail(f"{args.env_id} needs a flat Box observation space (a vector of numbers), got {env.observation_space}")
    check_memory(args, memory_needed(args, env.observation_space.shape[0], env.action_space.n))
    return env


def memory_needed(args, obs_dim, n_actions):
    """Bytes the run will hold, by the flag that asks for them, from the shapes alone (nothing is allocated)."""
    with torch.device("meta"):  # the network's parameter count at this width, without its weights
        params = sum(p.numel() for p in QNetwork(obs_dim, n_actions, args.hidden_dim).parameters())
    sum_tree = 8 * 2 * (1 << (args.buffer_size - 1).bit_length())  # float64 nodes, two per leaf
    return {"buffer-size": args.buffer_size * (2 * 4 * obs_dim + 8 + 4 + 4) + sum_tree,  # five arrays, the tree
            "hidden-dim": 7 * 4 * params,  # online, target, gradient, Adam's two moments, kept and final weights
            "batch-size": 4 * args.batch_size * (2 * obs_dim + 8 * args.hidden_dim),  # a batch and its activations
            "eval-episodes": 4_000 * args.eval_episodes, "check-episodes": 4_000 * args.check_episodes,  # an env each
            "probe-states": (4 * obs_dim + 128) * args.probe_states}


def check_memory(args, need):
    """Refuse at once a size that cannot fit in memory (not after minutes of allocating), naming its flag."""
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return  # not Linux: no cheap way to ask
    if sum(need.values()) > available:
        flag = max(need, key=need.get)
        fail(f"--{flag} {getattr(args, flag.replace('-', '_'))} needs {need[flag] / 1e9:,.1f} GB of memory but "
             f"{available / 1e9:.1f} GB is available")


def saved_run_args(model_path, known):
    """The settings of the run that saved `model_path`, from the args.json beside it ({} if there is none)."""
    path = os.path.join(os.path.dirname(model_path), "args.json")
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            saved = json.load(f)
        script = saved.get("script", SCRIPT)
    except (OSError, ValueError, AttributeError):
        fail(f"cannot read {path}, the settings of the run that saved {model_path}")
    if script != SCRIPT:
        fail(f"{model_path} was saved by {script}; evaluate it with that script")
    return {name: value for name, value in saved.items() if name in known and name not in ("eval_model",
                                                                                              "capture_video")}


def write_videos(frames, video_dir, fps):
    """One mp4 per episode at the env's own frame rate (CartPole: 50 fps), every frame: pygame draws them,
    imageio-ffmpeg (it comes with moviepy) writes them."""
    import imageio_ffmpeg
    os.makedirs(video_dir, exist_ok=True)
    for i, episode in enumerate(frames):
        height, width = episode[0].shape[:2]
        writer = imageio_ffmpeg.write_frames(os.path.join(video_dir, f"episode-{i:03d}.mp4"), (width, height), fps=fps,
                                             macro_block_size=1)
        writer.send(None)  # starts ffmpeg
        for frame in episode:
            writer.send(np.ascontiguousarray(frame))
        writer.close()


class Logs:
    """runs/<run>/: args.json; episodes.csv, train.csv, checks.csv (line-buffered: a run can be plotted while it goes);
    the same numbers as TensorBoard events under CleanRL's tags (`tensorboard --logdir runs`); progress on stdout."""

    COLUMNS = {"episodes": {"episodic_return": "charts/episodic_return", "episodic_length": "charts/episodic_length",
                            "epsilon": "charts/epsilon", "elapsed_s": None},
               "train": {"loss": "losses/td_loss", "q_values": "losses/q_values", "sps": "charts/SPS",
                         "probe_q_mean": "charts/probe_q_mean", "probe_q_max": "charts/probe_q_max"},
               "checks": {"score": "charts/check_score", "kept": None, "elapsed_s": None}}  # CSV column: its tag

    def __init__(self, run_dir, args, train_log_every=1_000):
        from torch.utils.tensorboard import SummaryWriter  # imported here: only a training run writes events
        with open(os.path.join(run_dir, "args.json"), "w") as f:
            json.dump({**vars(args), "script": SCRIPT}, f, indent=2)
        self.files = {name: open(os.path.join(run_dir, f"{name}.csv"), "w", newline="", buffering=1)
                      for name in self.COLUMNS}
        self.csv = {name: csv.writer(self.files[name]) for name in self.COLUMNS}
        for name, columns in self.COLUMNS.items():
            self.csv[name].writerow(["global_step", *columns])
        self.writer = SummaryWriter(run_dir)
        self.total, self.print_every = args.total_timesteps, min(10_000, math.ceil(args.total_timesteps / 10))
        self.train_log_every, self.next_train_log, self.next_print = train_log_every, 0, self.print_every
        self.start_time = time.time()

    def row(self, name, global_step, *values):
        self.csv[name].writerow([global_step, *values])
        for tag, value in zip(self.COLUMNS[name].values(), values):
            if tag:
                self.writer.add_scalar(tag, value, global_step)

    def episode(self, global_step, episodic_return, episodic_length, epsilon):
        self.row("episodes", global_step, episodic_return, episodic_length, round(epsilon, 4), self.elapsed()[0])

    def train_step(self, global_step, loss, q_taken, q_network, probe_obs):
        if global_step >= self.next_train_log:  # .item() syncs, so only on the steps we log
            with torch.no_grad():
                probe_q = q_network(probe_obs) if len(probe_obs) else torch.full((1,), float("nan"))
            self.row("train", global_step, loss.item(), q_taken.mean().item(), int(self.elapsed(global_step)[1]),
                     probe_q.mean().item(), probe_q.max().item())
            self.next_train_log = global_step + self.train_log_every

    def check(self, global_step, score, episodes, kept):
        self.row("checks", global_step, score, int(kept), self.elapsed()[0])
        kept_mark = "  (kept)" if kept else ""
        print(f"check  step {global_step:>8}: {score:7.1f} over {episodes} greedy episodes{kept_mark}", flush=True)

    def progress(self, global_step, epsilon, recent_returns):
        if global_step >= self.next_print or global_step >= self.total:
            sps = self.elapsed(global_step)[1]
            mean_return = f"{np.mean(recent_returns):7.1f}" if recent_returns else "      -"
            print(f"step {global_step:>8}/{self.total} | {sps:6.0f} SPS | ETA {(self.total - global_step) / sps:5.0f}s "
                  f"| return (last {len(recent_returns)}) {mean_return} | epsilon {epsilon:.3f}", flush=True)
            self.next_print = global_step + self.print_every

    def elapsed(self, global_step=0):
        """Seconds since the start (rounded, for the CSVs), and env steps per second (SPS) at `global_step`."""
        seconds = time.time() - self.start_time
        return round(seconds, 2), global_step / max(seconds, 1e-9)

    def fault(self, message):
        self.close()
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)

    def close(self):
        for f in [*self.files.values(), self.writer]:
            try:
                f.close()
            except OSError:  # a full disk: the rows already written stay as they are
                pass


def load_model(q_network, path):
    """Weights saved by this script, or one line that says why not (never torch's advice to unpickle)."""
    if not os.path.exists(path):
        fail(f"model file not found: {path}")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # empty, truncated, or not a torch file at all
        fail(f"{path} is not a saved model of {SCRIPT} (torch.load cannot read it)")
    expected = q_network.state_dict()
    if not isinstance(state_dict, dict) or set(state_dict) != set(expected):
        fail(f"{path} is not a saved model of {SCRIPT} (its layers are not this network's)")
    for name, tensor in expected.items():
        if state_dict[name].shape != tensor.shape:
            fail(f"{path} does not fit this network: {name} is {list(state_dict[name].shape)} in the file and "
                 f"{list(tensor.shape)} here (check --env-id and --hidden-dim)")
    q_network.load_state_dict(state_dict)


class Stopped(Exception):
    """Ctrl-C (SIGINT: exit 130) or a scheduler's SIGTERM (SLURM at a time limit or a preemption: exit 143)."""
    signum, training = None, False


def on_signal(signum, frame):
    """While training, note the signal: train() stops after the step. An exception raised wherever the signal lands
    could cut a TensorBoard write in half and leave its writer thread waiting forever (seen here under load)."""
    Stopped.signum = signum
    if not Stopped.training:
        raise Stopped


def new_run_dir(run_name):
    """Makes runs/<run_name>/ and returns its name; a run started in the same second under the same name (the tasks
    of an array job) gets runs/<run_name>_2/, _3, ..., never another run's folder."""
    for name in [run_name, *(f"{run_name}_{copies}" for copies in range(2, 10_000))]:
        try:
            os.makedirs(os.path.join("runs", name))
            return name
        except FileExistsError:
            pass


def save_file(path, obj):
    """Writes aside, then renames: a full disk or a kill mid-write never leaves a damaged file under `path`."""
    tmp_path = "{}.tmp{}".format(*os.path.splitext(path))
    try:
        if path.endswith(".json"):
            with open(tmp_path, "w") as f:
                json.dump(obj, f, indent=2, allow_nan=False)
        else:
            torch.save(obj, tmp_path)
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def train_and_report(args, env, q_network, device, eval_seeds, run_name):
    run_dir, stop = os.path.join("runs", run_name), None
    best = BestModel(q_network, args.env_id, args.check_episodes, args.seed, device)
    try:
        logs = Logs(run_dir, args)
        print(f"run {run_name}: logs in {run_dir}/")
        try:
            Stopped.training = True
            train(args, env, q_network, device, logs, best)
        except (KeyboardInterrupt, Stopped) as signalled:  # the models are saved first, then main() says so
            stop = signalled
        finally:
            Stopped.training = False
            logs.close()
    finally:
        env.close()

    # The run reports its final network (the online weights after the last gradient step), as CleanRL and SB3
    # do; the model the checks kept (the last model competes too) is saved and scored beside it.
    final_weights, kept = copy.deepcopy(q_network.state_dict()), bool(args.check_frequency and best.step)
    model_file = os.path.join(run_dir, f"{args.exp_name}.pt")
    if args.save_model:
        save_file(model_file, final_weights)
        if kept:
            save_file(os.path.join(run_dir, f"{args.exp_name}_kept.pt"), best.weights)
    if stop is not None:
        raise stop
    video_dir = f"videos/{run_name}" if args.capture_video else None
    final_returns = evaluate(q_network, args.env_id, eval_seeds, device, video_dir=video_dir)
    result = {"final_returns": final_returns.tolist(), "final_mean": final_returns.mean(),
              "final_std": final_returns.std()}
    if kept:  # the same evaluation episodes score the model the checks kept
        q_network.load_state_dict(best.weights)
        kept_returns = evaluate(q_network, args.env_id, eval_seeds, device)
        result.update(kept_returns=kept_returns.tolist(), kept_mean=kept_returns.mean(), kept_std=kept_returns.std(),
                      kept_step=best.step, kept_check_score=best.score)
        q_network.load_state_dict(final_weights)
    save_file(os.path.join(run_dir, "eval.json"), result)

    script = os.path.relpath(__file__)  # the commands below run as printed from where this run started
    plot = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks", "plot_results.py"))
    print(f"result: {result['final_mean']:.1f} ± {result['final_std']:.1f} over {args.eval_episodes} greedy "
          "episodes: the final network")
    if kept:  # the best greedy check: a model chosen by its score, so reported beside
        print(f"        the kept model (step {best.step}, {best.score:.1f} on {args.check_episodes} check episodes): "
              f"{result['kept_mean']:.1f} ± {result['kept_std']:.1f} on the same episodes")
    print(f"files:  {run_dir}/ ({', '.join(sorted(os.listdir(run_dir)))})")
    print(f"plot:   python {plot} {run_dir}")
    if args.save_model:
        print(f"again:  python {script} --eval-model {model_file}")
        print(f"video:  python {script} --eval-model {model_file} --capture-video")
    if video_dir:
        print(f"        videos of the final network: {video_dir}/")
    return final_returns


def main(argv=None):
    args = parse_args(argv)
    if args.capture_video:
        try:
            import imageio_ffmpeg, pygame  # noqa: F401,E401  (pygame draws classic-control frames, imageio writes)
        except ImportError:
            fail("--capture-video needs pygame and moviepy: pip install -r requirements.txt")
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # no screen needed
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    if args.cuda and not torch.cuda.is_available():
        print("note: --cuda given but no GPU is available; running on the CPU", file=sys.stderr)
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)  # a small MLP does not gain from more threads (benchmarks/)

    env = make_env(args)
    q_network = QNetwork(env.observation_space.shape[0], env.action_space.n, args.hidden_dim).to(device)
    eval_seeds = [episode_seed(args.seed, episode) for episode in range(args.eval_episodes)]
    if args.eval_model:
        env.close()
        load_model(q_network, args.eval_model)
        q_network.to(device)
        run_folder = os.path.basename(os.path.dirname(os.path.abspath(args.eval_model)))
        video_dir = f"videos/{run_folder}-eval" if args.capture_video else None
        returns = evaluate(q_network, args.env_id, eval_seeds, device, video_dir=video_dir)
        print(f"result: {returns.mean():.1f} ± {returns.std():.1f} over {len(returns)} greedy episodes: "
              f"{args.eval_model}")
        if args.capture_video:
            print(f"video:  {video_dir}/")
        return returns

    Stopped.signum = None  # a scheduler's stop ends the run as Ctrl-C does; the handlers are put back at the end
    handlers = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    try:
        run_name = new_run_dir(run_name)
        return train_and_report(args, env, q_network, device, eval_seeds, run_name)
    except OSError as e:  # no space left, no permission: which file and why; what was written stays as it is
        env.close()
        print(f"error: cannot write {e.filename or f'runs/{run_name}/'}: {e.strerror or e}", file=sys.stderr)
        sys.exit(1)
    except (KeyboardInterrupt, Stopped):  # one way out for both signals, the logs and models written by then
        signum = Stopped.signum or signal.SIGINT  # a KeyboardInterrupt: Ctrl-C
        what = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted (Ctrl-C)"
        saved = ", the model is saved" if args.save_model else ""
        print(f"{what}: logs are complete up to here{saved}", file=sys.stderr)
        sys.exit(128 + signum)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    main()
