"""DQN on Atari: the Nature agent, with a 1M-transition replay memory that fits in 8 GB.

Mnih et al. 2015, "Human-level control through deep reinforcement learning" (Nature
518), Algorithm 1, with the paper's preprocessing (84x84 grayscale, 4 stacked frames,
frame skip 4 with max-pooling, up to 30 no-op starts, a life loss ends the training
episode, rewards clipped to their sign) done in C++ by ale-py's AtariVectorEnv, and the
paper's network. Defaults are CleanRL's 10M-step settings. This is dqn_cartpole.py
with an image network and a replay buffer that stores each frame once.

    python dqn_atari.py --env-id BreakoutNoFrameskip-v4 --cuda  # 10M steps, a GPU
    python dqn_atari.py --total-timesteps 250000 --buffer-size 100000 \\
        --learning-starts 10000 --exploration-fraction 0.4  # a CPU-sized run (README)
    python dqn_atari.py --eval-model runs/<run_name>/dqn_atari.pt --capture-video  # watch a saved model
    python dqn_atari.py --resume runs/<run_name>  # go on from its last checkpoint (after a kill, SIGTERM)

Lecture 03's names (its DQN code, Parts 3-5) and this file's:
  DQN (the Atari network)         QNetwork
  ReplayBuffer.push(state, ...)   ReplayBuffer.add(obs, ...), one transition per env,
                                  each frame stored once
  state, next_state               obs, next_obs (a stack of 4 frames)
  done = terminated or truncated  terminated (a time-limit truncation is not terminal:
                                  it bootstraps)
  agent.decay_epsilon()           linear_schedule(), linear over steps instead of a
                                  decay per episode
  agent.select_action()           the epsilon-greedy lines at the top of train()'s loop
  agent.update()                  the gradient step in train()'s loop,
                                  compute_td_target()
  target_update_freq              --target-network-frequency, update_target_network()
"""
import argparse
import contextlib
import copy
import csv
import glob
import importlib.util
import json
import math
import os
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


