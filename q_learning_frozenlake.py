"""Tabular Q-learning on FrozenLake-v1, one file, read top to bottom.

Q-learning: C. Watkins, "Learning from Delayed Rewards", PhD thesis, Cambridge 1989
(convergence proof: Watkins & Dayan, "Q-learning", Machine Learning 8, 1992). The update is the
lecture's (Lecture 03, Part 2):

    Q(s,a) <- Q(s,a) + alpha * [r + gamma * max_a' Q(s',a') - Q(s,a)]

The lecture's code gets 0.73 on most runs and 0.000 on some. Three changes make every seed learn
the gamma-optimal policy (0.740 of the 0.744 possible within the 100-step limit):
  1. no bootstrap from a *terminal* state, but bootstrap when the time limit cuts an episode
     short (the lecture's `done = terminated or truncated` treats the clock as a hole);
  2. ties in argmax broken at random (np.argmax always picks action 0 on a tie);
  3. epsilon and the learning rate decay over training: broad exploration early, settled
     estimates at the end.

At the end the greedy policy is evaluated on 10,000 episodes and printed beside the exact success
probability of that policy and of the best possible one, both computed from the environment's own
transition table (env.unwrapped.P). --map-name 8x8 uses FrozenLake8x8-v1 (200-step limit).

The lecture's names and this file's:

    lecture (QLearningAgent, train_q_learning)  this file
    q_table = np.zeros((n_states, n_actions))   q_table (lists of floats while training, see train)
    select_action(state, training=True)         the epsilon test in train, then greedy_action (random ties)
    select_action(state, training=False)        greedy_policy (one action per state)
    update(state, action, reward, next_state,   td_update(q_table, obs, action, reward, next_obs,
           done)                                          terminated, learning_rate, gamma)
    state, next_state                           obs, next_obs (gymnasium's names)
    done = terminated or truncated              terminated stops the bootstrap; truncated only ends the episode
    self.lr, self.epsilon (constants)           alpha, epsilon (annealed_learning_rate, linear_schedule)
    train_q_learning(n_episodes=10000)          train(env, episodes, ...)
    rewards_per_episode                         history, runs/<run_name>/episodes.csv
    one test episode, render_mode='human'       evaluate (10,000 episodes + exact DP), --capture-video

Examples:
    python q_learning_frozenlake.py --seed 1
    python q_learning_frozenlake.py --eval-model runs/<run_name>/q_table.npy
    python q_learning_frozenlake.py --eval-model runs/<run_name>/q_table.npy --capture-video
    python q_learning_frozenlake.py --map-name 8x8 --episodes 20000
    python q_learning_frozenlake.py --map "SFFF,FHFH,FFFH,HFFG" --no-is-slippery
"""

# ---- imports ----------------------------------------------------------------------------------
import argparse
import csv
import glob
import json
import math
import os
import signal
import sys
import time

import gymnasium as gym
import numpy as np


