"""DQN on Atari: the Nature agent, with a 1M-transition replay memory that fits in 8 GB.

Mnih et al. 2015, "Human-level control through deep reinforcement learning" (Nature 518), Algorithm 1,
with the paper's preprocessing (84x84 grayscale, 4 stacked frames, frame skip 4 with max-pooling, up to
30 no-op starts, a life loss ends the training episode, rewards clipped to their sign) done in C++ by
ale-py's AtariVectorEnv, and the paper's network. Defaults are CleanRL's 10M-step settings.
This is dqn_cartpole.py with an image network and a replay buffer that stores each frame once.

    python dqn_atari.py --env-id BreakoutNoFrameskip-v4 --cuda                     # 10M steps, a GPU
    python dqn_atari.py --total-timesteps 250000 --buffer-size 100000 \\
        --learning-starts 10000 --exploration-fraction 0.4                        # a CPU-sized run (README)
    python dqn_atari.py --eval-model runs/<run_name>/dqn_atari.pt --capture-video  # watch a saved model
    python dqn_atari.py --resume runs/<run_name>          # go on from its last checkpoint (after a kill, SIGTERM)

Lecture 03's names (its DQN code, Parts 3-5) and this file's:
  DQN (the Atari network)            QNetwork
  ReplayBuffer.push(state, ...)      ReplayBuffer.add(obs, ...), one transition per env, each frame stored once
  state, next_state                  obs, next_obs (a stack of 4 frames)
  done = terminated or truncated     terminated (a time-limit truncation is not terminal: it bootstraps)
  agent.decay_epsilon()              linear_schedule(), linear over steps instead of a decay per episode
  agent.select_action()              the epsilon-greedy lines at the top of train()'s loop
  agent.update()                     the gradient step in train()'s loop, compute_td_target()
  target_update_freq                 --target-network-frequency, update_target_network()
"""
import argparse
import contextlib
import copy
import csv
import json
import math
import os
import pickle
import shutil
import signal
import sys
import threading
import time
from collections import deque

import ale_py
import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from ale_py.vector_env import AtariVectorEnv

gym.register_envs(ale_py)  # the ROMs ship inside ale-py: no separate download step
FRAME_SHAPE, STACK, SCRIPT = (84, 84), 4, os.path.basename(__file__)