# ---------------- environment
def make_envs(args, num_envs, training=True, **overrides):
    """The Nature preprocessing, in C++ (no opencv): 84x84 grayscale, 4 stacked frames,
    frame skip 4 with a max over the last two frames (Atari sprites flicker), up to 30
    no-ops and FIRE on reset.

    The id only names the game: every id gets this same protocol, sticky actions off unless
    --sticky-actions (ALE/*-v5 ids would otherwise bring v5's 0.25). In training,
    `life_loss_info` marks a lost life `terminated` while the game and its frame stack go on
    (Nature); evaluation plays whole games. Rewards come back unclipped: the logs report the
    real score, the learner clips (Nature, Methods). SAME_STEP autoreset: the step that ends
    a game returns the next game's first observation, and the true last one comes in
    info["final_obs"] (only valid for the envs whose game ended).
    """
    kwargs = dict(
        num_threads=min(num_envs, default_threads()), noop_max=30, frameskip=4,
        repeat_action_probability=0.25 if args.sticky_actions else 0.0,
        maxpool=True, use_fire_reset=True, life_loss_info=training,
        episodic_life=False, reward_clipping=False,
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    return AtariVectorEnv(atari_game(args.env_id), num_envs, **{**kwargs, **overrides})


def game_over(terminations, truncations, lives, prev_lives):
    """Which envs started a new game on this step. A life loss is `terminated` with one life
    fewer; a game over resets the lives to the full count, and games without lives (Pong:
    always 0) only end by game over."""
    return truncations | (terminations & (lives >= prev_lives))


# ---------------- network
class QNetwork(nn.Module):
    """The Nature network (Mnih et al. 2015, Methods): three conv layers, 512 hidden units,
    one Q per action."""

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
        if channels_last:  # the conv kernels' fast layout on a CPU (oneDNN)
            self.to(memory_format=torch.channels_last)

    def forward(self, obs):
        if self.channels_last:  # reordered while still uint8
            obs = obs.contiguous(memory_format=torch.channels_last)
        # obs stays uint8 until here, on the device: the one conversion to float
        return self.net(obs.float() / 255.0)


# ---------------- replay buffer
class ReplayBuffer:
    """Stores each 84x84 frame once and rebuilds the 4-frame stacks of s and s' when
    sampling.

    One ring per env (capacity // num_envs slots each), Dopamine's layout: slot t holds the
    newest frame of the observation s_t and the action, clipped reward and `terminated`
    taken from it; s_{t+1}'s newest frame is in slot t+1. So the stack of s_t is the frames
    of slots t-3..t, with the frames from before the episode's first slot set to 0, exactly
    as AtariVectorEnv pads a reset stack. A lost life does not restart the stack (the env
    keeps it), a new game does. The last frame of a game (from final_obs) gets its own slot,
    which starts no transition, so a truncated game still has its true s'. 1,000,000
    transitions: 7.1 GB instead of 28 GB for whole stacks (56 GB with s' stored as well).
    """
    BYTES_PER_SLOT = FRAME_SHAPE[0] * FRAME_SHAPE[1] + 5  # a frame, action, reward and three flags

    def __init__(self, capacity, num_envs, rng):
        slots = capacity // num_envs
        shape = (num_envs, slots)
        self.frames = np.zeros((*shape, *FRAME_SHAPE), dtype=np.uint8)
        self.actions = np.zeros(shape, dtype=np.uint8)  # at most 18 Atari actions
        self.rewards = np.zeros(shape, dtype=np.int8)  # clipped to -1, 0, 1
        self.terminated = np.zeros(shape, dtype=bool)
        self.first = np.zeros(shape, dtype=bool)  # the first frame of an episode (a new game)
        self.valid = np.zeros(shape, dtype=bool)  # a transition starts here: its s' is written
        self.slots, self.num_envs, self.rng = slots, num_envs, rng
        self.pos = np.zeros(num_envs, dtype=np.int64)  # the slot written next, per env
        self.size = np.zeros(num_envs, dtype=np.int64)

    def _write(self, env, frame, first):
        slot = self.pos[env]
        self.frames[env, slot] = frame
        self.first[env, slot], self.valid[env, slot] = first, False
        self.pos[env] = (slot + 1) % self.slots
        self.size[env] = min(self.size[env] + 1, self.slots)

    def add(self, obs, actions, rewards, next_obs, terminated, episode_start):
        """One transition per env. `episode_start[i]`: obs[i] is the first observation of a
        new game (nothing of it is stored yet); otherwise obs[i] is the next_obs of the
        env's previous call."""
        for i in range(self.num_envs):
            if episode_start[i]:
                self._write(i, obs[i, -1], first=True)
            slot = (self.pos[i] - 1) % self.slots  # the slot holding obs[i]'s newest frame
            self.actions[i, slot] = actions[i]
            self.rewards[i, slot] = rewards[i]
            self.terminated[i, slot] = terminated[i]
            self._write(i, next_obs[i, -1], first=False)
            self.valid[i, slot] = True

    def _stacks(self, env, slot):
        """(B, 4, 84, 84) stacks ending at `slot`, zero before an episode's start."""
        idx = (slot[:, None] + np.arange(-(STACK - 1), 1)) % self.slots
        stacks = self.frames[env[:, None], idx]
        first = self.first[env[:, None], idx]
        # frame k belongs to an earlier episode if a later frame of the stack (k+1..newest)
        # starts one
        later = np.cumsum(np.flip(first[:, 1:], axis=1), axis=1)
        later_start = np.flip(later, axis=1) > 0
        stacks[:, :-1][later_start] = 0
        return stacks

    def sample_indices(self, batch_size):
        envs, slots, n = [], [], 2 * batch_size
        # rejection: uniform over the slots that start a transition
        while sum(map(len, envs)) < batch_size:
            env = self.rng.integers(0, self.num_envs, size=n)
            slot = (self.rng.random(n) * self.size[env]).astype(np.int64)
            # when a ring is full, the 3 oldest slots' stacks would reach back into frames
            # just overwritten
            age = (slot - self.pos[env]) % self.slots
            not_full = self.size[env] < self.slots
            keep = self.valid[env, slot] & (not_full | (age >= STACK - 1))
            envs.append(env[keep])
            slots.append(slot[keep])
        envs = np.concatenate(envs)[:batch_size]
        return envs, np.concatenate(slots)[:batch_size]

    def sample(self, batch_size, device):
        env, slot = self.sample_indices(batch_size)
        obs = self._stacks(env, slot)
        next_obs = self._stacks(env, (slot + 1) % self.slots)
        batch = (obs, self.actions[env, slot].astype(np.int64),
                 self.rewards[env, slot].astype(np.float32), next_obs,
                 self.terminated[env, slot].astype(np.float32))
        return [torch.from_numpy(x).to(device) for x in batch]  # frames go to the device as uint8


# ---------------- schedule
def linear_schedule(start_e, end_e, duration, t):  # then stays at end_e
    return max(end_e, start_e + (end_e - start_e) * t / duration)


# ---------------- TD target
def compute_td_target(target_network, rewards, next_obs, terminated, gamma):
    """TD target of Mnih et al. 2015, Eq. (2): y = r + γ max_a' Q(s', a'; θ⁻), or y = r when
    s' is terminal.

    Terminal here means a lost life or a game over (Nature's training episodes). A
    time-limit truncation (108,000 frames) was stored with terminated = 0: the game would
    have gone on, so it bootstraps.
    """
    with torch.no_grad():
        next_q_max = target_network(next_obs).max(dim=1).values
    return rewards + gamma * (1 - terminated) * next_q_max


def td_loss(q_network, target_network, batch, gamma, loss_fn, bf16=False):
    """Eq. (3): the loss between Q(s, a; θ) and the TD target y on a sampled batch, and
    Q(s, a; θ). --bf16: the online network's passes in bfloat16 (autocast); the weights,
    the TD target and the loss in float32."""
    obs_b, actions_b, rewards_b, next_obs_b, terminated_b = batch
    td_target = compute_td_target(target_network, rewards_b, next_obs_b,
                                  terminated_b, gamma)
    with torch.autocast(obs_b.device.type, torch.bfloat16, enabled=bf16):
        q_values = q_network(obs_b)
    q_taken = q_values.float().gather(1, actions_b.unsqueeze(1)).squeeze(1)  # Q(s, a; θ)
    # (y - Q(s, a; θ))², or Huber with --loss huber
    return loss_fn(q_taken, td_target), q_taken


# ---------------- training loop
def due(global_step, num_envs, frequency):
    """How many multiples of `frequency` fall among this vector step's env steps global_step
    .. + num_envs - 1: so --train-frequency and --target-network-frequency count env steps
    summed over envs, whatever --num-envs."""
    last = global_step + num_envs - 1
    return last // frequency - (global_step - 1) // frequency


def update_target_network(target_network, q_network, tau):
    """θ⁻ <- τ θ + (1 - τ) θ⁻: with τ = 1 the hard copy of Algorithm 1, with τ < 1 Polyak
    averaging."""
    for target_param, param in zip(target_network.parameters(), q_network.parameters()):
        target_param.data.copy_(tau * param.data + (1 - tau) * target_param.data)


def train(args, envs, q_network, device, logs, checkpoint=None):
    """Algorithm 1 for --total-timesteps env steps, from `checkpoint` on if given."""
    rng, env_seed, _ = random_streams(args.seed, args.num_envs)
    n_actions = envs.single_action_space.n
    target_network = copy.deepcopy(q_network)
    # fused=True: Adam's update as one kernel (the same update)
    optimizer = torch.optim.Adam(q_network.parameters(),
                                 lr=args.learning_rate, eps=args.adam_eps, fused=True)
    rb = ReplayBuffer(args.buffer_size, args.num_envs, rng)
    loss_fn = F.mse_loss if args.loss == "mse" else F.smooth_l1_loss
    recent_returns, start_step = deque(maxlen=20), 0
    # --resume: networks, Adam, generators, buffer and step as they were; new games
    if checkpoint is not None:
        start_step = restore(checkpoint, q_network, target_network, optimizer, rb, rng,
                             recent_returns)
        _, env_seed, _ = random_streams(args.seed, args.num_envs, start_step)

    obs, infos = envs.reset(seed=env_seed)
    prev_lives = infos["lives"]
    episode_start = np.ones(args.num_envs, dtype=bool)
    # each env's first game after a resume, marked in the log
    resumed = np.full(args.num_envs, checkpoint is not None)
    # a log episode is a whole game (all lives), with the real score papers report
    episode_returns = np.zeros(args.num_envs)
    episode_lengths = np.zeros(args.num_envs, dtype=int)
    # &= below: in place, on the device; what a stop looks at before it saves the model
    losses_finite = torch.ones((), dtype=torch.bool, device=device)
    global_step, logs.losses_finite = start_step, losses_finite
    # a whole number: parse_args rounds the budget up
    num_iterations = args.total_timesteps // args.num_envs
    for iteration in range(start_step // args.num_envs, num_iterations):
        global_step = iteration * args.num_envs
        # Epsilon-greedy acting (Algorithm 1): a random action with probability epsilon,
        # else argmax_a Q(s, a).
        decay_steps = args.exploration_fraction * args.total_timesteps
        epsilon = linear_schedule(args.start_e, args.end_e, decay_steps, global_step)
        random_actions = rng.integers(0, n_actions, size=args.num_envs)
        explore = rng.random(args.num_envs) < epsilon
        # no forward pass when every env explores (most of the early steps)
        if explore.all():
            actions = random_actions
        else:
            with torch.inference_mode():
                q_values = q_network(torch.from_numpy(obs).to(device))
            greedy = q_values.argmax(dim=1).cpu().numpy()
            actions = np.where(explore, random_actions, greedy)

        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        lives = infos["lives"]
        new_game = game_over(terminations, truncations, lives, prev_lives)

        # After a game over next_obs is already the next game's first stack; s' is the true
        # last one. (On a lost life next_obs is the true s' and the stack goes on; final_obs
        # is then not valid.)
        real_next_obs = next_obs.copy()
        for i in np.flatnonzero(new_game):
            real_next_obs[i] = infos["final_obs"][i]
        # Learn from the sign of the reward (Nature: one learning rate for all games); store
        # `terminated`, not `terminated or truncated`: the 108,000-frame limit is not a
        # terminal state of the game.
        rb.add(obs, actions, np.sign(rewards), real_next_obs, terminations, episode_start)
        obs, prev_lives, episode_start = next_obs, lives, new_game

        episode_returns += rewards
        episode_lengths += 1
        for i in np.flatnonzero(new_game):
            logs.episode(global_step + i + 1, episode_returns[i],
                         episode_lengths[i], epsilon, resumed[i])
            recent_returns.append(episode_returns[i])
            episode_returns[i], episode_lengths[i], resumed[i] = 0, 0, False

        if global_step >= args.learning_starts:
            for _ in range(due(global_step, args.num_envs, args.train_frequency)):
                if args.anneal_lr:
                    frac = 1 - global_step / args.total_timesteps
                    optimizer.param_groups[0]["lr"] = args.learning_rate * frac
                batch = rb.sample(args.batch_size, device)
                loss, q_taken = td_loss(q_network, target_network,
                                        batch, args.gamma, loss_fn, args.bf16)
                # on the device: looked at with each train.csv row, not each step
                losses_finite &= torch.isfinite(loss)
                optimizer.zero_grad()
                loss.backward()
                params = list(q_network.parameters())  # their norm before clipping:
                if args.max_grad_norm > 0:
                    grad_norm = nn.utils.clip_grad_norm_(params, args.max_grad_norm)
                else:  # the same norm, the gradients left as they are
                    grad_norm = nn.utils.get_total_norm([p.grad for p in params])
                optimizer.step()
                lr = optimizer.param_groups[0]["lr"]
                logs.train_step(global_step, loss, q_taken, lr, losses_finite, grad_norm)

            # Target network θ⁻ (Algorithm 1: reset to θ every C steps); --tau < 1 blends
            # instead (Polyak).
            for _ in range(due(global_step, args.num_envs, args.target_network_frequency)):
                update_target_network(target_network, q_network, args.tau)

        steps_done = global_step + args.num_envs
        logs.progress(steps_done, epsilon, recent_returns)
        # between two steps (networks, buffer, logs agree): a checkpoint when due or on
        # SIGTERM (not after the last step), then a signal's stop
        every = args.checkpoint_frequency
        if every and steps_done < args.total_timesteps and (
                Stopped.signum == signal.SIGTERM
                or due(global_step + 1, args.num_envs, every)):
            logs.check_finite(losses_finite, global_step)
            save_checkpoint(logs, steps_done, q_network, target_network,
                            optimizer, rb, rng, recent_returns)
        if Stopped.signum:
            raise Stopped(steps_done)
    logs.check_finite(losses_finite, global_step)
    return global_step + args.num_envs


# ---------------- evaluation
EVAL_GAMES_PER_SEED, MAX_SEED, EVAL_SEEDS_FROM = 1_000, 1_000_000, 2**30


def eval_seed(seed, game):
    """Env seed of evaluation game `game` of training seed `seed`: 2**30 + 1,000 seed +
    game. Training envs get seeds below 2**30, so each training seed owns 1,000 games no
    other seed and no training game plays; ALE seeds are non-negative 32-bit ints (a
    negative one draws a random start), so --seed is at most 1,000,000."""
    return EVAL_SEEDS_FROM + EVAL_GAMES_PER_SEED * seed + game


def eval_rng(seed, game):
    """The epsilon draws of evaluation game `game` alone: child `game` of random_streams'
    fourth child, the same generator whether 1 or 30 games are asked for."""
    key = (EVAL_STREAM, game)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def evaluate(q_network, args, device, video_path=None):
    """Whole games (all lives, real score) at epsilon 0.05 (Nature), each cut at
    --eval-max-frames (Nature's 5 minutes), on starts of this seed's own (eval_seed).
    Returns each game's score and length in steps.

    One emulator plays the games one after another, each from its own seed and with its own
    epsilon draws, so game k scores the same whether 1 or 30 games are asked for. The video,
    if asked for, comes from a second emulator in lockstep with game 0: same seed and
    actions give the same game, in colour at 210x160.
    """
    cap = dict(training=False, max_num_frames_per_episode=args.eval_max_frames)
    env, video_env = make_envs(args, 1, **cap), None
    try:
        returns = np.zeros(args.eval_episodes)
        lengths = np.zeros(args.eval_episodes, dtype=int)
        for game in range(args.eval_episodes):
            rng = eval_rng(args.seed, game)
            obs, _ = env.reset(seed=eval_seed(args.seed, game))
            if video_path and game == 0:
                video_env = make_envs(args, 1, **cap, img_height=210,
                                      img_width=160, grayscale=False, stack_num=1)
                first, _ = video_env.reset(seed=eval_seed(args.seed, game))
                frames = [first[0, 0]]
            done = False
            while not done:
                if rng.random() < args.eval_epsilon:
                    action = rng.integers(env.single_action_space.n)
                else:
                    with torch.inference_mode():
                        q = q_network(torch.from_numpy(obs).to(device))
                    action = q.argmax(dim=1).item()
                obs, reward, terminated, truncated, _ = env.step(np.array([action]))
                returns[game] += reward[0]
                lengths[game] += 1
                # a game over (no life-loss signal here) or the frame cap
                done = terminated[0] or truncated[0]
                if video_env is not None and game == 0:
                    video = video_env.step(np.array([action]))
                    # the step that ends a game returns the next one's first frame
                    frame = video[4]["final_obs"] if done else video[0]
                    frames.append(frame[0, 0])
        if video_env is not None:
            write_video(frames, video_path)
        return returns, lengths
    finally:
        env.close()
        if video_env is not None:
            video_env.close()


# ================================================================= plumbing
# What runs the lesson above: flags and their checks, seeds, threads, memory, logs,
# checkpoints and --resume, model files, videos, signals and main().

def parse_args(argv=None):
    examples = [x for x in __doc__.splitlines() if x.startswith(("    py", "        --"))]
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], allow_abbrev=False,
        usage="%(prog)s [flags]\n\nexamples:\n" + "\n".join(examples),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.error = fail  # argparse's own complaints: one line too
    flag, yes_no = p.add_argument_group("algorithm").add_argument, argparse.BooleanOptionalAction
    flag("--env-id", default="BreakoutNoFrameskip-v4", help="or ALE/Pong-v5, ...")
    flag("--total-timesteps", type=int, default=10_000_000, help="all envs' (Nature: 50M)")
    flag("--num-envs", type=int, default=1, help="games played side by side")
    flag("--sticky-actions", action="store_true", help="repeat an action at p=0.25 (v5)")
    flag("--learning-rate", type=float, default=1e-4, help="Adam's step size")
    flag("--anneal-lr", action=yes_no, default=False, help="decay it linearly to 0")
    flag("--adam-eps", type=float, default=1e-8, help="Adam's epsilon")
    flag("--buffer-size", type=int, default=1_000_000, help="transitions, 7 KB each")
    flag("--batch-size", type=int, default=32, help="transitions a gradient step")
    flag("--gamma", type=float, default=0.99, help="discount factor")
    flag("--tau", type=float, default=1.0, help="target update: 1 = copy, < 1 = Polyak")
    flag("--target-network-frequency", type=int, default=1_000, help="in env steps")
    flag("--train-frequency", type=int, default=4, help="env steps a gradient step")
    flag("--learning-starts", type=int, default=80_000, help="env steps (Nature: 50,000)")
    flag("--start-e", type=float, default=1.0, help="epsilon at the start")
    flag("--end-e", type=float, default=0.01, help="epsilon after the decay (Nature: 0.1)")
    flag("--exploration-fraction", type=float, default=0.10, help="the decay's share")
    flag("--loss", choices=["mse", "huber"], default="mse", help="Nature's: huber")
    flag("--max-grad-norm", type=float, default=0.0, help="clip the gradient (0: off)")
    flag("--bf16", action="store_true", help="the online network in bfloat16 (autocast)")
    algorithm_flags = [a.dest for a in p._actions[1:]] + ["seed"]
    flag = p.add_argument_group("run and logs").add_argument
    flag("--exp-name", default=SCRIPT[:-3], help="the run's name in runs/")
    flag("--seed", type=int, default=1, help=f"0 to {MAX_SEED:,}")
    flag("--save-model", action=yes_no, default=True, help="in the run folder")
    flag("--cuda", action="store_true", help="a GPU when there is one")
    flag("--threads", type=int, metavar="N", help="torch's; None: the cores given")
    flag("--torch-deterministic", action=yes_no, default=True, help="cuDNN's kernels")
    flag("--checkpoint-frequency", type=int, default=250_000, help="env steps (0: none)")
    flag("--resume", metavar="RUN_DIR", help="go on from its last checkpoint")
    flag = p.add_argument_group("evaluation").add_argument
    flag("--eval-episodes", type=int, default=10, help="whole games at the end")
    flag("--eval-epsilon", type=float, default=0.05, help="Nature's")
    flag("--eval-max-frames", type=int, default=18_000, help="a game's (Nature)")
    flag("--eval-model", metavar="PATH", help="evaluate a saved model, no training")
    flag("--capture-video", action="store_true", help="record the first game")
    args = p.parse_args(argv)
    if args.eval_model and args.resume:
        fail("--eval-model and --resume: one or the other")
    if args.eval_model or args.resume:  # the run's settings as defaults
        saved = run_settings(args.resume or args.eval_model, args.resume)
        p.set_defaults(**{k: v for k, v in saved.items() if k in vars(args)
                          and k not in ("eval_model", "resume", "capture_video")})
        args = p.parse_args(argv)
        for name in algorithm_flags if args.resume else []:
            old, new = saved.get(name, p.get_default(name)), vars(args)[name]
            if new != old:
                fail(f"--resume {args.resume}: --{name.replace('_', '-')} {new} would "
                     f"change the run, which started with {old}")
    for names, low, high in [  # "[": `low` itself is allowed, "(": not
            ("total_timesteps num_envs buffer_size batch_size learning_rate adam_eps "
             "target_network_frequency train_frequency eval_max_frames", "(0", math.inf),
            ("learning_starts checkpoint_frequency max_grad_norm", "[0", math.inf),
            ("gamma start_e end_e eval_epsilon", "[0", 1), ("seed", "[0", MAX_SEED),
            ("tau exploration_fraction", "(0", 1), ("threads", "[1", math.inf),
            ("eval_episodes", "(0", EVAL_GAMES_PER_SEED)]:
        for name in names.split():
            x, least, closed = vars(args)[name], float(low[1:]), low[0] == "["
            if x is not None and not (math.isfinite(x) and (
                    least < x <= high or closed and x == least)):
                bound = f"in {low}, {high}]" if high < math.inf else f">{'=' * closed} {least:g}"
                fail(f"argument --{name.replace('_', '-')}: must be a finite number {bound}, "
                     f"got {x}")
    if args.capture_video and not importlib.util.find_spec("imageio_ffmpeg"):
        fail("--capture-video needs imageio-ffmpeg: pip install moviepy")
    if args.bf16 and not bf16_supported(args.cuda):
        where = "GPU" if args.cuda and torch.cuda.is_available() else "CPU"
        fail(f"--bf16: this {where} has no fast bfloat16 (a CPU needs AVX512-BF16 or AMX)")
    if args.batch_size > args.buffer_size:
        fail("--batch-size cannot exceed --buffer-size")
    if args.buffer_size // args.num_envs < 2 * STACK:
        fail(f"--buffer-size: less than {2 * STACK} for each env")
    if args.total_timesteps < args.num_envs:
        fail("--total-timesteps: less than one step of each env")
    try:  # an unknown or non-Atari id, before anything is written
        atari_game(args.env_id)
    except BadInput as e:
        fail(e)
    if args.total_timesteps % args.num_envs:  # whole vector steps: round up
        steps = math.ceil(args.total_timesteps / args.num_envs) * args.num_envs
        print(f"note: --total-timesteps {args.total_timesteps} is not a multiple of "
              f"--num-envs {args.num_envs}; running {steps}", file=sys.stderr)
        args.total_timesteps = steps
    return args


def run_settings(given, resume):
    folder = given if resume else os.path.dirname(given)
    path, flag = os.path.join(folder, "args.json"), f"--resume {given}: " * bool(resume)
    if resume and not os.path.isfile(path):
        fail(f"{flag}not a run folder (no args.json there)")
    if resume and os.path.exists(os.path.join(folder, "eval.json")):
        fail(f"{flag}the run is finished (eval.json is there); there is nothing to resume")
    try:
        with open(path) as f:
            saved = json.load(f)
        script = saved.get("script", "another script" if resume else SCRIPT)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError) as e:
        fail(f"{flag}cannot read {path} ({type(e).__name__})")
    if script != SCRIPT:
        fail(f"{flag}a run of {script}, not of {SCRIPT}; resume it with that script"
             if resume else f"{given} was saved by {script}; evaluate it with that script")
    return saved