# ---- flags ------------------------------------------------------------------------------------
class ArgumentParser(argparse.ArgumentParser):
    """argparse's own complaints (an unknown flag, "abc" for a number) end in one `error:` line too."""

    def error(self, message):
        fail(message)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows every flag's default, and the docstring's example commands as they are written."""


def build_parser():
    p = ArgumentParser(
        description=__doc__.splitlines()[0] + "\nDeparts from the lecture's code: no bootstrap cut at the time limit,\n"
        "ties in argmax broken at random (the lecture: np.argmax, always action 0), alpha and epsilon decay.",
        epilog="examples:\n" + __doc__.split("Examples:\n")[1].strip("\n"),
        formatter_class=HelpFormatter, allow_abbrev=False)
    g = p.add_argument_group("algorithm")
    g.add_argument("--episodes", type=int, default=10_000, help="training episodes (the lecture's budget)")
    g.add_argument("--learning-rate", type=float, default=0.1, help="alpha at the start of training")
    g.add_argument("--anneal-lr", action=argparse.BooleanOptionalAction, default=True,
                   help="decay alpha linearly to 0 over training (the lecture keeps 0.1)")
    g.add_argument("--gamma", type=float, default=0.99, help="discount factor")
    g.add_argument("--start-e", type=float, default=1.0, help="epsilon at the start (the lecture: 0.1 throughout)")
    g.add_argument("--end-e", type=float, default=0.1, help="epsilon after the decay")
    g.add_argument("--exploration-fraction", type=float, default=0.5,
                   help="fraction of the training episodes over which epsilon decays linearly")
    g.add_argument("--map-name", type=str, default="4x4", help="4x4 (FrozenLake-v1) or 8x8 (FrozenLake8x8-v1)")
    g.add_argument("--map", type=str, default=None,
                   help='a custom map instead of --map-name, rows separated by commas: "SFFF,FHFH,FFFH,HFFG"')
    g.add_argument("--is-slippery", action=argparse.BooleanOptionalAction, default=True,
                   help="the ice moves you sideways 2/3 of the time (--no-is-slippery: never)")
    g = p.add_argument_group("run and logs")
    g.add_argument("--exp-name", type=str, default=os.path.basename(__file__)[: -len(".py")],
                   help="the middle part of the run name runs/<env>__<exp-name>__<seed>__<time>/")
    g.add_argument("--seed", type=int, default=1, help="seeds the agent, the env and (disjointly) the evaluation")
    g.add_argument("--save-model", action=argparse.BooleanOptionalAction, default=True,
                   help="save the Q-table as runs/<run_name>/q_table.npy")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-episodes", type=int, default=10_000, help="greedy episodes of the final evaluation")
    g.add_argument("--eval-model", "--eval-q-table", type=str, default=None,
                   help="evaluate this saved q_table.npy, no training; settings come from the args.json beside it "
                   "(--eval-q-table: the same flag)")
    g.add_argument("--capture-video", action="store_true",
                   help="record greedy episodes as mp4 to videos/<run_name>/ (needs pygame, moviepy)")
    g.add_argument("--video-episodes", type=int, default=1, help="how many greedy episodes --capture-video records")
    return p


def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    p = build_parser()
    args = p.parse_args(argv)
    if args.eval_model is not None:
        # the run's own settings (map, slipperiness, seed, ...) become the defaults; flags typed now still win
        p.set_defaults(**read_saved_args(args.eval_model, p))
        args = p.parse_args(argv)
    check_args(args, given={a.split("=")[0] for a in argv if a.startswith("--")})
    return args


# ---- env --------------------------------------------------------------------------------------
def make_env(map_name="4x4", custom_map=None, is_slippery=True, max_episode_steps=None, render_mode=None):
    """FrozenLake with its registered time limit (100 steps; 200 for FrozenLake8x8-v1)."""
    kwargs = {"is_slippery": is_slippery, "render_mode": render_mode}
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    if custom_map is not None:
        return gym.make("FrozenLake-v1", desc=custom_map, **kwargs)
    return gym.make("FrozenLake8x8-v1" if map_name == "8x8" else "FrozenLake-v1", **kwargs)


def random_streams(seed):
    """The agent's random stream and the env's seed, independent of each other, from one --seed.

    np.random.default_rng(s) and an env reset with seed=s would be one and the same PCG64 stream (gymnasium seeds
    with SeedSequence(s) too): the agent's exploration draws would be the ice's slips. SeedSequence(s).spawn gives
    independent children, one for the agent, one that seeds the env; the env seed has 31 bits, below the
    evaluation's seeds (evaluation_seed: 2**32 and up)."""
    agent, env = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(agent), int(env.generate_state(1)[0] >> 1)


def transition_arrays(env):
    """env.unwrapped.P as arrays. P[s][a] is a list of (prob, next_state, reward, terminated),
    one entry per way the ice can make you slide; entry k goes to index [s, a, k]."""
    P = env.unwrapped.P
    n_states, n_actions = len(P), len(P[0])
    n_outcomes = max(len(P[s][a]) for s in P for a in P[s])
    prob = np.zeros((n_states, n_actions, n_outcomes))
    next_state = np.zeros((n_states, n_actions, n_outcomes), dtype=np.int64)
    reward = np.zeros((n_states, n_actions, n_outcomes))
    terminated = np.ones((n_states, n_actions, n_outcomes), dtype=bool)
    for s in P:
        for a in P[s]:
            for k, (p, s_next, r, term) in enumerate(P[s][a]):
                prob[s, a, k], next_state[s, a, k], reward[s, a, k], terminated[s, a, k] = p, s_next, r, term
    return prob, next_state, reward, terminated


