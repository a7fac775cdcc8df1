"""Prioritized replay (Schaul et al. 2016, proportional): DQN that replays the transitions it got most wrong more often.

Mnih et al. 2015, "Human-level control through deep reinforcement learning" (Nature 518), Algorithm 1,
on an environment with a vector observation and a discrete action space (CartPole-v1 by default).
Lecture 03, Parts 3-5, builds the same agent step by step (Part 6 the variants). Its names, in this file:

    lecture                                  this file
    SimpleDQN(state_dim, n_actions)          QNetwork(obs_dim, n_actions, hidden_dim)
    PrioritizedReplayBuffer.push(...)        PrioritizedReplayBuffer.add(obs, actions, rewards, next_obs, terminated)
    state, next_state                        obs, next_obs (one row per env)
    done = terminated or truncated           terminated: only a real end stops bootstrapping
    DQNAgent.select_action                   the epsilon-greedy lines at the top of train()'s loop
    decay_epsilon (x 0.995 per episode)      linear_schedule (per env step)
    DQNAgent.update                          compute_td_target and the gradient step in train()
    target_network.load_state_dict(...)      update_target_network

Every other DQN in this collection is dqn_cartpole.py plus one idea: `diff dqn_cartpole.py double_dqn.py`.
Example commands: --help.
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
import warnings
from collections import deque

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SCRIPT = os.path.basename(__file__)
EXAMPLES = f"""examples:
  python {SCRIPT} --seed 1
  python {SCRIPT} --env-id Acrobot-v1 --total-timesteps 200000
  python {SCRIPT} --eval-model runs/<run>/{SCRIPT[:-3]}.pt                # a saved model, with its run's settings
  python {SCRIPT} --eval-model runs/<run>/{SCRIPT[:-3]}.pt --capture-video  # watch it: videos/<run>-eval/