class BadInput(ValueError):
    """Bad input: main() says why in one line, exit code 2."""


def fail(message, code=2):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def atari_game(env_id):
    """'BreakoutNoFrameskip-v4' or 'ALE/Breakout-v5' -> 'breakout', the ROM name
    AtariVectorEnv takes."""
    try:
        game = gym.spec(env_id).kwargs.get("game")
    except gym.error.Error as e:
        raise BadInput(f"cannot make --env-id {env_id}: {e}") from None
    if game is None:
        raise BadInput(f"--env-id {env_id} is not an Atari game: use dqn_cartpole.py")
    return game


def bf16_supported(cuda):
    if cuda and torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    with contextlib.suppress(AttributeError, RuntimeError):  # torch's private probe
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def default_threads():
    """OMP_NUM_THREADS, else the CPU affinity (SLURM, taskset), not the machine's count."""
    with contextlib.suppress(KeyError, ValueError):
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


ENV_STREAM, EVAL_STREAM = 1, 3  # SeedSequence(seed)'s children: agent, env, torch, eval


def random_streams(seed, num_envs, resumed_at=0):
    """The agent's generator (exploration, replay sampling), the envs' seed (env i:
    env_seed + i) and torch's (the weights), apart; a run resumed at step n plays fresh
    games, from the env child's child n."""
    agent_ss, env_ss, torch_ss, _ = np.random.SeedSequence(seed).spawn(4)
    if resumed_at:
        env_ss = np.random.SeedSequence(seed, spawn_key=(ENV_STREAM, resumed_at))
    env_seed = int(env_ss.generate_state(1)[0]) % (EVAL_SEEDS_FROM - num_envs)
    return np.random.default_rng(agent_ss), env_seed, int(torch_ss.generate_state(1)[0])