# ---- Q-table (the whole "network" of tabular Q-learning) --------------------------------------
def greedy_action(q_values, tie_draw):
    """argmax_a Q(s,a), ties broken at random using a uniform draw in [0, 1).

    np.argmax returns the *first* maximum, so on the all-zero initial table it always picks
    action 0 (LEFT). On FrozenLake that walks into the wall, the agent rarely reaches the goal,
    Q stays zero, and the lecture's run can end with a success rate of 0.000."""
    max_q = max(q_values)
    best_actions = [action for action, q in enumerate(q_values) if q == max_q]
    return best_actions[int(tie_draw * len(best_actions))]


def greedy_policy(q_table, rng):
    """The deterministic policy the Q-table defines: one action per state, ties broken at random once."""
    return np.array([greedy_action(q_values, rng.random()) for q_values in np.asarray(q_table).tolist()])


# ---- schedule ---------------------------------------------------------------------------------
def linear_schedule(start, end, duration, t):
    """From `start` to `end` linearly over `duration` episodes, then `end` (CleanRL's schedule)."""
    fraction_done = min(t / duration, 1.0) if duration > 0 else 1.0
    return start + fraction_done * (end - start)


def annealed_learning_rate(learning_rate, episode, episodes, anneal_lr):
    """alpha decays linearly to 0: large steps early spread the goal's reward back quickly, small steps
    late average out the slippery ice's noise so Q settles (the convergence proof asks for step sizes
    that shrink; the lecture's constant 0.1 keeps Q jittering around Q*)."""
    return learning_rate * (1.0 - episode / episodes) if anneal_lr else learning_rate


# ---- TD target and update ---------------------------------------------------------------------
def td_update(q_table, obs, action, reward, next_obs, terminated, learning_rate, gamma):
    """One Q-learning step: Q(s,a) <- Q(s,a) + alpha * [r + gamma * max_a' Q(s',a') - Q(s,a)].

    `terminated` (fell in a hole, reached the goal): there is no future, the target is r alone.
    A *truncated* step (the time limit) is not passed here as terminal: s' is an ordinary state the
    clock happened to stop in, its value is not 0, so the target bootstraps from it as usual. This
    is how Watkins' update is defined; the clock is not part of the state, so treating it as a
    terminal would teach Q that some ice is worth 0."""
    if terminated:
        td_target = reward
    else:
        td_target = reward + gamma * max(q_table[next_obs])
    td_error = td_target - q_table[obs][action]
    q_table[obs][action] += learning_rate * td_error
    return td_error


# ---- loop -------------------------------------------------------------------------------------
def train(env, episodes, learning_rate=0.1, anneal_lr=True, gamma=0.99, start_e=1.0, end_e=0.1,
          exploration_fraction=0.5, seed=1, print_every=0, writer=None, q_table=None):
    """Epsilon-greedy Q-learning. Returns the Q-table and one (episode, return, length, epsilon,
    learning_rate) row per episode; each row also goes to `writer` (a csv.writer) as it is made,
    and a progress line is printed every `print_every` episodes (0: never). A `q_table` given as
    lists is trained in place (so a run stopped half-way still has it)."""
    n_states, n_actions = env.observation_space.n, env.action_space.n
    max_steps = env.spec.max_episode_steps
    rng, env_seed = random_streams(seed)  # all of the agent's randomness; the env has its own
    # One row of Q-values per state, all 0 at the start as in the lecture. A list of lists while
    # training: on rows of 4 numbers plain Python is several times faster than a numpy call.
    if q_table is None:
        q_table = [[0.0] * n_actions for _ in range(n_states)]
    history = []
    start_time = time.time()

    for episode in range(episodes):
        epsilon = linear_schedule(start_e, end_e, exploration_fraction * episodes, episode)
        alpha = annealed_learning_rate(learning_rate, episode, episodes, anneal_lr)
        # Draw this episode's random numbers in three numpy calls, not three calls per step;
        # .tolist() makes indexing them plain Python (no per-step numpy overhead).
        explore_draws = rng.random(max_steps).tolist()
        random_actions = rng.integers(n_actions, size=max_steps).tolist()
        tie_draws = rng.random(max_steps).tolist()

        # Seed the env once; later resets continue its random stream, so --seed reproduces the run.
        obs, _ = env.reset(seed=env_seed if episode == 0 else None)
        episode_return, step = 0.0, 0
        while True:
            if explore_draws[step] < epsilon:
                action = random_actions[step]
            else:
                action = greedy_action(q_table[obs], tie_draws[step])
            next_obs, reward, terminated, truncated, _ = env.step(action)
            # `terminated`, not `terminated or truncated`: a time-limit stop still bootstraps
            td_update(q_table, obs, action, reward, next_obs, terminated, alpha, gamma)
            obs = next_obs
            episode_return += reward
            step += 1
            if terminated or truncated:
                break
        history.append((episode + 1, episode_return, step, epsilon, alpha))
        if writer is not None:
            writer.writerow(history[-1])

        if print_every and (episode + 1) % print_every == 0:
            recent = [row[1] for row in history[-1000:]]
            print(f"episode {episode + 1}/{episodes}  {(episode + 1) / max(time.time() - start_time, 1e-9):,.0f} episodes/s  "
                  f"success (last {len(recent)}) {np.mean(recent):.3f}  epsilon {epsilon:.3f}  alpha {alpha:.4f}")
    return np.array(q_table), history