"""


# ----------------------------------------------------------------------------------------- flags
def parse_args(argv=None):
    p = ArgumentParser(description=__doc__.split("\n")[0], epilog=EXAMPLES, formatter_class=HelpFormatter,
                       allow_abbrev=False)
    algorithm = p.add_argument_group("algorithm")
    algorithm.add_argument("--env-id", default="CartPole-v1", help="any env with a Box observation and Discrete actions")
    algorithm.add_argument("--total-timesteps", type=int, default=50_000, help="environment steps, summed over envs")
    algorithm.add_argument("--num-envs", type=int, default=1, help="environments stepped side by side")
    algorithm.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's step size (the lecture: 1e-4)")
    algorithm.add_argument("--anneal-lr", action=argparse.BooleanOptionalAction, default=False,
                           help="decay the learning rate linearly to 0 at the end of the run (Nature: constant)")
    algorithm.add_argument("--anneal-lr-start", type=float, default=0.0,
                           help="with --anneal-lr: the fraction of the run before the decay starts")
    algorithm.add_argument("--adam-eps", type=float, default=1e-4, help="Adam's epsilon (PyTorch's default: 1e-8)")
    algorithm.add_argument("--buffer-size", type=int, default=100_000, help="replay memory, in transitions")
    algorithm.add_argument("--batch-size", type=int, default=128, help="transitions per gradient step (the lecture: 64)")
    algorithm.add_argument("--gamma", type=float, default=0.99, help="discount factor")
    algorithm.add_argument("--tau", type=float, default=1.0, help="target update rate: 1 = hard copy, <1 = Polyak")
    algorithm.add_argument("--target-network-frequency", type=int, default=50,
                           help="env steps between target updates (the lecture: 1000 gradient steps)")
    algorithm.add_argument("--train-frequency", type=int, default=2,
                           help="env steps between gradient steps (Nature's 4; the lecture: every step)")
    algorithm.add_argument("--learning-starts", type=int, default=500, help="env steps before the first gradient step")
    algorithm.add_argument("--start-e", type=float, default=1.0, help="epsilon at the start")
    algorithm.add_argument("--end-e", type=float, default=0.01, help="epsilon after the decay (Nature's 0.1; the lecture: 0.01)")
    algorithm.add_argument("--exploration-fraction", type=float, default=0.1, help="fraction of the run epsilon decays over")
    algorithm.add_argument("--hidden-dim", type=int, default=64, help="units in each of the two hidden layers (the lecture: 128)")
    algorithm.add_argument("--loss", choices=["mse", "huber"], default="mse",
                           help="the lecture's squared error, or Huber (Nature's clipped error)")
    algorithm.add_argument("--prioritized-replay-alpha", type=float, default=0.6, help="how much priorities count: 0 = uniform")
    algorithm.add_argument("--prioritized-replay-beta", type=float, default=0.4, help="IS-weight exponent, annealed to 1")
    algorithm.add_argument("--prioritized-replay-eps", type=float, default=1e-6, help="added to |TD error|: no priority is 0")
    algorithm.add_argument("--max-grad-norm", type=float, default=10.0, help="clip the gradient's norm (the lecture's 10)")
    run = p.add_argument_group("run and logs")
    run.add_argument("--seed", type=int, default=1, help="seeds the envs, the network and the replay sampling")
    run.add_argument("--exp-name", default=SCRIPT[: -len(".py")], help="names the run folder runs/<env>__<exp-name>__<seed>__<time>")
    run.add_argument("--save-model", action=argparse.BooleanOptionalAction, default=True,
                     help="save the final network (and the kept model) in the run folder")
    run.add_argument("--probe-states", type=int, default=1_000,
                     help="states of a random policy on which train.csv follows mean and max Q, to see overestimation (0: off)")
    run.add_argument("--cuda", action="store_true", help="use a GPU when there is one")
    run.add_argument("--torch-deterministic", action=argparse.BooleanOptionalAction, default=True,
                     help="cudnn.deterministic on a GPU (the CPU is always deterministic)")
    evaluation = p.add_argument_group("evaluation")
    evaluation.add_argument("--eval-episodes", type=int, default=10, help="greedy episodes that score the final models")
    evaluation.add_argument("--check-frequency", type=int, default=5_000,
                            help="env steps between greedy checks that keep the best model so far (0: keep the last)")
    evaluation.add_argument("--check-episodes", type=int, default=10, help="episodes per check, seeded apart from the eval's")
    evaluation.add_argument("--eval-model", metavar="PATH",
                            help="evaluate a saved model and exit, with the settings in the args.json beside it")
    evaluation.add_argument("--capture-video", action="store_true",
                            help="record the final network's evaluation episodes to videos/<run_name>/")
    args = p.parse_args(argv)
    if args.eval_model:  # the run that saved the model gives the defaults; flags typed here still win
        p.set_defaults(**saved_run_args(args.eval_model, known=vars(args)))
        args = p.parse_args(argv)
    check_args(args)
    return args


# ----------------------------------------------------------------------------------------- environment
def make_envs(args):
    if args.env_id.startswith("ALE/") or "NoFrameskip" in args.env_id:
        fail(f"--env-id {args.env_id} is an Atari game: use dqn_atari.py")
    try:
        env = gym.make(args.env_id)  # one env first: its spaces and sizes are checked before --num-envs are built
    except gym.error.DependencyNotInstalled as e:
        fail(f"--env-id {args.env_id} needs a package that is not installed: {str(e).splitlines()[0]}")
    except gym.error.Error as e:
        fail(f"cannot make --env-id {args.env_id}: {e}")
    if not isinstance(env.action_space, gym.spaces.Discrete):
        fail(f"{args.env_id} has a {type(env.action_space).__name__} action space; DQN needs Discrete")
    if not (isinstance(env.observation_space, gym.spaces.Box) and len(env.observation_space.shape) == 1):
        fail(f"{args.env_id} needs a flat Box observation space (a vector of numbers), got {env.observation_space}")
    check_memory(args, env.observation_space.shape[0], env.action_space.n)
    env.close()
    # SAME_STEP autoreset: the step that ends an episode already returns the next episode's first
    # observation, and the true last observation of the old one comes in info["final_obs"].
    return gym.vector.SyncVectorEnv([lambda: gym.make(args.env_id) for _ in range(args.num_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def random_streams(seed):
    """The agent's random stream and the training envs' seed, independent of each other, from one --seed.

    np.random.default_rng(s) and an env reset with seed=s would be one and the same PCG64 stream (gymnasium seeds
    with SeedSequence(s) too), so exploration would replay the env's own noise. SeedSequence(s).spawn gives
    children whose streams are independent: one for the agent (exploration, replay sampling), one that seeds the
    envs, one for the probe states. The env seed has 31 bits, so env i's seed (+ i) stays below the evaluation's
    seeds, which start at 2**32 (episode_seed).
    """
    agent, envs, probe = np.random.SeedSequence(seed).spawn(3)
    return np.random.default_rng(agent), int(envs.generate_state(1)[0] >> 1), np.random.default_rng(probe)


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
    """A preallocated ring of numpy arrays: row i is one transition (s, a, r, s', terminated).

    Writing overwrites the oldest rows once full; sampling is uniform over the rows written so far.
    """

    def __init__(self, capacity, obs_dim, rng):
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.pos, self.size, self.rng = capacity, 0, 0, rng

    @staticmethod
    def bytes_needed(capacity, obs_dim):
        return capacity * (2 * 4 * obs_dim + 8 + 4 + 4)  # obs and next_obs (float32), action, reward, terminated

    def add(self, obs, actions, rewards, next_obs, terminated):
        """Store one transition per env; the arguments hold one row per env."""
        rows = (self.pos + np.arange(len(obs))) % self.capacity
        self.obs[rows], self.actions[rows], self.rewards[rows] = obs, actions, rewards
        self.next_obs[rows], self.terminated[rows] = next_obs, terminated
        self.pos = (self.pos + len(obs)) % self.capacity
        self.size = min(self.size + len(obs), self.capacity)

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

    @staticmethod
    def bytes_needed(capacity, obs_dim):  # the ring, and the sum tree's float64 nodes: two per leaf
        return ReplayBuffer.bytes_needed(capacity, obs_dim) + 8 * 2 * (1 << (capacity - 1).bit_length())

    def add(self, obs, actions, rewards, next_obs, terminated):
        rows = (self.pos + np.arange(len(obs))) % self.capacity
        super().add(obs, actions, rewards, next_obs, terminated)
        self.tree.update(rows, np.full(len(rows), self.max_priority))

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


def due(global_step, num_envs, frequency):
    """How many multiples of `frequency` fall among this vector step's env steps, global_step .. global_step +
    num_envs - 1: so --train-frequency and --target-network-frequency count env steps, whatever --num-envs."""
    return (global_step + num_envs - 1) // frequency - (global_step - 1) // frequency


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
    """θ⁻ ← τ θ + (1 − τ) θ⁻: Algorithm 1's copy θ⁻ = θ every C steps at τ = 1, Polyak averaging below 1."""
    for target_param, param in zip(target_network.parameters(), q_network.parameters()):
        target_param.data.copy_(tau * param.data + (1 - tau) * target_param.data)


# ----------------------------------------------------------------------------------------- training loop
def train(args, envs, q_network, device, logs, best):
    rng, env_seed, probe_rng = random_streams(args.seed)
    n_actions = envs.single_action_space.n
    target_network = copy.deepcopy(q_network)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, eps=args.adam_eps, fused=True)
    rb = PrioritizedReplayBuffer(args.buffer_size, envs.single_observation_space.shape[0], rng,
                                 args.prioritized_replay_alpha, args.prioritized_replay_eps)
    loss_fn = F.mse_loss if args.loss == "mse" else F.smooth_l1_loss

    probe_obs = torch.from_numpy(probe_states(args.env_id, args.seed, args.probe_states, probe_rng)).to(device)
    obs, _ = envs.reset(seed=env_seed)  # env i gets env_seed + i
    episode_returns, episode_lengths = np.zeros(args.num_envs), np.zeros(args.num_envs, dtype=int)
    recent_returns = deque(maxlen=20)
    start_time = time.time()
    num_iterations = math.ceil(args.total_timesteps / args.num_envs)  # a last, partly extra step: none dropped
    for iteration in range(num_iterations):
        global_step = iteration * args.num_envs
        # Epsilon-greedy acting (Algorithm 1): a random action with probability epsilon, else argmax_a Q(s, a).
        epsilon = linear_schedule(args.start_e, args.end_e, args.exploration_fraction * args.total_timesteps, global_step)
        random_actions = rng.integers(0, n_actions, size=args.num_envs)
        explore = rng.random(args.num_envs) < epsilon
        if explore.all():
            actions = random_actions
        else:
            with torch.inference_mode():
                q_values = q_network(torch.as_tensor(obs, dtype=torch.float32, device=device))  # float64 envs too
            actions = np.where(explore, random_actions, q_values.argmax(dim=1).cpu().numpy())

        next_obs, rewards, terminations, truncations, infos = envs.step(actions)

        # The transition's s' is the observation that ended the episode, not the reset that follows it,
        # so no stored transition ever crosses an episode boundary.
        real_next_obs = next_obs.copy()
        if "_final_obs" in infos:
            for i in np.flatnonzero(infos["_final_obs"]):
                real_next_obs[i] = infos["final_obs"][i]
        # Store `terminated`, not `terminated or truncated` (the lecture's `done`): a time-limit truncation
        # (CartPole's 500 steps) is not a terminal state of the MDP, so its target must still bootstrap.
        rb.add(obs, actions, rewards, real_next_obs, terminations)
        obs = next_obs

        episode_returns += rewards
        episode_lengths += 1
        for i in np.flatnonzero(terminations | truncations):
            logs.episode(global_step + i + 1, episode_returns[i], episode_lengths[i], epsilon)
            recent_returns.append(episode_returns[i])
            episode_returns[i], episode_lengths[i] = 0, 0

        if global_step >= args.learning_starts:
            for _ in range(due(global_step, args.num_envs, args.train_frequency)):
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
            for _ in range(due(global_step, args.num_envs, args.target_network_frequency)):
                update_target_network(target_network, q_network, args.tau)

        steps_done = global_step + args.num_envs
        if args.check_frequency and (due(global_step + 1, args.num_envs, args.check_frequency) or iteration == num_iterations - 1):
            best.check(q_network, steps_done, logs)  # every --check-frequency steps, and the last model competes too
        logs.progress(steps_done, epsilon, recent_returns, start_time)
        if Stopped.signum:  # Ctrl-C or SIGTERM during this step: stop here, between two steps
            raise Stopped