def check_memory(args):
    """Refuse a replay memory that does not fit in RAM now (it gets filled)."""
    with contextlib.suppress(OSError, StopIteration), open("/proc/meminfo") as f:
        free = next(int(x.split()[1]) * 1024 for x in f if "MemAvail" in x)
        need = 0.4e9 + ReplayBuffer.BYTES_PER_SLOT * args.buffer_size  # 0.4: torch
        fits = max(0, (0.8 * free - 0.4e9) // ReplayBuffer.BYTES_PER_SLOT)
        if need > free:
            raise BadInput(f"this run needs {need / 1e9:.1f} GB of RAM, {free / 1e9:.1f} GB "
                           f"is available: pass a smaller --buffer-size (about {fits:,.0f} fits)")


class Logs:
    """The CSVs (line-buffered) and TensorBoard events under CleanRL's tags; from a
    checkpoint's `saved`, the CSVs are cut back to their length then."""
    TAGS = {  # CSV column: its TensorBoard tag
        "episodes": {"episodic_return": "charts/episodic_return",
                     "episodic_length": "charts/episodic_length",
                     "epsilon": "charts/epsilon", "resumed": None},
        "train": {"loss": "losses/td_loss", "q_values": "losses/q_values",
                  "learning_rate": "charts/learning_rate", "sps": "charts/SPS",
                  "grad_norm": "losses/grad_norm"}}

    def __init__(self, run_dir, total, saved=None, train_log_every=1_000):
        from torch.utils.tensorboard import SummaryWriter  # only in training
        self.run_dir, self.total, self.every = run_dir, total, train_log_every
        self.print_every = min(10_000, max(1, math.ceil(total / 10)))
        at = saved or {"train_log": 0, "print": self.print_every, "step": 0}
        self.next_train_log, self.next_print = at["train_log"], at["print"]
        # the step up to which every loss is known to be finite
        self.start_step = self.finite_until = at["step"]
        self.losses_finite = torch.ones((), dtype=torch.bool)  # train() sets it
        self.files = {}
        for name, columns in self.TAGS.items():
            path = os.path.join(run_dir, f"{name}.csv")
            if saved:
                os.truncate(path, saved[name])
            self.files[name] = open(path, "a" if saved else "w", newline="", buffering=1)
            if not saved:
                csv.writer(self.files[name]).writerow(["global_step", *columns])
        self.writer = SummaryWriter(run_dir, purge_step=saved and at["step"])
        self.start_time = time.time()

    def row(self, name, global_step, *values):
        csv.writer(self.files[name]).writerow([global_step, *values])
        for tag, value in zip(self.TAGS[name].values(), values):
            if tag:
                self.writer.add_scalar(tag, value, global_step)

    def episode(self, global_step, episodic_return, length, epsilon, resumed):
        self.row("episodes", global_step, episodic_return, length, round(epsilon, 4),
                 int(resumed))

    def train_step(self, global_step, loss, q_taken, lr, finite, grad_norm):
        if global_step >= self.next_train_log:  # .item() syncs: only here
            self.check_finite(finite, global_step)
            self.row("train", global_step, loss.item(), q_taken.mean().item(), lr,
                     int(self.sps(global_step)), grad_norm.item())
            self.next_train_log = global_step + self.every

    def sps(self, global_step):
        return (global_step - self.start_step) / max(time.time() - self.start_time, 1e-9)

    def check_finite(self, losses_finite, global_step):  # one host wait
        if not losses_finite:
            raise FloatingPointError(f"the loss became inf or nan after global step "
                                     f"{self.finite_until}; stopping the run")
        self.finite_until = global_step

    def progress(self, global_step, epsilon, recent_returns):
        if global_step >= self.next_print or global_step >= self.total:
            sps, left = max(self.sps(global_step), 1e-9), self.total - global_step
            mean = f"{np.mean(recent_returns):7.1f}" if recent_returns else "      -"
            print(f"step {global_step:>8}/{self.total} | {sps:6.0f} SPS | ETA "
                  f"{left / sps:5.0f}s | return (last {len(recent_returns)}) {mean} | "
                  f"epsilon {epsilon:.3f}", flush=True)
            self.next_print = global_step + self.print_every

    def state(self, step):
        state = {"step": step, "train_log": self.next_train_log, "print": self.next_print}
        for name, f in self.files.items():
            f.flush()
            state[name] = os.fstat(f.fileno()).st_size
        return state

    def close(self):
        for f in [*self.files.values(), self.writer]:
            with contextlib.suppress(OSError):  # a full disk: the rows stay
                f.close()


BUFFER = ["frames", "actions", "rewards", "terminated", "first", "valid", "pos", "size"]


def save_checkpoint(logs, step, q_network, target_network, optimizer, rb, rng,
                    recent_returns):
    """The buffer in checkpoint-<step>.npz, the rest in checkpoint.pt, each written aside
    and renamed, then the older buffer deleted: a kill leaves a whole checkpoint."""
    buffer, path = f"{logs.run_dir}/checkpoint-{step}.npz", f"{logs.run_dir}/checkpoint.pt"
    with open(buffer + ".tmp", "wb") as f:
        np.savez(f, **{key: getattr(rb, key) for key in BUFFER})
    os.replace(buffer + ".tmp", buffer)
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    torch.save({"q_network": q_network.state_dict(), "logs": logs.state(step),
                "target_network": target_network.state_dict(), "cuda_rng": cuda,
                "optimizer": optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(), "numpy_rng": rng.bit_generator.state,
                "recent_returns": [float(r) for r in recent_returns]}, path + ".tmp")
    os.replace(path + ".tmp", path)
    remove_checkpoints(logs.run_dir, keep=(path, buffer))


def remove_checkpoints(run_dir, keep=()):
    for path in set(glob.glob(f"{run_dir}/checkpoint*")) - set(keep):
        os.remove(path)


def load_checkpoint(run_dir):
    if not os.path.isfile(path := f"{run_dir}/checkpoint.pt"):
        raise BadInput(f"--resume {run_dir}: no checkpoint there")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        with np.load(f"{run_dir}/checkpoint-{checkpoint['logs']['step']}.npz") as f:
            checkpoint["buffer"] = {key: f[key] for key in BUFFER}
    except Exception as e:  # a damaged file
        why = (str(e).splitlines() or [type(e).__name__])[0]
        raise BadInput(f"--resume {run_dir}: its checkpoint is damaged ({why})") from None
    return checkpoint


def restore(checkpoint, q_network, target_network, optimizer, rb, rng, recent_returns):
    q_network.load_state_dict(checkpoint["q_network"])
    target_network.load_state_dict(checkpoint["target_network"])
    optimizer.load_state_dict(checkpoint["optimizer"])  # its moments and lr
    torch.set_rng_state(checkpoint["torch_rng"])
    if checkpoint["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
    rng.bit_generator.state = checkpoint["numpy_rng"]  # the buffer samples with it
    for key, array in checkpoint["buffer"].items():
        setattr(rb, key, array)
    recent_returns.extend(checkpoint["recent_returns"])
    return checkpoint["logs"]["step"]


def load_model(q_network, path):
    try:
        q_network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except FileNotFoundError:
        raise BadInput(f"model file not found: {path}") from None
    except Exception:  # not a model, or one of another game (--env-id)
        raise BadInput(f"{path} is not a saved model of {SCRIPT} for this game") from None


def write_video(frames, path):
    """15 fps (60 / frame skip 4); moviepy's own writer drops some last frames."""
    import imageio_ffmpeg  # only when a video is asked for
    os.makedirs(os.path.dirname(path), exist_ok=True)
    height, width = frames[0].shape[:2]  # 210 rows: no resize
    writer = imageio_ffmpeg.write_frames(path, (width, height), fps=15, macro_block_size=1)
    writer.send(None)  # start ffmpeg
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    print(f"video saved to {path}")


class Stopped(BaseException):  # Ctrl-C (exit 130) or SIGTERM (exit 143)
    signum, training = None, False


def on_signal(signum, frame):  # in training, train() stops between two steps
    Stopped.signum = signum
    if not Stopped.training:
        raise Stopped


def score(returns):
    return f"{returns.mean():.1f} ± {returns.std():.1f} over {len(returns)} games at epsilon"


def train_and_evaluate(args, device):
    check_memory(args)
    checkpoint = args.resume and load_checkpoint(args.resume)
    name = f"{args.env_id.replace('/', '-')}__{args.exp_name}__{args.seed}"
    # in nanoseconds: two runs started in the same second differ
    run_dir = os.path.normpath(args.resume or f"runs/{name}__{time.time_ns()}")
    model_path = os.path.join(run_dir, f"{args.exp_name}.pt")
    if not checkpoint:  # the settings, for --eval-model and --resume
        os.makedirs(run_dir)
        with open(os.path.join(run_dir, "args.json"), "w") as f:
            json.dump({**vars(args), "script": SCRIPT}, f, indent=2)
    saved = checkpoint and checkpoint["logs"]
    with (contextlib.closing(make_envs(args, args.num_envs)) as envs,
          contextlib.closing(Logs(run_dir, args.total_timesteps, saved)) as logs):
        q_network = QNetwork(envs.single_action_space.n).to(device)
        at = f", resumed at step {logs.start_step}" if checkpoint else ""
        print(f"run {os.path.basename(run_dir)}: logs in {run_dir}/{at}")
        try:
            Stopped.training = True
            train(args, envs, q_network, device, logs, checkpoint)
        except (KeyboardInterrupt, Stopped) as stop:  # keep the logs and model
            logs.check_finite(logs.losses_finite, logs.finite_until)  # or no model
            at = stop.args and f"step {stop.args[0]}" or "here"
            report = f"logs are complete up to {at}"
            if args.save_model:
                torch.save(q_network.state_dict(), model_path)
                report += f", model saved to {model_path}"
            if Stopped.signum == signal.SIGTERM:
                report += (f", checkpoint written: python {SCRIPT} --resume {run_dir} goes on"
                           if args.checkpoint_frequency else ", no checkpoint")
            raise Stopped(report) from None
        finally:
            Stopped.training = False
    if args.save_model:  # the model the summary reports: the final network
        torch.save(q_network.state_dict(), model_path)
    video = args.capture_video and f"videos/{os.path.basename(run_dir)}/eval-game-0.mp4"
    returns, lengths = evaluate(q_network, args, device, video)
    model = os.path.basename(model_path) if args.save_model else None
    with open(os.path.join(run_dir, "eval.json"), "w") as f:
        json.dump({"model": model, "step": args.total_timesteps, "returns": returns.tolist(),
                   "lengths": lengths.tolist(), "mean": returns.mean(), "std": returns.std(),
                   "eval_epsilon": args.eval_epsilon}, f, indent=2)
    remove_checkpoints(run_dir)  # the run is finished: nothing to resume
    files = ["args.json", "episodes.csv", "train.csv", "eval.json"] + [model] * bool(model)
    print(f"result: {score(returns)} {args.eval_epsilon}: the final network "
          f"(step {args.total_timesteps})")
    print(f"files:  {run_dir}/ ({', '.join(files)})")
    if model:
        print(f"again:  python {SCRIPT} --eval-model {model_path}")
        print(f"video:  python {SCRIPT} --eval-model {model_path} --capture-video")
    return returns


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(random_streams(args.seed, args.num_envs)[2])  # the weights
    torch.backends.cudnn.deterministic = args.torch_deterministic
    if args.cuda and not torch.cuda.is_available():
        print("note: --cuda given but no GPU is available", file=sys.stderr)
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    torch.set_num_threads(args.threads or default_threads())
    Stopped.signum, handlers = None, {}  # put back at the end
    if threading.current_thread() is threading.main_thread():  # only it can
        handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if not args.eval_model:
            return train_and_evaluate(args, device)
        with contextlib.closing(make_envs(args, 1, training=False)) as probe:
            q_network = QNetwork(probe.single_action_space.n).to(device)  # its actions
        load_model(q_network, args.eval_model)
        run = os.path.basename(os.path.dirname(os.path.abspath(args.eval_model)))
        video = args.capture_video and f"videos/{run}-eval/eval-game-0.mp4"
        returns, _ = evaluate(q_network, args, device, video)
        print(f"result: {score(returns)} {args.eval_epsilon}: {args.eval_model}")
        return returns
    except (KeyboardInterrupt, Stopped) as stop:  # in training or evaluation
        signum = Stopped.signum or signal.SIGINT  # a KeyboardInterrupt: Ctrl-C
        what = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted (Ctrl-C)"
        print(f"{what}: {(stop.args or ['no eval.json written'])[0]}", file=sys.stderr)
        sys.exit(128 + signum)
    except BadInput as e:
        fail(e)
    except FloatingPointError as e:  # the loss became inf or nan
        fail(e, 1)
    except OSError as e:  # the files written before stay as they were
        fail(f"cannot write {e.filename or 'a file'}: {e.strerror or e}", 1)
    finally:  # a later main() in this process starts unstopped
        Stopped.signum = None
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    main()