# ---- eval -------------------------------------------------------------------------------------
def evaluation_seed(seed, stream):
    """Seed of evaluation stream `stream` (1: the simulated episodes, 2, 3, ...: the recorded ones) of
    training seed `seed`: seed + stream * 2**32. numpy's SeedSequence reads an int as its 32-bit words,
    low word first, so this is the entropy [seed, stream]; training's streams are children spawned from
    SeedSequence(seed) and an env seed below 2**31 (random_streams). So no two training seeds, and no
    training and evaluation, share a random stream."""
    return seed + stream * 2**32


def simulate_success_rate(env, policy, episodes, rng):
    """Run `episodes` episodes of a fixed policy, all at once, and return the fraction that reach
    the goal within the time limit.

    A faithful numpy simulation of the env, not an approximation: it samples the start state from
    env.unwrapped.initial_state_distrib and each step exactly as FrozenLakeEnv.step does (draw
    u ~ U[0,1), take the first entry k of P[s][a] whose cumulative probability exceeds u), with
    the same rewards, terminations and time limit, just 10,000 episodes per numpy call instead of
    one env.step at a time (which would take seconds)."""
    prob, next_state, reward, terminated = transition_arrays(env)
    all_states = np.arange(len(policy))
    cumulative = np.cumsum(prob[all_states, policy], axis=1)  # [s, k] for the policy's action in s
    start_probs = env.unwrapped.initial_state_distrib
    obs = rng.choice(len(start_probs), size=episodes, p=start_probs)
    running = np.ones(episodes, dtype=bool)
    successes = 0.0
    for _ in range(env.spec.max_episode_steps):
        uniform_draws = rng.random(running.sum())
        current, action = obs[running], policy[obs[running]]
        outcome = (cumulative[current] > uniform_draws[:, None]).argmax(axis=1)  # which slide happens
        successes += reward[current, action, outcome].sum()
        obs[running] = next_state[current, action, outcome]
        running[running] = ~terminated[current, action, outcome]
        if not running.any():
            break
    return successes / episodes


def exact_success_probability(env, policy=None):
    """P(reach the goal within the time limit), by dynamic programming over the env's own P.

    success[s] = P(goal within the remaining t steps | in s). With t = 0 it is 0; each extra step:
    success[s] = sum_k prob[s,a,k] * (reward + (not terminated) * success[next_state]).
    With `policy`, a = policy[s]; without, a is the best action for the steps left (the optimum,
    which may act differently near the time limit, so no fixed policy does better)."""
    prob, next_state, reward, terminated = transition_arrays(env)
    success = np.zeros(prob.shape[0])
    for _ in range(env.spec.max_episode_steps):
        success_by_action = (prob * (reward + ~terminated * success[next_state])).sum(axis=2)
        if policy is None:
            success = success_by_action.max(axis=1)
        else:
            success = success_by_action[np.arange(len(policy)), policy]
    return float(env.unwrapped.initial_state_distrib @ success)