# ----------------------------------------------------------------------------------------- evaluation
def episode_seed(seed, episode, check_step=None):
    """The env seed of greedy episode `episode`. Training seed s owns [(s + 1) * 2**32, (s + 2) * 2**32): the final
    evaluation its first half, the checks (offset by their step) the second. So no two training seeds, and no check
    and the evaluation, share a start, and training itself (seeds below 2**32) shares none with either."""
    block = (seed + 1) * 2**32
    return block + episode if check_step is None else block + 2**31 + check_step + episode


def evaluate(q_network, env_id, seeds, device, max_episode_steps=None, video_dir=None):
    """Greedy policy argmax_a Q(s, a), no exploration: one episode per env seed in `seeds`.

    The episodes run side by side, so one forward pass picks the actions of all those still going.
    """
    envs = [make_eval_env(env_id, max_episode_steps, video_dir, i) for i in range(len(seeds))]
    try:
        obs = np.stack([env.reset(seed=seed)[0] for seed, env in zip(seeds, envs)])
        returns, running = np.zeros(len(seeds)), np.ones(len(seeds), dtype=bool)
        while running.any():
            with torch.inference_mode():
                actions = q_network(torch.as_tensor(obs, dtype=torch.float32, device=device)).argmax(dim=1).cpu().numpy()
            for i in np.flatnonzero(running):
                obs[i], reward, terminated, truncated, _ = envs[i].step(actions[i])
                returns[i] += reward
                running[i] = not (terminated or truncated)
    finally:
        for env in envs:
            env.close()
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
    """Keeps the weights that scored best on greedy check episodes during training (like SB3's EvalCallback).

    DQN on CartPole can fall back late in training (measured here: the cart drifts off the track after
    200-450 steps), and where the run stops in that cycle is luck. A drifting policy often still reaches
    the 500-step limit, so a check plays each episode for twice the env's time limit, long enough for the
    drift to show. The check episodes are seeded apart from the final evaluation's, so the kept model is
    chosen on other episodes than the ones it is scored on, and the final model is always scored beside it.
    """

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