# ----------------------------------------------------------------------------------------- environment
def make_envs(args, num_envs, training=True, **overrides):
    """The Nature preprocessing, in C++ (no opencv): 84x84 grayscale, 4 stacked frames, frame skip 4 with
    a max over the last two frames (Atari sprites flicker), up to 30 no-ops and FIRE on reset.

    The id only names the game: every id gets this same protocol, sticky actions off unless --sticky-actions
    (ALE/*-v5 ids would otherwise bring v5's 0.25). In training, `life_loss_info` marks a lost life
    `terminated` while the game and its frame stack go on (Nature); evaluation plays whole games.
    Rewards come back unclipped: the logs report the real score, the learner clips (Nature, Methods).
    SAME_STEP autoreset: the step that ends a game returns the next game's first observation, and the
    true last one comes in info["final_obs"] (only valid for the envs whose game ended).
    """
    kwargs = dict(num_threads=min(num_envs, default_threads()), noop_max=30, frameskip=4, maxpool=True,
                  repeat_action_probability=0.25 if args.sticky_actions else 0.0, use_fire_reset=True,
                  life_loss_info=training, episodic_life=False, reward_clipping=False,
                  autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    return AtariVectorEnv(atari_game(args.env_id), num_envs, **{**kwargs, **overrides})


def atari_game(env_id):
    """'BreakoutNoFrameskip-v4' or 'ALE/Breakout-v5' -> 'breakout', the ROM name AtariVectorEnv takes."""
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as e:
        fail(f"cannot make --env-id {env_id}: {e}")
    if "game" not in spec.kwargs:
        fail(f"--env-id {env_id} is not an Atari game (try BreakoutNoFrameskip-v4 or ALE/Pong-v5); "
             f"for an env with a vector observation such as {env_id}, use dqn_cartpole.py")
    return spec.kwargs["game"]


def game_over(terminations, truncations, lives, prev_lives):
    """Which envs started a new game on this step. A life loss is `terminated` with one life fewer; a game
    over resets the lives to the full count, and games without lives (Pong: always 0) only end by game over."""
    return truncations | (terminations & (lives >= prev_lives))


# ----------------------------------------------------------------------------------------- network
class QNetwork(nn.Module):
    """The Nature network (Mnih et al. 2015, Methods): three conv layers, 512 hidden units, one Q per action."""

    def __init__(self, n_actions, channels_last=True):
        super().__init__()
        self.channels_last = channels_last
        self.net = nn.Sequential(
            nn.Conv2d(STACK, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 512), nn.ReLU(),
            nn.Linear(512, n_actions),
        )
        if channels_last:  # the conv kernels' fast layout on a CPU (oneDNN): 1.2-1.3x a gradient step, same products
            self.to(memory_format=torch.channels_last)

    def forward(self, obs):
        if self.channels_last:  # reordered while still uint8: a quarter of the bytes of the float copy
            obs = obs.contiguous(memory_format=torch.channels_last)
        # obs stays uint8 until here, on the device: the one conversion to float (it keeps the layout)
        return self.net(obs.float() / 255.0)


# ----------------------------------------------------------------------------------------- replay buffer
class ReplayBuffer:
    """Stores each 84x84 frame once and rebuilds the 4-frame stacks of s and s' when sampling.

    One ring per env (capacity // num_envs slots each), Dopamine's layout: slot t holds the newest frame of
    the observation s_t and the action, clipped reward and `terminated` taken from it; s_{t+1}'s newest frame
    is in slot t+1. So the stack of s_t is the frames of slots t-3..t, with the frames from before the
    episode's first slot set to 0, exactly as AtariVectorEnv pads a reset stack. A lost life does not
    restart the stack (the env keeps it), a new game does. The last frame of a game (from final_obs) gets
    its own slot, which starts no transition, so a truncated game still has its true s'.
    1,000,000 transitions: 7.1 GB instead of 28 GB for whole stacks (56 GB with s' stored as well).
    """
    BYTES_PER_SLOT = FRAME_SHAPE[0] * FRAME_SHAPE[1] + 5  # a frame, action, reward and three flags

    def __init__(self, capacity, num_envs, rng):
        slots = capacity // num_envs
        self.frames = np.zeros((num_envs, slots, *FRAME_SHAPE), dtype=np.uint8)
        self.actions = np.zeros((num_envs, slots), dtype=np.uint8)  # at most 18 Atari actions
        self.rewards = np.zeros((num_envs, slots), dtype=np.int8)  # clipped to -1, 0, 1
        self.terminated = np.zeros((num_envs, slots), dtype=bool)
        self.first = np.zeros((num_envs, slots), dtype=bool)  # the first frame of an episode (a new game)
        self.valid = np.zeros((num_envs, slots), dtype=bool)  # a transition starts here: its s' is written
        self.slots, self.num_envs, self.rng = slots, num_envs, rng
        self.pos = np.zeros(num_envs, dtype=np.int64)  # the slot written next, per env
        self.size = np.zeros(num_envs, dtype=np.int64)

    def _write(self, env, frame, first):
        slot = self.pos[env]
        self.frames[env, slot], self.first[env, slot], self.valid[env, slot] = frame, first, False
        self.pos[env] = (slot + 1) % self.slots
        self.size[env] = min(self.size[env] + 1, self.slots)

    def add(self, obs, actions, rewards, next_obs, terminated, episode_start):
        """One transition per env. `episode_start[i]`: obs[i] is the first observation of a new game
        (nothing of it is stored yet); otherwise obs[i] is the next_obs of the env's previous call."""
        for i in range(self.num_envs):
            if episode_start[i]:
                self._write(i, obs[i, -1], first=True)
            slot = (self.pos[i] - 1) % self.slots  # the slot holding obs[i]'s newest frame
            self.actions[i, slot], self.rewards[i, slot] = actions[i], rewards[i]
            self.terminated[i, slot] = terminated[i]
            self._write(i, next_obs[i, -1], first=False)
            self.valid[i, slot] = True

    def _stacks(self, env, slot):
        """(B, 4, 84, 84) stacks ending at `slot`, oldest frame first, zero before an episode's start."""
        idx = (slot[:, None] + np.arange(-(STACK - 1), 1)) % self.slots
        stacks, first = self.frames[env[:, None], idx], self.first[env[:, None], idx]
        # frame k belongs to an earlier episode if a later frame of the stack (k+1..newest) starts one
        later_start = np.flip(np.cumsum(np.flip(first[:, 1:], axis=1), axis=1), axis=1) > 0
        stacks[:, :-1][later_start] = 0
        return stacks

    def sample_indices(self, batch_size):
        envs, slots = [], []
        while sum(map(len, envs)) < batch_size:  # rejection: uniform over the slots that start a transition
            env = self.rng.integers(0, self.num_envs, size=2 * batch_size)
            slot = (self.rng.random(2 * batch_size) * self.size[env]).astype(np.int64)
            # when a ring is full, the 3 oldest slots' stacks would reach back into frames just overwritten
            age = (slot - self.pos[env]) % self.slots
            keep = self.valid[env, slot] & ((self.size[env] < self.slots) | (age >= STACK - 1))
            envs.append(env[keep]), slots.append(slot[keep])
        return np.concatenate(envs)[:batch_size], np.concatenate(slots)[:batch_size]

    def sample(self, batch_size, device):
        env, slot = self.sample_indices(batch_size)
        obs, next_obs = self._stacks(env, slot), self._stacks(env, (slot + 1) % self.slots)
        batch = (obs, self.actions[env, slot].astype(np.int64), self.rewards[env, slot].astype(np.float32),
                 next_obs, self.terminated[env, slot].astype(np.float32))
        return [torch.from_numpy(x).to(device) for x in batch]  # frames go to the device as uint8


# ----------------------------------------------------------------------------------------- schedule
def linear_schedule(start_e, end_e, duration, t):
    """Epsilon falls linearly from start_e to end_e over `duration` steps, then stays at end_e."""
    return max(end_e, start_e + (end_e - start_e) * t / duration)


# ----------------------------------------------------------------------------------------- TD target
def compute_td_target(target_network, rewards, next_obs, terminated, gamma):
    """TD target of Mnih et al. 2015, Eq. (2): y = r + γ max_a' Q(s', a'; θ⁻), or y = r when s' is terminal.

    Terminal here means a lost life or a game over (Nature's training episodes). A time-limit truncation
    (108,000 frames) was stored with terminated = 0: the game would have gone on, so it bootstraps.
    """
    with torch.no_grad():
        next_q_max = target_network(next_obs).max(dim=1).values
    return rewards + gamma * (1 - terminated) * next_q_max


def td_loss(q_network, target_network, batch, gamma, loss_fn, bf16=False):
    """Eq. (3): the loss between Q(s, a; θ) and the TD target y on a sampled batch; returns it and Q(s, a; θ).
    With --bf16 the online network's forward pass (and so the backward) runs in bfloat16 under autocast (1.4x a
    gradient step on this CPU); the weights stay float32, the TD target and the loss are computed in float32."""
    obs_b, actions_b, rewards_b, next_obs_b, terminated_b = batch
    td_target = compute_td_target(target_network, rewards_b, next_obs_b, terminated_b, gamma)
    with torch.autocast(obs_b.device.type, dtype=torch.bfloat16, enabled=bf16):
        q_values = q_network(obs_b)
    q_taken = q_values.float().gather(1, actions_b.unsqueeze(1)).squeeze(1)  # Q(s, a; θ)
    return loss_fn(q_taken, td_target), q_taken  # (y - Q(s, a; θ))², or Huber with --loss huber


# ----------------------------------------------------------------------------------------- training loop
def due(global_step, num_envs, frequency):
    """How many multiples of `frequency` fall among this vector step's env steps global_step .. + num_envs - 1:
    so --train-frequency and --target-network-frequency count env steps summed over envs, whatever --num-envs."""
    return (global_step + num_envs - 1) // frequency - (global_step - 1) // frequency


def update_target_network(target_network, q_network, tau):
    """θ⁻ <- τ θ + (1 - τ) θ⁻: with τ = 1 the hard copy of Algorithm 1, with τ < 1 Polyak averaging."""
    for target_param, param in zip(target_network.parameters(), q_network.parameters()):
        target_param.data.copy_(tau * param.data + (1 - tau) * target_param.data)


def train(args, envs, q_network, device, logs, checkpoint=None):
    """Algorithm 1 for --total-timesteps env steps; from a loaded `checkpoint` on (--resume), if one is given."""
    rng, env_seed, _ = random_streams(args.seed, args.num_envs)
    n_actions = envs.single_action_space.n
    target_network = copy.deepcopy(q_network)
    # fused=True: Adam's update as one kernel over all parameters (the same update; 1.1x the gradient step here)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, eps=args.adam_eps, fused=True)
    rb = ReplayBuffer(args.buffer_size, args.num_envs, rng)
    loss_fn = F.mse_loss if args.loss == "mse" else F.smooth_l1_loss
    recent_returns, start_step = deque(maxlen=20), 0
    if checkpoint is not None:  # the networks, Adam, every generator, the buffer and the step counter as they were
        start_step = checkpoint.restore(q_network, target_network, optimizer, rb, rng, recent_returns)
        _, env_seed, _ = random_streams(args.seed, args.num_envs, resumed_at=start_step)  # the games restart

    obs, infos = envs.reset(seed=env_seed)
    prev_lives, episode_start = infos["lives"], np.ones(args.num_envs, dtype=bool)
    resumed = np.full(args.num_envs, checkpoint is not None)  # each env's first game after a resume, marked in the log
    # a log episode is a whole game over all lives, with the real (unclipped) score papers report
    episode_returns, episode_lengths = np.zeros(args.num_envs), np.zeros(args.num_envs, dtype=int)
    global_step, losses_finite = start_step, torch.ones((), dtype=torch.bool, device=device)  # &= below: in place
    logs.losses_finite = losses_finite  # what a stop looks at before it saves the model
    num_iterations = args.total_timesteps // args.num_envs  # a whole number: parse_args rounds the budget up
    for iteration in range(start_step // args.num_envs, num_iterations):
        global_step = iteration * args.num_envs
        # Epsilon-greedy acting (Algorithm 1): a random action with probability epsilon, else argmax_a Q(s, a).
        decay_steps = args.exploration_fraction * args.total_timesteps
        epsilon = linear_schedule(args.start_e, args.end_e, decay_steps, global_step)
        random_actions = rng.integers(0, n_actions, size=args.num_envs)
        explore = rng.random(args.num_envs) < epsilon
        if explore.all():  # no forward pass when every env explores (most of the early steps)
            actions = random_actions
        else:
            with torch.inference_mode():
                q_values = q_network(torch.from_numpy(obs).to(device))
            actions = np.where(explore, random_actions, q_values.argmax(dim=1).cpu().numpy())

        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        new_game = game_over(terminations, truncations, infos["lives"], prev_lives)

        # After a game over next_obs is already the next game's first stack; s' is the true last one.
        # (On a lost life next_obs is the true s' and the stack goes on; final_obs is then not valid.)
        real_next_obs = next_obs.copy()
        for i in np.flatnonzero(new_game):
            real_next_obs[i] = infos["final_obs"][i]
        # Learn from the sign of the reward (Nature: one learning rate for all games); store `terminated`,
        # not `terminated or truncated`: the 108,000-frame limit is not a terminal state of the game.
        rb.add(obs, actions, np.sign(rewards), real_next_obs, terminations, episode_start)
        obs, prev_lives, episode_start = next_obs, infos["lives"], new_game

        episode_returns += rewards
        episode_lengths += 1
        for i in np.flatnonzero(new_game):
            logs.episode(global_step + i + 1, episode_returns[i], episode_lengths[i], epsilon, resumed[i])
            recent_returns.append(episode_returns[i])
            episode_returns[i], episode_lengths[i], resumed[i] = 0, 0, False

        if global_step >= args.learning_starts:
            # --train-frequency counts env steps summed over envs: one gradient step per multiple crossed
            for _ in range(due(global_step, args.num_envs, args.train_frequency)):
                if args.anneal_lr:
                    optimizer.param_groups[0]["lr"] = args.learning_rate * (1 - global_step / args.total_timesteps)
                batch = rb.sample(args.batch_size, device)
                loss, q_taken = td_loss(q_network, target_network, batch, args.gamma, loss_fn, args.bf16)
                losses_finite &= torch.isfinite(loss)  # on the device: looked at with each train.csv row, not each step
                optimizer.zero_grad()
                loss.backward()
                if args.max_grad_norm > 0:
                    nn.utils.clip_grad_norm_(q_network.parameters(), args.max_grad_norm)
                optimizer.step()
                logs.train_step(global_step, loss, q_taken, optimizer.param_groups[0]["lr"], losses_finite)

            # Target network θ⁻ (Algorithm 1: reset to θ every C steps); --tau < 1 blends instead (Polyak).
            for _ in range(due(global_step, args.num_envs, args.target_network_frequency)):
                update_target_network(target_network, q_network, args.tau)

        steps_done = global_step + args.num_envs
        logs.progress(steps_done, epsilon, recent_returns)
        # plumbing, between two steps, where the networks, the buffer and the logs agree: a checkpoint when one is
        # due or SIGTERM asked to stop (not after the last step: the run is done), then a signal's stop
        if args.checkpoint_frequency and steps_done < args.total_timesteps and (
                Stopped.signum == signal.SIGTERM or due(global_step + 1, args.num_envs, args.checkpoint_frequency)):
            logs.check_finite(losses_finite, global_step)
            save_checkpoint(logs, steps_done, q_network, target_network, optimizer, rb, rng, recent_returns)
        if Stopped.signum:
            raise Stopped(steps_done)
    logs.check_finite(losses_finite, global_step)
    return global_step + args.num_envs


# ----------------------------------------------------------------------------------------- evaluation
EVAL_GAMES_PER_SEED, MAX_SEED, EVAL_SEEDS_FROM = 1_000, 1_000_000, 2**30


def eval_seed(seed, game):
    """Env seed of evaluation game `game` of training seed `seed`: 2**30 + 1,000 seed + game. Training envs get seeds
    below 2**30, so each training seed owns 1,000 games no other seed and no training game plays; ALE seeds are
    non-negative 32-bit ints (a negative one draws a random start), so --seed is at most 1,000,000."""
    return EVAL_SEEDS_FROM + EVAL_GAMES_PER_SEED * seed + game


def eval_rng(seed, game):
    """The epsilon draws of evaluation game `game` alone: child `game` of random_streams' fourth child, the
    same generator whether 1 or 30 games are asked for."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(EVAL_STREAM, game)))


def evaluate(q_network, args, device, video_path=None):
    """Whole games (all lives, real score) at epsilon 0.05 (Nature), each cut at --eval-max-frames (Nature's
    5 minutes), on starts of this seed's own (eval_seed). Returns each game's score and length in steps.

    One emulator plays the games one after another, each from its own seed and with its own epsilon draws,
    so game k scores the same whether 1 or 30 games are asked for. The video, if asked for, comes from a
    second emulator in lockstep with game 0: same seed and actions give the same game, in colour at 210x160.
    """
    env = make_envs(args, 1, training=False, max_num_frames_per_episode=args.eval_max_frames)
    video_env = None
    try:
        returns, lengths = np.zeros(args.eval_episodes), np.zeros(args.eval_episodes, dtype=int)
        for game in range(args.eval_episodes):
            rng = eval_rng(args.seed, game)
            obs, _ = env.reset(seed=eval_seed(args.seed, game))
            if video_path and game == 0:
                video_env = make_envs(args, 1, training=False, max_num_frames_per_episode=args.eval_max_frames,
                                      img_height=210, img_width=160, grayscale=False, stack_num=1)
                frames = [video_env.reset(seed=eval_seed(args.seed, game))[0][0, 0]]
            done = False
            while not done:
                if rng.random() < args.eval_epsilon:
                    action = rng.integers(env.single_action_space.n)
                else:
                    with torch.inference_mode():
                        action = q_network(torch.from_numpy(obs).to(device)).argmax(dim=1).item()
                obs, reward, terminated, truncated, _ = env.step(np.array([action]))
                returns[game] += reward[0]
                lengths[game] += 1
                done = terminated[0] or truncated[0]  # a game over (no life-loss signal here) or the frame cap
                if video_env is not None and game == 0:
                    video_obs, _, _, _, video_info = video_env.step(np.array([action]))
                    # the step that ends the game already returns the next game's first frame
                    frames.append(video_info["final_obs"][0, 0] if done else video_obs[0, 0])
        if video_env is not None:
            write_video(frames, video_path)
        return returns, lengths
    finally:
        env.close()
        if video_env is not None:
            video_env.close()


# ========================================================================================= plumbing
# What runs the lesson above: flags and their checks, seeds, threads, memory, logs, checkpoints and --resume, model
# files, videos, signals and main().

def parse_args(argv=None):
    examples = "\n".join(line for line in __doc__.splitlines() if line.startswith("    "))
    p = ArgumentParser(description=__doc__.split("\n")[0], epilog="examples:\n" + examples,
                       formatter_class=HelpFormatter, allow_abbrev=False)
    positive_int, count, positive = number(int, 0), number(int, 0, low_in=True), number(float, 0)
    probability, fraction = number(float, 0, 1, low_in=True), number(float, 0, 1)
    g = p.add_argument_group("algorithm")
    g.add_argument("--env-id", default="BreakoutNoFrameskip-v4", help="an Atari id: ALE/Pong-v5, ...")
    g.add_argument("--total-timesteps", type=positive_int, default=10_000_000,
                   help="agent steps (4 frames each), summed over envs (Nature: 50M)")
    g.add_argument("--num-envs", type=positive_int, default=1, help="games played side by side")
    g.add_argument("--sticky-actions", action="store_true",
                   help="repeat the previous action with probability 0.25 (the v5 protocol); off = v4/Nature")
    g.add_argument("--learning-rate", type=positive, default=1e-4, help="Adam's step size (Nature: RMSProp, 2.5e-4)")
    g.add_argument("--anneal-lr", action=argparse.BooleanOptionalAction, default=False,
                   help="decay the learning rate linearly to 0 over the run")
    g.add_argument("--adam-eps", type=positive, default=1e-8, help="Adam's epsilon")
    g.add_argument("--buffer-size", type=positive_int, default=1_000_000, help="replay memory, 7 KB a transition")
    g.add_argument("--batch-size", type=positive_int, default=32, help="transitions per gradient step")
    g.add_argument("--gamma", type=probability, default=0.99, help="discount factor")
    g.add_argument("--tau", type=fraction, default=1.0, help="target update rate: 1 = hard copy, <1 = Polyak")
    g.add_argument("--target-network-frequency", type=positive_int, default=1_000,
                   help="env steps between target updates (Nature's C = 10,000 counts updates: 40,000 env steps)")
    g.add_argument("--train-frequency", type=positive_int, default=4,
                   help="env steps between gradient steps, summed over envs")
    g.add_argument("--learning-starts", type=count, default=80_000, help="env steps before learning (Nature: 50,000)")
    g.add_argument("--start-e", type=probability, default=1.0, help="exploration epsilon at the start")
    g.add_argument("--end-e", type=probability, default=0.01, help="exploration epsilon after the decay (Nature: 0.1)")
    g.add_argument("--exploration-fraction", type=fraction, default=0.10, help="the run's share epsilon decays over")
    g.add_argument("--loss", choices=["mse", "huber"], default="mse",
                   help="mse is CleanRL's; Nature clipped the error to [-1, 1], which is huber")
    g.add_argument("--max-grad-norm", type=number(float, 0, low_in=True), default=0.0,
                   help="clip the gradient norm at this value (0: off)")
    g.add_argument("--bf16", action="store_true",
                   help="the online network's passes in bfloat16 (autocast), weights, TD target and loss in float32: "
                        "faster with AMX/AVX512-BF16 or a GPU, learned as float32 did (docs/dqn_atari.md)")
    algorithm_flags = [action.dest for action in g._group_actions] + ["seed"]  # what --resume may not change
    not_inherited = ("eval_model", "resume", "capture_video")  # a video is asked for each time
    g = p.add_argument_group("run and logs")
    g.add_argument("--exp-name", default=SCRIPT[:-3], help="the run's name in runs/ and of its model file")
    g.add_argument("--seed", type=number(int, 0, MAX_SEED, low_in=True), default=1,
                   help=f"seeds training (0 to {MAX_SEED:,}) and, apart, the evaluation")
    g.add_argument("--save-model", action=argparse.BooleanOptionalAction, default=True,
                   help="save the model into the run folder")
    g.add_argument("--cuda", action="store_true", help="use a GPU when there is one")
    g.add_argument("--threads", type=number(int, 1, low_in=True), default=None, metavar="N",
                   help=f"torch's CPU threads; None: OMP_NUM_THREADS, else the affinity (here: {default_threads()}); "
                        "the same --seed gives the same run at the same count only (docs/dqn_atari.md)")
    g.add_argument("--torch-deterministic", action=argparse.BooleanOptionalAction, default=True,
                   help="deterministic cuDNN kernels (a GPU)")
    g.add_argument("--checkpoint-frequency", type=count, default=250_000,
                   help="env steps between checkpoints --resume goes on from (networks, Adam, generators, buffer: "
                        "7.1 GB at 1M), and one at a SIGTERM (0: none); the games in flight restart on resume")
    g.add_argument("--resume", metavar="RUN_DIR",
                   help="go on with the run in RUN_DIR from its last checkpoint to its budget, with its settings; the "
                        "rows logged after the checkpoint are redone, each env's first game after it marked `resumed`")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-episodes", type=number(int, 0, EVAL_GAMES_PER_SEED), default=10,
                   help="whole games (all lives) scored at the end")
    g.add_argument("--eval-epsilon", type=probability, default=0.05, help="Nature's evaluation epsilon")
    g.add_argument("--eval-max-frames", type=positive_int, default=18_000,
                   help="frames an evaluation game may last (Nature: 5 minutes = 18,000)")
    g.add_argument("--eval-model", metavar="PATH",
                   help="evaluate a saved model and exit, without training (settings from the args.json beside it)")
    g.add_argument("--capture-video", action="store_true",
                   help="record the first evaluation game in colour to videos/ (pip install moviepy)")
    args = p.parse_args(argv)
    if args.eval_model and args.resume:
        fail("--eval-model and --resume: one or the other")
    if args.eval_model or args.resume:  # the run's settings become the defaults: flags given here still win
        saved = run_settings(args.resume or args.eval_model, resume=bool(args.resume))
        p.set_defaults(**{k: v for k, v in saved.items() if k in vars(args) and k not in not_inherited})
        args = p.parse_args(argv)
        for name in algorithm_flags if args.resume else []:  # may change how it runs, not what it computes
            started = saved.get(name, p.get_default(name))  # a flag newer than the run: it ran at its default
            if getattr(args, name) != started:
                fail(f"--resume {args.resume}: --{name.replace('_', '-')} {getattr(args, name)} would change the run, "
                     f"which started with {started}; a resumed run keeps the settings that shape its algorithm")
    if args.bf16 and not bf16_supported(args.cuda):
        fail("--bf16: this " + ("GPU" if args.cuda and torch.cuda.is_available() else "CPU")
             + " has no fast bfloat16 (a CPU needs AVX512-BF16 or AMX); run without --bf16")
    if args.batch_size > args.buffer_size:
        fail(f"--batch-size ({args.batch_size}) cannot exceed --buffer-size ({args.buffer_size})")
    if args.buffer_size // args.num_envs < 2 * STACK:
        fail(f"--buffer-size ({args.buffer_size}) is too small for {args.num_envs} envs: at least {2 * STACK} per env")
    atari_game(args.env_id)  # an unknown or non-Atari id fails here, before anything is written
    if args.total_timesteps < args.num_envs:
        fail(f"--total-timesteps ({args.total_timesteps}) is less than one step of each of {args.num_envs} envs")
    if args.total_timesteps % args.num_envs:  # whole vector steps: round up, never drop steps silently
        rounded = math.ceil(args.total_timesteps / args.num_envs) * args.num_envs
        print(f"note: --total-timesteps {args.total_timesteps} is not a multiple of --num-envs {args.num_envs}; "
              f"running {rounded}", file=sys.stderr)
        args.total_timesteps = rounded
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
    """--help shows every flag's default, and the docstring's example commands as they are written."""


def fail(message):  # bad input: one line and exit code 2, as argparse does, never a traceback
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def bf16_supported(cuda):
    if cuda and torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:  # a private probe of torch's: another torch may lack it, and then no bf16 is assumed
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_threads():
    """The cores this process is given: OMP_NUM_THREADS (a scheduler's share), else the CPU affinity (SLURM, taskset,
    a container), never the machine's count. The env threads step while the learner waits: they take turns."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


AGENT_STREAM, ENV_STREAM, TORCH_STREAM, EVAL_STREAM = range(4)  # children of SeedSequence(--seed)


def random_streams(seed, num_envs, resumed_at=0):
    """The agent's generator (exploration, replay sampling), the envs' seed and torch's (the initial weights): children
    of one SeedSequence(seed), apart, where default_rng(seed) and reset(seed=seed) would be one stream. Env i gets
    env_seed + i, below EVAL_SEEDS_FROM; a run resumed at step n plays fresh games, from the env child's child n."""
    agent_ss, env_ss, torch_ss, _ = np.random.SeedSequence(seed).spawn(4)
    if resumed_at:
        env_ss = np.random.SeedSequence(seed, spawn_key=(ENV_STREAM, resumed_at))
    return (np.random.default_rng(agent_ss), int(env_ss.generate_state(1)[0]) % (EVAL_SEEDS_FROM - num_envs),
            int(torch_ss.generate_state(1)[0]))


# Memory a run needs, per unit of each size flag, so a run that cannot fit is refused before it starts.
ENV_BYTES = 4_000_000  # one emulator and its thread: measured 3.4 MB for 1 env, 1.7 MB each for 16
BATCH_ROW_BYTES = 600_000  # one row of a gradient step (stacks, floats, activations): measured 508-557 KB
BASE_BYTES = 400_000_000  # Python, torch and ale-py loaded, the networks and Adam: measured 0.36 GB


def memory_needs(args, device):
    """Bytes of RAM (and of GPU memory: the batch's part with --cuda) each size flag's value takes."""
    host = {"buffer_size": ReplayBuffer.BYTES_PER_SLOT * (args.buffer_size // args.num_envs * args.num_envs),
            "num_envs": args.num_envs * ENV_BYTES}
    gpu = {"batch_size": args.batch_size * BATCH_ROW_BYTES}
    return (host, gpu) if device.type == "cuda" else ({**host, **gpu}, {})


def available_memory(device):
    """Bytes free now: MemAvailable of the host, or of the GPU with a cuda device; None where we cannot ask."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return None  # not Linux: no cheap way to ask


def check_memory(args, device):
    """Refuse sizes that cannot fit in memory now, instead of being killed by the OOM killer hours later:
    one line naming the flag that takes the most and the value of it that would fit beside the others."""
    host, gpu = memory_needs(args, device)
    for needs, where, base in [(host, torch.device("cpu"), BASE_BYTES), (gpu, device, 0)]:
        available = available_memory(where) if needs else None
        if available is None or base + sum(needs.values()) <= available:
            continue
        name = max(needs, key=needs.get)
        room = 0.8 * available - base - sum(v for k, v in needs.items() if k != name)  # 20% kept for the rest
        fits = int(room / (needs[name] / getattr(args, name)))
        sizes = ", ".join(f"--{k.replace('_', '-')} {getattr(args, k)}: {v / 1e9:.1f} GB" for k, v in needs.items())
        memory = "GPU memory" if where.type == "cuda" else "RAM"
        fail(f"this run needs {(base + sum(needs.values())) / 1e9:.1f} GB of {memory} ({sizes}) but only "
             f"{available / 1e9:.1f} GB is available; pass a smaller --{name.replace('_', '-')} "
             + (f"(about {fits:,} fits)" if fits >= 1 else "(it does not fit even at 1)"))


class Logs:
    """runs/<run>/: args.json, episodes.csv, train.csv (line-buffered: plot a run while it goes), the same numbers as
    TensorBoard events under CleanRL's tags (`tensorboard --logdir runs`), progress on stdout. `resume`: a checkpoint's
    manifest: the CSVs are cut back to their length then and appended to, TensorBoard drops the later events."""

    COLUMNS = {"episodes": {"episodic_return": "charts/episodic_return", "episodic_length": "charts/episodic_length",
                            "epsilon": "charts/epsilon", "resumed": None},
               "train": {"loss": "losses/td_loss", "q_values": "losses/q_values",
                         "learning_rate": "charts/learning_rate", "sps": "charts/SPS"}}  # CSV column: its tag

    def __init__(self, run_dir, args, resume=None, train_log_every=1_000):
        from torch.utils.tensorboard import SummaryWriter  # imported here: only a training run writes events
        self.run_dir, self.total, self.train_log_every = run_dir, args.total_timesteps, train_log_every
        self.print_every = min(10_000, max(1, math.ceil(args.total_timesteps / 10)))  # every 10%, every 10,000 steps
        self.next_train_log, self.next_print, self.start_step = 0, self.print_every, 0
        self.paths = {name: os.path.join(run_dir, f"{name}.csv") for name in self.COLUMNS}
        if resume is None:
            settings = json.dumps({**vars(args), "script": SCRIPT}, indent=2).encode()  # --eval-model, --resume
            write_file(os.path.join(run_dir, "args.json"), lambda f: f.write(settings))
        else:  # the rows logged after the checkpoint record training that is done again now
            for path in self.paths.values():
                with writing(path):
                    os.truncate(path, resume["logs"][os.path.basename(path)])
            self.next_train_log, self.next_print = resume["logs"]["next_train_log"], resume["logs"]["next_print"]
            self.start_step = resume["step"]
        self.finite_until = self.start_step  # the step up to which every loss is known to be finite
        self.losses_finite = torch.ones((), dtype=torch.bool)  # train() puts the device's flag here
        self.files, self.csv = {}, {}
        for name, path in self.paths.items():
            with writing(path):
                self.files[name] = open(path, "w" if resume is None else "a", newline="", buffering=1)
                self.csv[name] = csv.writer(self.files[name])
                if resume is None:
                    self.csv[name].writerow(["global_step", *self.COLUMNS[name]])
        with writing(run_dir):
            self.writer = SummaryWriter(run_dir, purge_step=self.start_step if resume else None)
        self.start_time = time.time()

    def row(self, name, global_step, *values):
        with writing(self.paths[name]):
            self.csv[name].writerow([global_step, *values])
        for tag, value in zip(self.COLUMNS[name].values(), values):
            if tag:
                self.writer.add_scalar(tag, value, global_step)

    def episode(self, global_step, episodic_return, episodic_length, epsilon, resumed):
        self.row("episodes", global_step, episodic_return, episodic_length, round(epsilon, 4), int(resumed))

    def train_step(self, global_step, loss, q_taken, learning_rate, losses_finite):
        if global_step >= self.next_train_log:  # .item() syncs, so only on the steps we log
            self.check_finite(losses_finite, global_step)
            sps = int(self.sps(global_step))
            self.row("train", global_step, loss.item(), q_taken.mean().item(), learning_rate, sps)
            self.next_train_log = global_step + self.train_log_every

    def sps(self, global_step):
        return (global_step - self.start_step) / max(time.time() - self.start_time, 1e-9)

    def check_finite(self, losses_finite, global_step):
        """Stop the run (exit 1) if a loss since the last look was inf or nan: one host wait per look."""
        if not losses_finite:
            self.close()
            print(f"error: the loss became inf or nan after global step {self.finite_until}; stopping the run",
                  file=sys.stderr)
            sys.exit(1)
        self.finite_until = global_step

    def progress(self, global_step, epsilon, recent_returns):
        if global_step >= self.next_print or global_step >= self.total:
            sps = max(self.sps(global_step), 1e-9)
            mean_return = f"{np.mean(recent_returns):7.1f}" if recent_returns else "      -"
            print(f"step {global_step:>8}/{self.total} | {sps:6.0f} SPS | ETA {(self.total - global_step) / sps:5.0f}s"
                  f" | return (last {len(recent_returns)}) {mean_return} | epsilon {epsilon:.3f}", flush=True)
            self.next_print = global_step + self.print_every

    def state(self):
        """What a checkpoint needs to continue the logs: each CSV's length in bytes, and the next rows due."""
        lengths = {}
        for name, f in self.files.items():
            with writing(self.paths[name]):
                f.flush()
                lengths[f"{name}.csv"] = os.fstat(f.fileno()).st_size
        return {**lengths, "next_train_log": self.next_train_log, "next_print": self.next_print}

    def close(self):
        for f in [*self.files.values(), getattr(self, "writer", None)]:
            with contextlib.suppress(OSError):  # a full disk: the rows written so far stay as they are
                if f is not None:
                    f.close()


BUFFER_RINGS = ["frames", "actions", "rewards", "terminated", "first", "valid"]  # (num_envs, slots, ...) arrays


def save_checkpoint(logs, step, q_network, target_network, optimizer, rb, rng, recent_returns):
    """Everything training needs to go on from `step` (--resume) in runs/<run>/checkpoint-<step>/, written as .tmp/
    (its manifest last), renamed, named in checkpoint.json (written aside, renamed), and only then the previous one
    deleted: a kill or a failed write at any moment leaves a whole checkpoint named. The buffer as it holds it."""
    name = f"checkpoint-{step}"
    tmp, final = os.path.join(logs.run_dir, name + ".tmp"), os.path.join(logs.run_dir, name)
    for stale in (tmp, final):  # left by a run killed while writing it
        shutil.rmtree(stale, ignore_errors=True)
    try:
        with writing(tmp):
            os.makedirs(tmp)
        filled = int(rb.size.max())
        for key in BUFFER_RINGS + ["pos", "size"]:
            array = getattr(rb, key)[:, :filled] if key in BUFFER_RINGS else getattr(rb, key)
            write_file(os.path.join(tmp, f"{key}.npy"), lambda f, a=array: np.save(f, a))
        state = {"q_network": q_network.state_dict(), "target_network": target_network.state_dict(),
                 "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
        write_file(os.path.join(tmp, "state.pt"), lambda f: torch.save(state, f))
        files = {entry: os.path.getsize(os.path.join(tmp, entry)) for entry in sorted(os.listdir(tmp))}
        manifest = {"script": SCRIPT, "step": step, "filled": filled, "numpy_rng": rng.bit_generator.state,
                    "recent_returns": [float(r) for r in recent_returns], "logs": logs.state(), "files": files}
        write_file(os.path.join(tmp, "manifest.json"), lambda f: f.write(json.dumps(manifest).encode()))
        with writing(final):
            os.rename(tmp, final)
        pointer = json.dumps({"checkpoint": name, "step": step}).encode()
        write_file(os.path.join(logs.run_dir, "checkpoint.json"), lambda f: f.write(pointer))
    except CannotWrite:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    remove_checkpoints(logs.run_dir, keep=name)


def remove_checkpoints(run_dir, keep=None):
    for entry in os.listdir(run_dir):
        if entry.startswith("checkpoint-") and entry != keep:
            shutil.rmtree(os.path.join(run_dir, entry), ignore_errors=True)


class Checkpoint:
    """A checkpoint loaded by load_checkpoint, checked whole; restore() puts it into a fresh train()."""

    def __init__(self, manifest, arrays, state):
        self.manifest, self.arrays, self.state, self.step = manifest, arrays, state, manifest["step"]

    def restore(self, q_network, target_network, optimizer, rb, rng, recent_returns):
        q_network.load_state_dict(self.state["q_network"])
        target_network.load_state_dict(self.state["target_network"])
        optimizer.load_state_dict(self.state["optimizer"])  # Adam's moments and step counts, and its learning rate
        torch.set_rng_state(self.state["torch_rng"])
        if self.state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.state["cuda_rng"])
        rng.bit_generator.state = self.manifest["numpy_rng"]  # the agent's generator, which the buffer samples with
        for key in BUFFER_RINGS:
            getattr(rb, key)[:, :self.manifest["filled"]] = self.arrays[key]
        rb.pos[:], rb.size[:] = self.arrays["pos"], self.arrays["size"]
        recent_returns.extend(self.manifest["recent_returns"])
        return self.step


def load_checkpoint(run_dir, args, q_network):
    """The checkpoint checkpoint.json names, checked whole before anything changes (else one line, exit 2): each file
    of its manifest's size, arrays of this buffer's shapes, this network's weights, CSVs at least as long as then."""
    pointer = os.path.join(run_dir, "checkpoint.json")
    if not os.path.isfile(pointer):
        fail(f"--resume {run_dir}: no checkpoint there (--checkpoint-frequency 0, or killed before the first)")
    try:
        with open(pointer) as f:
            folder = os.path.join(run_dir, json.load(f)["checkpoint"])
        with open(os.path.join(folder, "manifest.json")) as f:
            manifest = json.load(f)
        for entry, size in manifest["files"].items():
            if os.path.getsize(os.path.join(folder, entry)) != size:
                raise ValueError(f"{entry} is {os.path.getsize(os.path.join(folder, entry))} bytes, not {size}")
        step, filled, slots = manifest["step"], manifest["filled"], args.buffer_size // args.num_envs
        if manifest["script"] != SCRIPT or not 0 < step < args.total_timesteps or step % args.num_envs:
            raise ValueError(f"step {step} does not fit this run")
        expected, arrays = ReplayBuffer(args.num_envs * STACK * 2, args.num_envs, None), {}  # tiny: dtypes and shapes
        for key in BUFFER_RINGS + ["pos", "size"]:
            arrays[key] = np.load(os.path.join(folder, f"{key}.npy"), mmap_mode="r")
            like = getattr(expected, key)
            shape = (args.num_envs, min(filled, slots), *like.shape[2:]) if key in BUFFER_RINGS else like.shape
            if arrays[key].dtype != like.dtype or arrays[key].shape != shape or filled > slots:
                raise ValueError(f"{key}.npy does not fit a buffer of {args.buffer_size:,} for {args.num_envs} envs")
        state = torch.load(os.path.join(folder, "state.pt"), map_location="cpu", weights_only=True)
        weights = q_network.state_dict()
        for key in ("q_network", "target_network"):
            if state[key].keys() != weights.keys() or any(state[key][k].shape != v.shape for k, v in weights.items()):
                raise ValueError(f"the {key} weights do not fit this network")
        for entry in ("episodes.csv", "train.csv"):
            if os.path.getsize(os.path.join(run_dir, entry)) < manifest["logs"][entry]:
                raise ValueError(f"{entry} is shorter than at the checkpoint")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, pickle.UnpicklingError) as e:
        fail(f"--resume {run_dir}: its checkpoint is damaged ({(str(e).splitlines() or [type(e).__name__])[0]})")
    return Checkpoint(manifest, arrays, state)


def run_settings(given, resume):
    """The settings (args.json) of the run `given`: for --resume an unfinished run of this script in that folder, for
    --eval-model the run that saved that model ({} if it left none). Anything else: one line and exit 2."""
    folder = given if resume else os.path.dirname(given)
    path, flag = os.path.join(folder, "args.json"), f"--resume {folder}: " if resume else ""
    if not os.path.isfile(path):
        return fail(f"--resume {folder}: not a run folder (no args.json there)") if resume else {}
    try:
        with open(path) as f:
            saved = json.load(f)
        script = saved.get("script", "another script" if resume else SCRIPT)
    except (OSError, ValueError, AttributeError) as e:
        fail(f"{flag}cannot read {path} ({type(e).__name__})")
    if script != SCRIPT:
        fail(f"{flag}a run of {script}, not of {SCRIPT}; resume it with that script" if resume
             else f"{given} was saved by {script}; evaluate it with that script")
    if resume and os.path.exists(os.path.join(folder, "eval.json")):
        fail(f"{flag}the run is finished (eval.json is there); there is nothing to resume")
    return saved


def load_model(q_network, path):
    """Load weights saved by this script; anything else ends in one line (never torch's weights_only advice)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        fail(f"model file not found: {path}")
    except Exception:  # empty, a truncated archive, a pickle of something else, a text file, a folder
        fail(f"{path} is not a saved model of {SCRIPT} (torch.load cannot read it as saved weights)")
    expected = q_network.state_dict()
    if not (isinstance(state, dict) and state.keys() == expected.keys()
            and all(isinstance(v, torch.Tensor) for v in state.values())):
        fail(f"{path} is not a saved model of {SCRIPT} (it holds something other than this network's weights)")
    for name, tensor in expected.items():
        if state[name].shape != tensor.shape:
            there, here = ("x".join(map(str, t.shape)) for t in (state[name], tensor))
            fail(f"{path} does not fit this network: {name} is {there} there, {here} here "
                 f"(check --env-id: games differ in action count)")
    q_network.load_state_dict(state)


class CannotWrite(Exception):
    """A file of the run cannot be written (no space, no permission): main() ends the run in one line, exit 1."""


@contextlib.contextmanager
def writing(path):
    try:
        yield
    except OSError as e:
        raise CannotWrite(f"cannot write {path}: {e.strerror or e}") from None


def write_file(path, write):
    """write(f) into path + '.tmp', then rename: a file that cannot be finished never replaces the one before."""
    with writing(path):
        try:
            with open(path + ".tmp", "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(path + ".tmp", path)
        except OSError:
            with contextlib.suppress(OSError):
                os.remove(path + ".tmp")
            raise


def create_run_dir(run_name):
    """runs/<run_name>, or runs/<run_name>_2, _3, ... when a run of the same name (same second) made it first."""
    for name in [run_name, *(f"{run_name}_{copies}" for copies in range(2, 10_000))]:
        with writing(os.path.join("runs", name)), contextlib.suppress(FileExistsError):  # taken: the next suffix
            os.makedirs(os.path.join("runs", name))
            return name
    raise CannotWrite(f"cannot write runs/{run_name}: 10,000 runs of this name already")


def write_video(frames, path):
    """An mp4 of exactly these frames, 15 per second (60 fps / frame skip 4), by imageio-ffmpeg (with moviepy):
    moviepy's own writer drops the last frame of some lengths (101 frames at 15 fps give 100)."""
    import imageio_ffmpeg  # only when a video is asked for
    with writing(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        height, width = frames[0].shape[:2]
        writer = imageio_ffmpeg.write_frames(path, (width, height), fps=15, macro_block_size=1)  # 210 rows: no resize
        writer.send(None)  # start ffmpeg
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
    print(f"video saved to {path}")


class Stopped(Exception):
    """Ctrl-C (SIGINT: exit 130) or SIGTERM (`kill`, a scheduler's preemption: exit 143). `step`: the env steps done
    when train() stopped; `report`: what was kept, for main()'s one line."""
    signum, training = None, False

    def __init__(self, step=None, report="no eval.json written"):
        super().__init__(step)
        self.step, self.report = step, report


def on_signal(signum, frame):
    """While training, note the signal: train() stops between two steps (after a last checkpoint at a SIGTERM), never
    halfway through storing one. Elsewhere (the evaluation, saving) stop at once."""
    Stopped.signum = signum
    if not Stopped.training:
        raise Stopped


def evaluate_saved_model(args, device):
    probe = make_envs(args, 1, training=False)
    q_network = QNetwork(probe.single_action_space.n).to(device)
    probe.close()
    load_model(q_network, args.eval_model)
    run_folder = os.path.basename(os.path.dirname(os.path.abspath(args.eval_model)))
    returns, _ = evaluate(q_network, args, device, args.capture_video and f"videos/{run_folder}-eval/eval-game-0.mp4")
    print(f"result: {score(returns)} {args.eval_epsilon}: {args.eval_model}")
    return returns


def score(returns):
    return f"{returns.mean():.1f} ± {returns.std():.1f} over {len(returns)} games at epsilon"


def train_and_evaluate(args, device):
    check_memory(args, device)
    if args.resume:
        run_dir = os.path.normpath(args.resume)
        run_name = os.path.basename(run_dir)
    else:
        run_name = create_run_dir(f"{args.env_id.replace('/', '-')}__{args.exp_name}__{args.seed}__{int(time.time())}")
        run_dir = os.path.join("runs", run_name)
    model_path = os.path.join(run_dir, f"{args.exp_name}.pt")
    save_model = lambda: write_file(model_path, lambda f: torch.save(q_network.state_dict(), f))  # noqa: E731
    envs = make_envs(args, args.num_envs)
    try:  # the envs are closed on every way out: the end, the NaN stop, a signal, a failed write
        q_network = QNetwork(envs.single_action_space.n).to(device)
        checkpoint = load_checkpoint(run_dir, args, q_network) if args.resume else None  # checked before a log changes
        logs = Logs(run_dir, args, resume=checkpoint and checkpoint.manifest)
        print(f"run {run_name}: logs in {run_dir}/" + (f", resumed at step {checkpoint.step}" if checkpoint else ""))
        try:
            Stopped.training = True
            train(args, envs, q_network, device, logs, checkpoint)
        except (KeyboardInterrupt, Stopped) as stop:  # the logs and the model are kept, then main() says so
            logs.check_finite(logs.losses_finite, logs.finite_until)  # no model is saved after an overflow
            if args.save_model:
                save_model()
            step = getattr(stop, "step", None)
            report = f"logs are complete up to {f'step {step}' if step else 'here'}"
            report += f", model saved to {model_path}" if args.save_model else ""
            if Stopped.signum == signal.SIGTERM:
                report += (f", checkpoint written: python {SCRIPT} --resume {run_dir} goes on"
                           if args.checkpoint_frequency else ", no checkpoint (--checkpoint-frequency 0)")
            raise Stopped(step, report) from None
        finally:
            Stopped.training = False
            logs.close()
    finally:
        envs.close()
    if args.save_model:
        save_model()  # the model the summary reports: the final network

    video_path = args.capture_video and f"videos/{run_name}/eval-game-0.mp4"
    returns, lengths = evaluate(q_network, args, device, video_path)
    result = {"model": os.path.basename(model_path) if args.save_model else None, "step": args.total_timesteps,
              "returns": returns.tolist(), "lengths": lengths.tolist(), "mean": returns.mean(), "std": returns.std(),
              "eval_epsilon": args.eval_epsilon}
    result_json = json.dumps(result, indent=2, allow_nan=False).encode()
    write_file(os.path.join(run_dir, "eval.json"), lambda f: f.write(result_json))
    with contextlib.suppress(OSError):  # the run is finished (eval.json): its checkpoint has nothing left to resume
        os.remove(os.path.join(run_dir, "checkpoint.json"))
    remove_checkpoints(run_dir)
    files = ["args.json", "episodes.csv", "train.csv", "eval.json"] + [os.path.basename(model_path)] * args.save_model
    print(f"result: {score(returns)} {args.eval_epsilon}: the final network (step {args.total_timesteps})")
    print(f"files:  {run_dir}/ ({', '.join(files)})")
    if args.save_model:
        print(f"again:  python {SCRIPT} --eval-model {model_path}")
        print(f"video:  python {SCRIPT} --eval-model {model_path} --capture-video")
    return returns


def main(argv=None):
    args = parse_args(argv)
    if args.capture_video:
        try:
            import imageio_ffmpeg  # noqa: F401  (writes the mp4; ALE renders the frames itself)
        except ImportError:
            fail("--capture-video needs imageio-ffmpeg, which comes with moviepy: pip install moviepy")
    torch.manual_seed(random_streams(args.seed, args.num_envs)[2])  # the networks' initial weights
    torch.backends.cudnn.deterministic = args.torch_deterministic
    if args.cuda and not torch.cuda.is_available():
        print("note: --cuda given but no GPU is available; running on the CPU", file=sys.stderr)
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    torch.set_num_threads(args.threads or default_threads())
    Stopped.signum = None  # the handlers are put back at the end; only the main thread can set them
    in_main_thread = threading.current_thread() is threading.main_thread()
    handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if in_main_thread else {}
    try:
        return evaluate_saved_model(args, device) if args.eval_model else train_and_evaluate(args, device)
    except (KeyboardInterrupt, Stopped) as stop:  # one way out for both signals, in training or in an evaluation
        signum = Stopped.signum or signal.SIGINT  # a KeyboardInterrupt: Ctrl-C
        what = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted (Ctrl-C)"
        print(f"{what}: {getattr(stop, 'report', Stopped().report)}", file=sys.stderr)
        sys.exit(128 + signum)
    except CannotWrite as e:  # the files written before stay as they were; every env is closed by now
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        Stopped.signum = None  # handled: a later main() in this process starts unstopped
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    main()