def evaluate(env, q_table, episodes, seed):
    """The greedy policy, its success rate over `episodes` simulated episodes, the exact success
    probability of that policy and the best achievable (both within the env's time limit)."""
    rng = np.random.default_rng(evaluation_seed(seed, 1))  # a stream of its own: training draws don't shift it
    policy = greedy_policy(q_table, rng)
    return {"success_rate": float(simulate_success_rate(env, policy, episodes, rng)), "episodes": episodes,
            "exact_this_policy": exact_success_probability(env, policy),
            "best_achievable": exact_success_probability(env),
            "max_episode_steps": env.spec.max_episode_steps, "policy": policy.tolist()}


def draw_grids(env, q_table, policy):
    """The greedy policy as arrows on the map (holes H, goal G) and max_a Q(s,a) as a grid."""
    desc = env.unwrapped.desc.astype(str)
    arrows = "←↓→↑"  # FrozenLake's actions 0, 1, 2, 3
    n_rows, n_cols = desc.shape
    values = q_table.max(axis=1).reshape(n_rows, n_cols)
    lines = ["greedy policy         max_a Q(s,a)"]
    for row in range(n_rows):
        cells = [desc[row, col] if desc[row, col] in "HG" else arrows[policy[row * n_cols + col]]
                 for col in range(n_cols)]
        lines.append(" ".join(cells).ljust(22) + " ".join(f"{v:.3f}" for v in values[row]))
    return "\n".join(lines)


def record_video(args, policy, video_dir):
    """Play --video-episodes greedy episodes in the real, rendered env and write one mp4 each to video_dir.

    (The evaluation above simulates episodes without pictures; these are played by FrozenLakeEnv itself,
    seeded with evaluation streams 2, 3, ... of --seed, which no other --seed and no training uses.)"""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame draws off screen, no display needed
    try:
        import moviepy  # noqa: F401  (RecordVideo writes the mp4 files with it)
        import pygame  # noqa: F401  (FrozenLake draws its frames with it)
    except ImportError:
        fail("--capture-video needs pygame and moviepy: pip install -r requirements.txt")
    env = make_env(args.map_name, map_rows(args.map), args.is_slippery, render_mode="rgb_array")
    env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda episode: True, disable_logger=True)
    try:
        for episode in range(args.video_episodes):
            obs, _ = env.reset(seed=evaluation_seed(args.seed, 2 + episode))
            terminated = truncated = False
            while not (terminated or truncated):
                obs, _, terminated, truncated, _ = env.step(int(policy[obs]))
    finally:
        env.close()  # also writes the last video
    return sorted(glob.glob(os.path.join(video_dir, "*.mp4")))


# ---- plumbing ---------------------------------------------------------------------------------
# Everything below is argument checks, files and printing: no part of the algorithm.
SCRIPT = os.path.basename(__file__)