# ----------------------------------------------------------------------------------------- plumbing
# Argument checks, the video recorder, logs, model files and main(): what runs the lesson above.

class ArgumentParser(argparse.ArgumentParser):
    """argparse's own complaints (an unknown flag, "abc" for a number) end in one `error:` line too."""

    def error(self, message):
        fail(message)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows every flag's default, and the example commands as they are written."""


def fail(message):
    """Bad input ends the run with one line and exit code 2, as argparse does, never with a traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_args(args):
    for name, value in vars(args).items():
        if isinstance(value, float) and not math.isfinite(value):
            fail(f"--{name.replace('_', '-')} must be a finite number, got {value}")
    positive = ["total_timesteps", "num_envs", "learning_rate", "adam_eps", "buffer_size", "batch_size",
                "target_network_frequency", "train_frequency", "hidden_dim", "max_grad_norm", "eval_episodes",
                "check_episodes", "prioritized_replay_eps"]
    for name in positive:
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if not 0 <= args.anneal_lr_start < 1:
        fail(f"--anneal-lr-start must be in [0, 1), got {args.anneal_lr_start}")
    for name in ["learning_starts", "check_frequency", "probe_states"]:
        if getattr(args, name) < 0:
            fail(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if not 0 <= args.seed < 2**32:
        fail(f"--seed must be in [0, 2**32 - 1] (numpy's seeding range), got {args.seed}")
    if args.total_timesteps < args.num_envs:
        fail(f"--total-timesteps ({args.total_timesteps}) must be at least --num-envs ({args.num_envs})")
    if args.total_timesteps >= 2**31:
        fail(f"--total-timesteps must be below 2**31, got {args.total_timesteps}")
    if args.batch_size > args.buffer_size:
        fail(f"--batch-size ({args.batch_size}) cannot exceed --buffer-size ({args.buffer_size})")
    for name in ["gamma", "start_e", "end_e", "prioritized_replay_alpha", "prioritized_replay_beta"]:
        if not 0 <= getattr(args, name) <= 1:
            fail(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(args, name)}")
    for name in ["tau", "exploration_fraction"]:
        if not 0 < getattr(args, name) <= 1:
            fail(f"--{name.replace('_', '-')} must be in (0, 1], got {getattr(args, name)}")
    if args.total_timesteps % args.num_envs and not args.eval_model:
        steps = math.ceil(args.total_timesteps / args.num_envs) * args.num_envs
        print(f"note: --total-timesteps {args.total_timesteps} is not a multiple of --num-envs {args.num_envs}; "
              f"running {steps} steps", file=sys.stderr)


def memory_needed(args, obs_dim, n_actions):
    """Bytes the run will hold, by the size flag that asks for them, from the shapes alone (nothing is allocated)."""
    with torch.device("meta"):  # the network's parameter count at this width, without its weights
        params = sum(p.numel() for p in QNetwork(obs_dim, n_actions, args.hidden_dim).parameters())
    env_bytes = 4_000  # one classic-control env (CartPole measured: about 2.5 KB)
    return {"buffer_size": PrioritizedReplayBuffer.bytes_needed(args.buffer_size, obs_dim),
            "hidden_dim": 7 * 4 * params,  # online, target, gradient, Adam's two moments, kept and final weights
            "batch_size": 4 * args.batch_size * (2 * obs_dim + 8 * args.hidden_dim),  # a batch and its activations
            "num_envs": env_bytes * args.num_envs, "eval_episodes": env_bytes * args.eval_episodes,
            "check_episodes": env_bytes * args.check_episodes, "probe_states": (4 * obs_dim + 128) * args.probe_states}


def check_memory(args, obs_dim, n_actions):
    """Refuse at once a size that cannot fit in memory (not after minutes of allocating, nor by the OOM killer),
    naming the flag and the largest value of it that would fit beside the rest."""
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return  # not Linux: no cheap way to ask
    need = memory_needed(args, obs_dim, n_actions)
    if sum(need.values()) <= available:
        return
    flag = max(need, key=need.get)
    low, high = 0, getattr(args, flag)  # bisect for the largest value that fits
    while low < high:
        middle = (low + high + 1) // 2
        if sum(memory_needed(argparse.Namespace(**{**vars(args), flag: middle}), obs_dim, n_actions).values()) <= available:
            low = middle
        else:
            high = middle - 1
    fail(f"--{flag.replace('_', '-')} {getattr(args, flag)} needs {need[flag] / 1e9:,.1f} GB of memory but "
         f"{available / 1e9:.1f} GB is available" + (f"; at most {low:,} fits" if low else ""))


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
    return {name: value for name, value in saved.items() if name in known and name not in ("eval_model", "capture_video")}


def make_eval_env(env_id, max_episode_steps, video_dir, index):
    """One evaluation env; with a video folder, an mp4 of its episode is written there (pygame draws, moviepy writes)."""
    if video_dir is None:
        return gym.make(env_id, max_episode_steps=max_episode_steps)  # None: the env's own time limit
    try:
        import moviepy  # noqa: F401  (RecordVideo writes mp4 files with it)
        import pygame  # noqa: F401  (classic-control envs draw their frames with it)
    except ImportError:
        fail("--capture-video needs pygame and moviepy: pip install -r requirements.txt")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # no screen needed
    env = gym.make(env_id, max_episode_steps=max_episode_steps, render_mode="rgb_array")
    with warnings.catch_warnings():  # one folder for all the episodes: not a mistake, so not a warning
        warnings.simplefilter("ignore")
        return RecordVideo(env, video_dir, name_prefix=f"eval-{index}", disable_logger=True)


class RecordVideo(gym.wrappers.RecordVideo):
    """gymnasium's recorder, at the env's own frame rate (CartPole: 50 fps) with every frame. Its moviepy writer
    counts the frames as duration x fps in floating point and drops the last one of some lengths (n / 50 x 50 can
    fall just below n), so the mp4 is written with imageio-ffmpeg (it comes with moviepy), frame by frame."""

    def stop_recording(self):
        import imageio_ffmpeg
        if self.recorded_frames:
            height, width = self.recorded_frames[0].shape[:2]
            path = os.path.join(self.video_folder, f"{self._video_name}.mp4")
            writer = imageio_ffmpeg.write_frames(path, (width, height), fps=self.frames_per_sec, macro_block_size=1)
            writer.send(None)  # starts ffmpeg
            for frame in self.recorded_frames:
                writer.send(np.ascontiguousarray(frame))
            writer.close()
        self.recorded_frames, self.recording, self._video_name = [], False, None


class Logs:
    """runs/<run_name>/: args.json, episodes.csv, train.csv, checks.csv, eval.json; progress lines on stdout.

    The CSV files are line-buffered: every row is on disk when written, so a run can be plotted while it goes.
    The same numbers go to TensorBoard event files under CleanRL's tags: `tensorboard --logdir runs`.
    """

    def __init__(self, run_dir, args, train_log_every=1_000):
        from torch.utils.tensorboard import SummaryWriter  # imported here: only a training run writes events
        with open(os.path.join(run_dir, "args.json"), "w") as f:
            json.dump({**vars(args), "script": SCRIPT}, f, indent=2)
        self.writer = SummaryWriter(run_dir)
        self.writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(
            f"|{name}|{value}|" for name, value in vars(args).items()))
        self.files = {name: open(os.path.join(run_dir, f"{name}.csv"), "w", newline="", buffering=1)
                      for name in ["episodes", "train", "checks"]}
        self.episodes_csv, self.train_csv, self.checks_csv = (csv.writer(f) for f in self.files.values())
        self.episodes_csv.writerow(["global_step", "episodic_return", "episodic_length", "epsilon", "elapsed_s"])
        self.train_csv.writerow(["global_step", "loss", "q_values", "sps", "probe_q_mean", "probe_q_max"])
        self.checks_csv.writerow(["global_step", "score", "kept", "elapsed_s"])
        self.total = math.ceil(args.total_timesteps / args.num_envs) * args.num_envs
        self.print_every = min(10_000, math.ceil(self.total / 10))  # every 10% of the run, every 10,000 steps
        self.train_log_every, self.next_train_log, self.next_print = train_log_every, 0, self.print_every
        self.start_time = time.time()

    def episode(self, global_step, episodic_return, episodic_length, epsilon):
        self.episodes_csv.writerow([global_step, episodic_return, episodic_length, round(epsilon, 4),
                                    round(time.time() - self.start_time, 2)])
        for tag, value in [("episodic_return", episodic_return), ("episodic_length", episodic_length), ("epsilon", epsilon)]:
            self.writer.add_scalar(f"charts/{tag}", value, global_step)

    def train_step(self, global_step, loss, q_taken, q_network, probe_obs):
        if global_step >= self.next_train_log:  # .item() syncs, so only on the steps we log
            sps = global_step / max(time.time() - self.start_time, 1e-9)
            with torch.inference_mode():
                probe_q = q_network(probe_obs) if len(probe_obs) else torch.full((1,), float("nan"))
            row = [global_step, loss.item(), q_taken.mean().item(), int(sps), probe_q.mean().item(), probe_q.max().item()]
            self.train_csv.writerow(row)
            for tag, value in zip(["losses/td_loss", "losses/q_values", "charts/SPS", "charts/probe_q_mean",
                                   "charts/probe_q_max"], row[1:]):
                self.writer.add_scalar(tag, value, global_step)
            self.next_train_log = global_step + self.train_log_every

    def check(self, global_step, score, episodes, kept):
        self.checks_csv.writerow([global_step, score, int(kept), round(time.time() - self.start_time, 2)])
        self.writer.add_scalar("charts/check_score", score, global_step)
        print(f"check  step {global_step:>8}: {score:7.1f} over {episodes} greedy episodes" + ("  (kept)" if kept else ""),
              flush=True)

    def progress(self, global_step, epsilon, recent_returns, start_time):
        if global_step >= self.next_print or global_step >= self.total:
            elapsed = time.time() - start_time
            sps = global_step / max(elapsed, 1e-9)
            eta = (self.total - global_step) / max(sps, 1e-9)
            mean_return = f"{np.mean(recent_returns):7.1f}" if recent_returns else "      -"
            print(f"step {global_step:>8}/{self.total} | {sps:6.0f} SPS | ETA {eta:5.0f}s | "
                  f"return (last {len(recent_returns)}) {mean_return} | epsilon {epsilon:.3f}", flush=True)
            self.next_print = global_step + self.print_every

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


def print_summary(run_dir, args, eval_result, best):
    """The end of a run: the headline number and what it is, the files written, how to look again."""
    model_file = os.path.join(run_dir, f"{args.exp_name}.pt")
    script = os.path.relpath(__file__)  # so the commands below run as printed from where this run started
    plot = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks", "plot_results.py"))
    print(f"result: {eval_result['final_mean']:.1f} ± {eval_result['final_std']:.1f} over {args.eval_episodes} greedy "
          "episodes: the final network")
    if "kept_mean" in eval_result:  # the best greedy check: a model chosen by its score, so reported beside
        print(f"        the kept model (step {best.step}, {best.score:.1f} on {args.check_episodes} check episodes): "
              f"{eval_result['kept_mean']:.1f} ± {eval_result['kept_std']:.1f} on the same episodes")
    print(f"files:  {run_dir}/ ({', '.join(sorted(os.listdir(run_dir)))})")
    print(f"plot:   python {plot} {run_dir}")
    if args.save_model:
        print(f"again:  python {script} --eval-model {model_file}")
        print(f"video:  python {script} --eval-model {model_file} --capture-video")


class Stopped(Exception):
    """Ctrl-C (SIGINT: exit 130) or a scheduler's SIGTERM (SLURM at a time limit or a preemption: exit 143)."""
    signum, training = None, False


