"""DQN: deep Q-learning with experience replay and a target network.

Mnih et al. 2015, "Human-level control through deep reinforcement learning" (Nature 518), Algorithm 1,
on an environment with a vector observation and a discrete action space (CartPole-v1 by default).
Lecture 03, Parts 3-5, builds the same agent step by step (Part 6 the variants); the names follow the lecture.

    python dqn_cartpole.py --seed 1
    python dqn_cartpole.py --env-id Acrobot-v1 --total-timesteps 200000

Every other DQN in this collection is dqn_cartpole.py plus one idea: `diff dqn_cartpole.py double_dqn.py`.
"""
import argparse
import copy
import csv
import json
import os
import sys
import time
from collections import deque

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------- arguments
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.error = fail  # argparse's own complaints (an unknown flag, "abc" for a number) are one line too
    p.add_argument("--exp-name", default=os.path.basename(__file__)[: -len(".py")])
    p.add_argument("--env-id", default="CartPole-v1", help="any env with a Box observation and Discrete actions")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--total-timesteps", type=int, default=100_000, help="environment steps, summed over envs")
    p.add_argument("--num-envs", type=int, default=1)
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--anneal-lr", action=argparse.BooleanOptionalAction, default=True,
                   help="decay the learning rate linearly to 0 over the run")
    p.add_argument("--adam-eps", type=float, default=1e-4)
    p.add_argument("--buffer-size", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--tau", type=float, default=1.0, help="target update rate: 1 = hard copy, <1 = Polyak")
    p.add_argument("--target-network-frequency", type=int, default=500, help="env steps between target updates")
    p.add_argument("--train-frequency", type=int, default=4, help="env steps between gradient steps")
    p.add_argument("--learning-starts", type=int, default=1_000)
    p.add_argument("--start-e", type=float, default=1.0)
    p.add_argument("--end-e", type=float, default=0.1)
    p.add_argument("--exploration-fraction", type=float, default=0.2, help="fraction of the run epsilon decays over")
    p.add_argument("--hidden-dim", type=int, default=64)
    p.add_argument("--loss", choices=["mse", "huber"], default="mse")
    p.add_argument("--max-grad-norm", type=float, default=10.0)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--check-frequency", type=int, default=10_000,
                   help="env steps between greedy checks that keep the best model so far (0: keep only the last)")
    p.add_argument("--check-episodes", type=int, default=10, help="episodes per check, seeded apart from the eval's")
    p.add_argument("--eval-model", metavar="PATH", help="evaluate a saved model and exit, without training")
    p.add_argument("--save-model", action="store_true")
    p.add_argument("--capture-video", action="store_true", help="record videos/<run_name>/ (pygame, moviepy)")
    p.add_argument("--cuda", action="store_true", help="use a GPU when there is one")
    p.add_argument("--torch-deterministic", action=argparse.BooleanOptionalAction, default=True)
    args = p.parse_args(argv)

    positive = ["total_timesteps", "num_envs", "learning_rate", "adam_eps", "buffer_size", "batch_size",
                "target_network_frequency", "train_frequency", "hidden_dim", "max_grad_norm", "eval_episodes",
                "check_episodes"]
    for name in positive:
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    for name in ["learning_starts", "check_frequency"]:
        if getattr(args, name) < 0:
            fail(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.batch_size > args.buffer_size:
        fail(f"--batch-size ({args.batch_size}) cannot exceed --buffer-size ({args.buffer_size})")
    for name in ["gamma", "start_e", "end_e"]:
        if not 0 <= getattr(args, name) <= 1:
            fail(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(args, name)}")
    for name in ["tau", "exploration_fraction"]:
        if not 0 < getattr(args, name) <= 1:
            fail(f"--{name.replace('_', '-')} must be in (0, 1], got {getattr(args, name)}")
    return args


def fail(message):
    """Bad input ends the run with one line and exit code 2, as argparse does, never with a traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


# ----------------------------------------------------------------------------------------- environment
def make_envs(args, run_name):
    if args.capture_video:
        try:
            import moviepy  # noqa: F401  (RecordVideo writes mp4 files with it)
            import pygame  # noqa: F401  (CartPole draws its frames with it)
        except ImportError:
            fail("--capture-video needs pygame and moviepy: pip install pygame moviepy")

    def make_env(idx):
        def thunk():
            if args.capture_video and idx == 0:
                env = gym.make(args.env_id, render_mode="rgb_array")
                return gym.wrappers.RecordVideo(env, f"videos/{run_name}", disable_logger=True)
            return gym.make(args.env_id)
        return thunk

    try:
        # SAME_STEP autoreset: the step that ends an episode already returns the next episode's first
        # observation, and the true last observation of the old one comes in info["final_obs"].
        envs = gym.vector.SyncVectorEnv([make_env(i) for i in range(args.num_envs)],
                                        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    except gym.error.Error as e:
        fail(f"cannot make --env-id {args.env_id}: {e}")
    if not isinstance(envs.single_action_space, gym.spaces.Discrete):
        fail(f"{args.env_id} has a {type(envs.single_action_space).__name__} action space; DQN needs Discrete")
    if not (isinstance(envs.single_observation_space, gym.spaces.Box) and len(envs.single_observation_space.shape) == 1):
        fail(f"{args.env_id} needs a flat Box observation space, got {envs.single_observation_space}")
    envs.action_space.seed(args.seed)
    return envs


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


def linear_schedule(start_e, end_e, duration, t):
    """Epsilon falls linearly from start_e to end_e over `duration` steps, then stays at end_e."""
    return max(end_e, start_e + (end_e - start_e) * t / duration)


# ----------------------------------------------------------------------------------------- training
def compute_td_target(target_network, rewards, next_obs, terminated, gamma):
    """TD target of Mnih et al. 2015, Eq. (2): y = r + γ max_a' Q(s', a'; θ⁻), or y = r when s' is terminal.

    Only termination zeroes the bootstrap term. A time-limit truncation was stored with terminated = 0:
    the pole was still up, so the return would have gone on and the target must bootstrap.
    """
    with torch.no_grad():
        next_q_max = target_network(next_obs).max(dim=1).values
    return rewards + gamma * (1 - terminated) * next_q_max


def train(args, envs, q_network, device, logs, best):
    rng = np.random.default_rng(args.seed)
    n_actions = envs.single_action_space.n
    target_network = QNetwork(q_network.net[0].in_features, n_actions, args.hidden_dim).to(device)
    target_network.load_state_dict(q_network.state_dict())
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, eps=args.adam_eps, fused=True)
    rb = ReplayBuffer(args.buffer_size, envs.single_observation_space.shape[0], rng)
    loss_fn = F.mse_loss if args.loss == "mse" else F.smooth_l1_loss

    obs, _ = envs.reset(seed=args.seed)
    episode_returns, episode_lengths = np.zeros(args.num_envs), np.zeros(args.num_envs, dtype=int)
    recent_returns = deque(maxlen=20)
    start_time, global_step = time.time(), 0
    num_iterations = args.total_timesteps // args.num_envs
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
                q_values = q_network(torch.from_numpy(obs).to(device))
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
            if iteration % max(1, args.train_frequency // args.num_envs) == 0:
                if args.anneal_lr:
                    optimizer.param_groups[0]["lr"] = args.learning_rate * (1 - global_step / args.total_timesteps)
                obs_b, actions_b, rewards_b, next_obs_b, terminated_b = rb.sample(args.batch_size, device)
                td_target = compute_td_target(target_network, rewards_b, next_obs_b, terminated_b, args.gamma)
                q_taken = q_network(obs_b).gather(1, actions_b.unsqueeze(1)).squeeze(1)  # Q(s, a; θ)
                loss = loss_fn(q_taken, td_target)  # Eq. (3): (y - Q(s, a; θ))², or Huber with --loss huber
                if not torch.isfinite(loss):
                    logs.fault(f"loss became {loss.item()} at global step {global_step}; stopping the run")
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(q_network.parameters(), args.max_grad_norm)
                optimizer.step()
                logs.train_step(global_step, loss, q_taken)

            # Target network θ⁻ (Algorithm 1: reset to θ every C steps); --tau < 1 blends instead (Polyak).
            if iteration % max(1, args.target_network_frequency // args.num_envs) == 0:
                for target_param, param in zip(target_network.parameters(), q_network.parameters()):
                    target_param.data.copy_(args.tau * param.data + (1 - args.tau) * target_param.data)

        steps_done = global_step + args.num_envs
        if args.check_frequency and (steps_done % args.check_frequency < args.num_envs or iteration == num_iterations - 1):
            best.check(q_network, steps_done)  # every --check-frequency steps, and the last model competes too
        logs.progress(steps_done, epsilon, recent_returns, start_time)


# ----------------------------------------------------------------------------------------- evaluation
def evaluate(q_network, env_id, episodes, seed, device, max_episode_steps=None):
    """Greedy policy argmax_a Q(s, a), no exploration, on episodes seeded apart from training.

    The episodes run side by side, so one forward pass picks the actions of all those still going.
    """
    envs = [gym.make(env_id, max_episode_steps=max_episode_steps) for _ in range(episodes)]  # None: own limit
    obs = np.stack([env.reset(seed=seed + 100_000 + episode)[0] for episode, env in enumerate(envs)])
    returns, running = np.zeros(episodes), np.ones(episodes, dtype=bool)
    while running.any():
        with torch.inference_mode():
            actions = q_network(torch.as_tensor(obs, dtype=torch.float32, device=device)).argmax(dim=1).cpu().numpy()
        for i in np.flatnonzero(running):
            obs[i], reward, terminated, truncated, _ = envs[i].step(actions[i])
            returns[i] += reward
            running[i] = not (terminated or truncated)
    for env in envs:
        env.close()
    return returns


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

    def check(self, q_network, global_step):
        score = evaluate(q_network, self.env_id, self.episodes, self.seed + 1_000_000 + global_step, self.device,
                         self.max_episode_steps).mean()
        if score >= self.score:  # a tie goes to the later model, which has trained longer
            self.score, self.step, self.weights = score, global_step, copy.deepcopy(q_network.state_dict())


# ----------------------------------------------------------------------------------------- plumbing
class Logs:
    """runs/<run_name>/: args.json, episodes.csv, train.csv, eval.json; a progress line on stdout."""

    def __init__(self, run_dir, args, train_log_every=1_000, print_every=10_000):
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "args.json"), "w") as f:
            json.dump(vars(args), f, indent=2)
        self.episodes_file = open(os.path.join(run_dir, "episodes.csv"), "w", newline="")
        self.train_file = open(os.path.join(run_dir, "train.csv"), "w", newline="")
        self.episodes_csv, self.train_csv = csv.writer(self.episodes_file), csv.writer(self.train_file)
        self.episodes_csv.writerow(["global_step", "episodic_return", "episodic_length", "epsilon"])
        self.train_csv.writerow(["global_step", "loss", "q_values", "sps"])
        self.total, self.train_log_every, self.print_every = args.total_timesteps, train_log_every, print_every
        self.next_train_log, self.next_print, self.start_time = 0, print_every, time.time()

    def episode(self, global_step, episodic_return, episodic_length, epsilon):
        self.episodes_csv.writerow([global_step, episodic_return, episodic_length, round(epsilon, 4)])

    def train_step(self, global_step, loss, q_taken):
        if global_step >= self.next_train_log:  # .item() syncs, so only on the steps we log
            sps = global_step / max(time.time() - self.start_time, 1e-9)
            self.train_csv.writerow([global_step, loss.item(), q_taken.mean().item(), int(sps)])
            self.next_train_log = global_step + self.train_log_every

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
        self.episodes_file.close()
        self.train_file.close()


def load_model(q_network, path):
    try:
        q_network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except FileNotFoundError:
        fail(f"model file not found: {path}")
    except Exception as e:  # a pickle that is not ours, or weights of another shape
        fail(f"model file {path} does not fit this network (check --env-id and --hidden-dim): {str(e).splitlines()[0]}")


def main(argv=None):
    args = parse_args(argv)
    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    if args.cuda and not torch.cuda.is_available():
        print("note: --cuda given but no GPU is available; running on the CPU", file=sys.stderr)
    device = torch.device("cuda" if args.cuda and torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)  # a small MLP does not gain from more threads (benchmarks/)

    envs = make_envs(args, run_name)
    q_network = QNetwork(envs.single_observation_space.shape[0], envs.single_action_space.n, args.hidden_dim).to(device)
    if args.eval_model:
        load_model(q_network, args.eval_model)
        returns = evaluate(q_network, args.env_id, args.eval_episodes, args.seed, device)
        print(f"eval {args.eval_model}: {returns.mean():.1f} ± {returns.std():.1f} over {len(returns)} episodes")
        return returns

    run_dir = os.path.join("runs", run_name)
    logs = Logs(run_dir, args)
    best = BestModel(q_network, args.env_id, args.check_episodes, args.seed, device)
    print(f"run {run_name}: logs in {run_dir}/")
    try:
        train(args, envs, q_network, device, logs, best)
        interrupted = False
    except KeyboardInterrupt:
        print("interrupted: logs are complete up to here", file=sys.stderr)
        interrupted = True
    logs.close()
    envs.close()
    if args.save_model:
        torch.save(q_network.state_dict(), os.path.join(run_dir, f"{args.exp_name}.pt"))
        if args.check_frequency:
            torch.save(best.weights, os.path.join(run_dir, f"{args.exp_name}_best.pt"))
        print(f"model saved to {run_dir}/{args.exp_name}.pt" + (" (and _best.pt)" if args.check_frequency else ""))
    if interrupted:
        sys.exit(130)

    # The same evaluation episodes score the final model and, beside it, the best one the checks kept.
    final_returns = evaluate(q_network, args.env_id, args.eval_episodes, args.seed, device)
    result = {"final_returns": final_returns.tolist(), "final_mean": final_returns.mean(), "final_std": final_returns.std()}
    print(f"eval (final model): {final_returns.mean():.1f} ± {final_returns.std():.1f} over {len(final_returns)} greedy episodes")
    returns, kept = final_returns, ""
    if args.check_frequency:
        q_network.load_state_dict(best.weights)
        returns = evaluate(q_network, args.env_id, args.eval_episodes, args.seed, device)
        result.update(best_step=best.step, best_check_score=best.score)
        kept = f" (the best model, kept at step {best.step} with {best.score:.1f} on {args.check_episodes} check episodes)"
    result.update(returns=returns.tolist(), mean=returns.mean(), std=returns.std())
    with open(os.path.join(run_dir, "eval.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(f"eval: {returns.mean():.1f} ± {returns.std():.1f} over {len(returns)} greedy episodes{kept}")
    return returns


if __name__ == "__main__":
    main()