def fail(message):
    """Bad input: one line on stderr and exit code 2, never a traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_args(args, given=()):
    """Refuse bad settings up front, each with one line. `given`: the flags typed on the command line."""
    for name, value in vars(args).items():
        if isinstance(value, float) and not math.isfinite(value):
            fail(f"--{name.replace('_', '-')} must be a finite number, got {value}")
    if not 0 <= args.seed <= 2**32 - 1:
        fail(f"--seed must be in [0, 2**32 - 1] (numpy and gymnasium seeds), got {args.seed}")
    if "--map" in given and "--map-name" in given:
        fail("give --map (a custom map) or --map-name (4x4 or 8x8), not both")
    if "--map-name" in given:
        args.map = None  # a saved run's custom map gives way to the map named now
    if args.map is not None:
        args.map = ",".join(map_rows(args.map))
    elif args.map_name not in ("4x4", "8x8"):
        fail(f"--map-name must be 4x4 or 8x8, got {args.map_name!r}")
    for name in ("episodes", "eval_episodes", "video_episodes"):
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if not 0.0 < args.learning_rate <= 1.0:
        fail(f"--learning-rate must be in (0, 1], got {args.learning_rate}")
    if not 0.0 <= args.gamma <= 1.0:
        fail(f"--gamma must be in [0, 1], got {args.gamma}")
    for name in ("start_e", "end_e", "exploration_fraction"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            fail(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(args, name)}")
    # bytes per unit: a history row (a tuple of 5 numbers) per training episode; the simulated evaluation's arrays
    check_memory(args, {"episodes": 250, "eval_episodes": 64})


def check_memory(args, bytes_per_unit):
    """Refuse at once a size that cannot fit in memory (not after hours of training), naming what would fit."""
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return  # not Linux: no cheap way to ask
    need = {name: per_unit * getattr(args, name) for name, per_unit in bytes_per_unit.items()}
    if sum(need.values()) > available:
        name = max(need, key=need.get)
        fits = (available - sum(need.values()) + need[name]) // bytes_per_unit[name]
        fail(f"--{name.replace('_', '-')} {getattr(args, name)} needs {need[name] / 1e9:,.1f} GB of memory but "
             f"{available / 1e9:.1f} GB is available" + (f"; at most {fits:,} fits" if fits > 0 else ""))


def map_rows(text):
    """'SFFF,FHFH,FFFH,HFFG' -> ['SFFF', 'FHFH', 'FFFH', 'HFFG'] (None stays None), or fail with the reason."""
    if text is None:
        return None
    rows = [row.strip() for row in text.split(",")]
    if any(len(row) != len(rows[0]) for row in rows) or not rows[0]:
        fail(f"--map must be rectangular (rows of equal, non-zero length), got {text!r}")
    if set("".join(rows)) - set("SFHG"):
        fail(f"--map may only contain S, F, H, G, got {text!r}")
    if "S" not in text or "G" not in text:
        fail(f"--map needs a start S and a goal G, got {text!r}")
    return rows


def read_saved_args(path, parser):
    """The settings in the args.json beside a saved Q-table (none if there is none), as parser defaults."""
    args_path = os.path.join(os.path.dirname(path), "args.json")
    if not os.path.isfile(args_path):
        return {}
    try:
        with open(args_path) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        fail(f"{args_path} is not a readable args.json")
    if not isinstance(saved, dict):
        fail(f"{args_path} is not a readable args.json")
    if saved.get("script", SCRIPT) != SCRIPT:
        fail(f"{path} was saved by {saved['script']}; evaluate it with that script")
    if isinstance(saved.get("map"), list):  # args.json of older runs kept the map as a list of rows
        saved["map"] = ",".join(saved["map"])
    known = set(vars(parser.parse_args([]))) - {"eval_model", "capture_video"}  # the run's settings, not what to do now
    return {name: value for name, value in saved.items() if name in known}


def load_q_table(path, shape):
    """A saved Q-table as float64 of the given shape, or one `error:` line saying why not. Loaded with
    allow_pickle=False (a pickle can run code); numpy's own messages are not passed on, as they advise
    allow_pickle=True."""
    if not os.path.isfile(path):
        fail(f"--eval-model: no such file {path!r}")
    not_a_model = f"{path} is not a saved model of {SCRIPT}"
    try:
        q_table = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        fail(f"{not_a_model} (not a .npy array of numbers)")
    if not isinstance(q_table, np.ndarray):  # an .npz archive
        q_table.close()
        fail(f"{not_a_model} (an .npz archive, not one .npy array)")
    if q_table.dtype.kind not in "iuf":
        fail(f"{not_a_model} (it holds {q_table.dtype} values, not real numbers)")
    if q_table.shape != shape:
        fail(f"{not_a_model} for this map (shape {q_table.shape}, this map needs {shape})")
    bad_rows = sorted({int(row) for row in np.argwhere(~np.isfinite(q_table))[:, 0]})
    if bad_rows:
        fail(f"{not_a_model} (NaN or infinite Q-values in the rows of states {bad_rows})")
    return q_table.astype(np.float64)


def summary(result, source):
    """The headline (the first number after `result: `) with the exact numbers beside it."""
    return (f"result: {result['success_rate']:.4f} greedy success rate over {result['episodes']} episodes: {source} "
            f"(exact: {result['exact_this_policy']:.4f}; best achievable: {result['best_achievable']:.4f}; "
            f"within {result['max_episode_steps']} steps)")


def main(argv=None):
    args = parse_args(argv)
    env = make_env(args.map_name, map_rows(args.map), args.is_slippery)
    try:
        shape = (int(env.observation_space.n), int(env.action_space.n))  # plain ints in messages
        if args.eval_model is not None:  # evaluate a saved table, no training
            q_table = load_q_table(args.eval_model, shape)
            result = evaluate(env, q_table, args.eval_episodes, args.seed)
            print(draw_grids(env, q_table, np.array(result["policy"])))
            if args.capture_video:
                run_folder = os.path.basename(os.path.dirname(os.path.abspath(args.eval_model)))
                videos = record_video(args, result["policy"], os.path.join("videos", f"{run_folder}-eval"))
                print(f"video:  {len(videos)} mp4 in videos/{run_folder}-eval/")
            print(summary(result, args.eval_model))
            return

        signal.signal(signal.SIGTERM, on_sigterm)  # a scheduler's stop ends the run as Ctrl-C does
        run_name = f"{env.spec.id}__{args.exp_name}__{args.seed}__{int(time.time())}"
        try:
            run_name = new_run_dir(run_name)
            train_and_report(args, env, run_name)
        except OSError as e:  # no space left, no permission: which file and why; what was written stays as it is
            print(f"error: cannot write {e.filename or f'runs/{run_name}/'}: {e.strerror or e}", file=sys.stderr)
            sys.exit(1)
    except (KeyboardInterrupt, Terminated) as stop:  # one line, no traceback; the env is closed below all the same
        print("terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted (Ctrl-C)", file=sys.stderr)
        sys.exit(143 if isinstance(stop, Terminated) else 130)
    finally:
        env.close()


def train_and_report(args, env, run_name):
    shape = (int(env.observation_space.n), int(env.action_space.n))
    run_dir = os.path.join("runs", run_name)
    with open(os.path.join(run_dir, "args.json"), "w") as f:
        json.dump({**vars(args), "script": SCRIPT}, f, indent=2)
    files = ["args.json", "episodes.csv"]

    start_time = time.time()
    q_table = [[0.0] * shape[1] for _ in range(shape[0])]  # trained in place: a stopped run still saves it
    try:
        # line-buffered: each episode's row is on disk as soon as it is written, so a run can be plotted as it goes
        with open(os.path.join(run_dir, "episodes.csv"), "w", newline="", buffering=1) as f:
            writer = csv.writer(f)
            writer.writerow(["episode", "return", "length", "epsilon", "learning_rate"])
            q_table, history = train(env, args.episodes, args.learning_rate, args.anneal_lr, args.gamma, args.start_e,
                                     args.end_e, args.exploration_fraction, args.seed,
                                     print_every=min(10_000, max(1, math.ceil(args.episodes / 10))), writer=writer,
                                     q_table=q_table)
    except (KeyboardInterrupt, Terminated) as stop:
        if args.save_model:
            save_file(lambda path: np.save(path, np.array(q_table)), os.path.join(run_dir, "q_table.npy"))
        what = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted (Ctrl-C)"
        print(f"{what}: episodes.csv is complete up to here" + (", the Q-table is saved" if args.save_model else ""),
              file=sys.stderr)
        sys.exit(143 if isinstance(stop, Terminated) else 130)
    steps = sum(row[2] for row in history)
    print(f"trained {args.episodes} episodes, {steps} steps in {time.time() - start_time:.1f} s")

    if args.save_model:
        save_file(lambda path: np.save(path, q_table), os.path.join(run_dir, "q_table.npy"))
        files.append("q_table.npy")
    result = evaluate(env, q_table, args.eval_episodes, args.seed)
    with open(os.path.join(run_dir, "eval.json"), "w") as f:
        json.dump(result, f, indent=2, allow_nan=False)
    files.append("eval.json")
    print(draw_grids(env, q_table, np.array(result["policy"])))
    videos = record_video(args, result["policy"], os.path.join("videos", run_name)) if args.capture_video else []

    print(summary(result, "the final Q-table"))
    videos_note = f", videos/{run_name}/ ({len(videos)} mp4)" if videos else ""
    print(f"files:  {run_dir}/ ({', '.join(files)}){videos_note}")
    plot = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks", "plot_results.py"))
    print(f"plot:   python {plot} {run_dir}")
    if args.save_model:
        model = os.path.join(run_dir, "q_table.npy")
        script = os.path.relpath(__file__)  # so the commands run as printed from where this run started
        print(f"again:  python {script} --eval-model {model}")
        print(f"video:  python {script} --eval-model {model} --capture-video")
    else:
        print("again:  the Q-table was not saved (--no-save-model)")


class Terminated(Exception):
    """SIGTERM, as a scheduler sends it (SLURM at a time limit or a preemption): the run stops as on Ctrl-C."""


def on_sigterm(signum, frame):
    raise Terminated


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


if __name__ == "__main__":
    main()