def on_signal(signum, frame):
    """While training, note the signal: train() stops after the step. An exception raised wherever the signal lands
    could cut a TensorBoard write in half and leave its writer thread waiting forever (seen here under load)."""
    Stopped.signum = signum
    if not Stopped.training:
        raise Stopped


def stop_reason(stop):
    signum = getattr(stop, "signum", None) or signal.SIGINT  # a KeyboardInterrupt before the handlers are set
    return 128 + signum, "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted (Ctrl-C)"


def new_run_dir(run_name):
    """Makes runs/<run_name>/ and returns its name; a run started in the same second under the same name (the tasks
    of an array job) gets runs/<run_name>_2/, _3, ..., never another run's folder."""
    name, copies = run_name, 1
    while True:
        try:
            os.makedirs(os.path.join("runs", name))
            return name
        except FileExistsError:
            copies += 1
            name = f"{run_name}_{copies}"


def save_file(write, path):
    """Writes aside, then renames: a full disk or a kill mid-write never leaves a damaged file under `path`."""
    tmp_path = "{}.tmp{}".format(*os.path.splitext(path))  # q_table.tmp.npy: np.save adds .npy to other names
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def write_json(obj, path):
    def write(tmp_path):
        with open(tmp_path, "w") as f:
            json.dump(obj, f, indent=2, allow_nan=False)
    save_file(write, path)


def train_and_report(args, envs, q_network, device, eval_seeds, run_name):
    run_dir = os.path.join("runs", run_name)
    try:
        logs = Logs(run_dir, args)
        best = BestModel(q_network, args.env_id, args.check_episodes, args.seed, device)
        print(f"run {run_name}: logs in {run_dir}/")
        stop, Stopped.training = None, True
        try:
            train(args, envs, q_network, device, logs, best)
        except (KeyboardInterrupt, Stopped) as e:
            stop = e
        finally:
            Stopped.training = False
            logs.close()
    finally:
        envs.close()

    # The run reports its final network (the online weights after the last gradient step), as CleanRL and SB3 do;
    # the model the checks kept (the last model competes too) is saved and scored beside it.
    final_weights = copy.deepcopy(q_network.state_dict())
    kept = args.check_frequency and best.step
    if args.save_model:
        save_file(lambda path: torch.save(final_weights, path), os.path.join(run_dir, f"{args.exp_name}.pt"))
        if kept:
            save_file(lambda path: torch.save(best.weights, path), os.path.join(run_dir, f"{args.exp_name}_kept.pt"))
    if stop is not None:
        code, what = stop_reason(stop)
        print(f"{what}: logs are complete up to here" + (", the model is saved" if args.save_model else ""), file=sys.stderr)
        sys.exit(code)

    # The same evaluation episodes score the final network and, beside it, the model the checks kept.
    video_dir = f"videos/{run_name}" if args.capture_video else None
    final_returns = evaluate(q_network, args.env_id, eval_seeds, device, video_dir=video_dir)
    result = {"final_returns": final_returns.tolist(), "final_mean": final_returns.mean(), "final_std": final_returns.std()}
    if kept:
        q_network.load_state_dict(best.weights)
        kept_returns = evaluate(q_network, args.env_id, eval_seeds, device)
        result.update(kept_returns=kept_returns.tolist(), kept_mean=kept_returns.mean(), kept_std=kept_returns.std(),
                      kept_step=best.step, kept_check_score=best.score)
        q_network.load_state_dict(final_weights)
    write_json(result, os.path.join(run_dir, "eval.json"))
    print_summary(run_dir, args, result, best)
    if video_dir:
        print(f"        videos of the final network: {video_dir}/")
    return final_returns


def main(argv=None):
    args = parse_args(argv)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    if args.cuda and not torch.cuda.is_available():
        print("note: --cuda given but no GPU is available; running on the CPU", file=sys.stderr)
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)  # a small MLP does not gain from more threads (benchmarks/)

    envs = make_envs(args)
    q_network = QNetwork(envs.single_observation_space.shape[0], envs.single_action_space.n, args.hidden_dim).to(device)
    eval_seeds = [episode_seed(args.seed, episode) for episode in range(args.eval_episodes)]
    if args.eval_model:
        envs.close()
        load_model(q_network, args.eval_model)
        q_network.to(device)
        video_dir = f"videos/{os.path.basename(os.path.dirname(os.path.abspath(args.eval_model)))}-eval"
        returns = evaluate(q_network, args.env_id, eval_seeds, device, video_dir=video_dir if args.capture_video else None)
        print(f"result: {returns.mean():.1f} ± {returns.std():.1f} over {len(returns)} greedy episodes: {args.eval_model}")
        if args.capture_video:
            print(f"video:  {video_dir}/")
        return returns

    Stopped.signum = None  # a scheduler's stop ends the run as Ctrl-C does; the handlers are put back at the end
    handlers = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    try:
        run_name = new_run_dir(run_name)
        return train_and_report(args, envs, q_network, device, eval_seeds, run_name)
    except OSError as e:  # no space left, no permission: which file and why; what was written stays as it is
        envs.close()
        print(f"error: cannot write {e.filename or f'runs/{run_name}/'}: {e.strerror or e}", file=sys.stderr)
        sys.exit(1)
    except (KeyboardInterrupt, Stopped) as stop:  # during the final evaluation: the logs and models are written
        code, what = stop_reason(stop)
        print(f"{what} during the final evaluation: logs and models are saved, eval.json is not", file=sys.stderr)
        sys.exit(code)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    main()
