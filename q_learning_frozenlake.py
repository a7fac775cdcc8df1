"""Tabular Q-learning on FrozenLake-v1, one file, read top to bottom.

Q-learning: C. Watkins, "Learning from Delayed Rewards", PhD thesis, Cambridge 1989 (convergence proof: Watkins &
Dayan, "Q-learning", Machine Learning 8, 1992). The update is the lecture's (Lecture 03, Part 2):

    Q(s,a) <- Q(s,a) + alpha * [r + gamma * max_a' Q(s',a') - Q(s,a)]

The lecture's code gets 0.73 on most runs and 0.000 on some. Three changes make every seed learn the gamma-optimal
policy (0.740 of the 0.744 possible within the 100-step limit):
  1. no bootstrap from a *terminal* state, but bootstrap when the time limit cuts an episode short (the lecture's
     `done = terminated or truncated` treats the clock as a hole);
  2. ties in argmax broken at random (np.argmax always picks action 0 on a tie);
  3. epsilon and the learning rate decay over training: broad exploration early, settled estimates at the end.

At the end the greedy policy is evaluated on 10,000 episodes and printed beside the exact success probability of
that policy and of the best possible one, both computed from the environment's own transition table
(env.unwrapped.P). --map-name 8x8 uses FrozenLake8x8-v1 (200-step limit).

The lecture's names and this file's:

    lecture (QLearningAgent, train_q_learning)  this file
    q_table = np.zeros((n_states, n_actions))   zero_q_table (lists of floats while training)
    select_action(state, training=True)         the epsilon test in train, then greedy_action (random ties)
    select_action(state, training=False)        the greedy policy in evaluate (one action per state)
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

SCRIPT = os.path.basename(__file__)


# ----------------------------------------------------------------------------------------- Q-table
def zero_q_table(n_states, n_actions):
    """Q(s, a) = 0 for every state and action, as in the lecture: one row per state, the whole "network" of tabular
    Q-learning. Lists, not np.zeros: on rows of 4 numbers plain Python is several times faster than numpy calls."""
    return [[0.0] * n_actions for _ in range(n_states)]


def greedy_action(q_values, tie_draw):
    """argmax_a Q(s,a), ties broken at random using a uniform draw in [0, 1).

    np.argmax returns the *first* maximum, so on the all-zero initial table it always picks action 0 (LEFT). On
    FrozenLake that walks into the wall, the agent rarely reaches the goal, Q stays zero, and the lecture's run can
    end with a success rate of 0.000."""
    max_q = max(q_values)
    best_actions = [action for action, q in enumerate(q_values) if q == max_q]
    return best_actions[int(tie_draw * len(best_actions))]


# ----------------------------------------------------------------------------------------- TD update
def td_update(q_table, obs, action, reward, next_obs, terminated, learning_rate, gamma):
    """One Q-learning step: Q(s,a) <- Q(s,a) + alpha * [r + gamma * max_a' Q(s',a') - Q(s,a)].

    `terminated` (fell in a hole, reached the goal): there is no future, the target is r alone. A *truncated* step
    (the time limit) is not passed here as terminal: s' is an ordinary state the clock happened to stop in, its value
    is not 0, so the target bootstraps from it as usual. This is how Watkins' update is defined; the clock is not part
    of the state, so treating it as a terminal would teach Q that some ice is worth 0."""
    if terminated:
        td_target = reward
    else:
        td_target = reward + gamma * max(q_table[next_obs])
    td_error = td_target - q_table[obs][action]
    q_table[obs][action] += learning_rate * td_error
    return td_error


# ----------------------------------------------------------------------------------------- schedules
def linear_schedule(start, end, duration, t):
    """From `start` to `end` linearly over `duration` episodes, then `end` (CleanRL's schedule)."""
    fraction_done = min(t / duration, 1.0) if duration > 0 else 1.0
    return start + fraction_done * (end - start)


def annealed_learning_rate(learning_rate, episode, episodes, anneal_lr):
    """alpha decays linearly to 0: large steps early spread the goal's reward back quickly, small steps late average
    out the slippery ice's noise so Q settles (the convergence proof asks for step sizes that shrink; the lecture's
    constant 0.1 keeps Q jittering around Q*)."""
    return learning_rate * (1.0 - episode / episodes) if anneal_lr else learning_rate


# ----------------------------------------------------------------------------------------- training loop
def train(env, episodes, learning_rate=0.1, anneal_lr=True, gamma=0.99, start_e=1.0, end_e=0.1,
          exploration_fraction=0.5, seed=1, print_every=0, writer=None, q_table=None):
    """Epsilon-greedy Q-learning. Returns the Q-table and one (episode, return, length, epsilon, learning_rate) row
    per episode, each also written to `writer` (a csv.writer) as it is made; a progress line every `print_every`
    episodes (0: never). A `q_table` given as lists is trained in place (so a run stopped half-way still has it)."""
    n_actions, max_steps = env.action_space.n, env.spec.max_episode_steps
    rng, env_seed = random_streams(seed)  # all of the agent's randomness; the env has its own
    q_table = zero_q_table(env.observation_space.n, n_actions) if q_table is None else q_table
    history, start_time = [], time.time()
    for episode in range(episodes):
        epsilon = linear_schedule(start_e, end_e, exploration_fraction * episodes, episode)
        alpha = annealed_learning_rate(learning_rate, episode, episodes, anneal_lr)
        # This episode's random numbers in three numpy calls, not three per step; .tolist(): plain Python indexing
        explore_draws = rng.random(max_steps).tolist()
        random_actions = rng.integers(n_actions, size=max_steps).tolist()
        tie_draws = rng.random(max_steps).tolist()
        # Seed the env once; later resets continue its random stream, so --seed reproduces the run.
        obs, _ = env.reset(seed=env_seed if episode == 0 else None)
        episode_return, step = 0.0, 0
        while True:
            # Epsilon-greedy: with probability epsilon a random action, else argmax_a Q(s, a) (ties at random).
            if explore_draws[step] < epsilon:
                action = random_actions[step]
            else:
                action = greedy_action(q_table[obs], tie_draws[step])
            next_obs, reward, terminated, truncated, _ = env.step(action)
            # `terminated`, not the lecture's `done = terminated or truncated`: a time-limit stop still bootstraps
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
            speed = (episode + 1) / max(time.time() - start_time, 1e-9)
            print(f"episode {episode + 1}/{episodes}  {speed:,.0f} episodes/s  success (last {len(recent)}) "
                  f"{np.mean(recent):.3f}  epsilon {epsilon:.3f}  alpha {alpha:.4f}")
    return np.array(q_table), history


# ----------------------------------------------------------------------------------------- evaluation
def evaluation_seed(seed, stream):
    """Seed of evaluation stream `stream` (1: the simulated episodes, 2, 3, ...: the recorded ones) of training seed
    `seed`: seed + stream * 2**32, which numpy's SeedSequence reads as the entropy [seed, stream] (32-bit words, low
    first). Training's streams are children spawned from SeedSequence(seed) and an env seed below 2**31
    (random_streams), so no two training seeds, and no training and evaluation, share a random stream."""
    return seed + stream * 2**32


def transition_arrays(env):
    """env.unwrapped.P as arrays prob, next_state, reward, terminated, each [s, a, k]: P[s][a] lists one (prob,
    next_state, reward, terminated) per way the ice can make you slide; shorter lists padded with prob 0."""
    P = env.unwrapped.P
    width = max(len(P[s][a]) for s in P for a in P[s])
    table = np.array([[P[s][a] + [(0.0, 0, 0.0, True)] * (width - len(P[s][a])) for a in P[s]] for s in P])
    return table[..., 0], table[..., 1].astype(np.int64), table[..., 2], table[..., 3].astype(bool)


def simulate_success_rate(env, policy, episodes, rng):
    """The fraction of `episodes` episodes of a fixed policy, all played at once, that reach the goal in time.

    A faithful numpy simulation of the env, not an approximation: it samples the start state from
    env.unwrapped.initial_state_distrib and each step exactly as FrozenLakeEnv.step does (draw u ~ U[0,1), take the
    first entry k of P[s][a] whose cumulative probability exceeds u), with the same rewards, terminations and time
    limit, just 10,000 episodes per numpy call instead of one env.step at a time (which would take seconds)."""
    prob, next_state, reward, terminated = transition_arrays(env)
    cumulative = np.cumsum(prob[np.arange(len(policy)), policy], axis=1)  # [s, k] for the policy's action in s
    start_probs = env.unwrapped.initial_state_distrib
    obs = rng.choice(len(start_probs), size=episodes, p=start_probs)
    running, successes = np.ones(episodes, dtype=bool), 0.0
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
    With `policy`, a = policy[s]; without, a is the best action for the steps left (the optimum, which may act
    differently near the time limit, so no fixed policy does better)."""
    prob, next_state, reward, terminated = transition_arrays(env)
    success = np.zeros(prob.shape[0])
    for _ in range(env.spec.max_episode_steps):
        by_action = (prob * (reward + ~terminated * success[next_state])).sum(axis=2)
        success = by_action.max(axis=1) if policy is None else by_action[np.arange(len(policy)), policy]
    return float(env.unwrapped.initial_state_distrib @ success)


def evaluate(env, q_table, episodes, seed):
    """The greedy policy (the lecture's select_action(state, training=False), ties broken at random once), its
    success over `episodes` simulated episodes, and the exact success of it and of the best possible policy."""
    rng = np.random.default_rng(evaluation_seed(seed, 1))  # a stream of its own: training draws don't shift it
    policy = np.array([greedy_action(q_values, rng.random()) for q_values in np.asarray(q_table).tolist()])
    return {"success_rate": float(simulate_success_rate(env, policy, episodes, rng)), "episodes": episodes,
            "exact_this_policy": exact_success_probability(env, policy),
            "best_achievable": exact_success_probability(env),
            "max_episode_steps": env.spec.max_episode_steps, "policy": policy.tolist()}


# ========================================================================================= plumbing
# What runs the lesson above: flags and their checks, seeds, the env, files, printing, videos, signals and main().

def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    p = ArgumentParser(description=__doc__.splitlines()[0] + "\nDeparts from the lecture's code: no bootstrap cut at "
                       "the time limit,\nties in argmax broken at random (the lecture: np.argmax, always action 0), "
                       "alpha and epsilon decay.", epilog="examples:\n" + __doc__.split("Examples:\n")[1].strip("\n"),
                       formatter_class=HelpFormatter, allow_abbrev=False)
    positive, probability = number(int, 1), number(float, 0, 1)
    g = p.add_argument_group("algorithm")
    g.add_argument("--episodes", type=positive, default=10_000, help="training episodes (the lecture's budget)")
    g.add_argument("--learning-rate", type=number(float, 0, 1, above=True), default=0.1,
                   help="alpha at the start of training")
    g.add_argument("--anneal-lr", action=argparse.BooleanOptionalAction, default=True,
                   help="decay alpha linearly to 0 over training (the lecture keeps 0.1)")
    g.add_argument("--gamma", type=probability, default=0.99, help="discount factor")
    g.add_argument("--start-e", type=probability, default=1.0,
                   help="epsilon at the start (the lecture: 0.1 throughout)")
    g.add_argument("--end-e", type=probability, default=0.1, help="epsilon after the decay")
    g.add_argument("--exploration-fraction", type=probability, default=0.5,
                   help="fraction of the training episodes over which epsilon decays linearly")
    one_map = g.add_mutually_exclusive_group()
    one_map.add_argument("--map-name", choices=["4x4", "8x8"], default="4x4", help="FrozenLake-v1 or FrozenLake8x8-v1")
    one_map.add_argument("--map", type=custom_map, help='a custom map instead of --map-name, rows separated by commas: '
                         '"SFFF,FHFH,FFFH,HFFG"')
    g.add_argument("--is-slippery", action=argparse.BooleanOptionalAction, default=True,
                   help="the ice moves you sideways 2/3 of the time (--no-is-slippery: never)")
    g = p.add_argument_group("run and logs")
    g.add_argument("--exp-name", default=SCRIPT[:-3],
                   help="the middle part of the run name runs/<env>__<exp-name>__<seed>__<time>/")
    g.add_argument("--seed", type=number(int, 0, 2**32 - 1), default=1,
                   help="seeds the agent, the env and (disjointly) the evaluation")
    g.add_argument("--save-model", action=argparse.BooleanOptionalAction, default=True,
                   help="save the Q-table as runs/<run_name>/q_table.npy")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-episodes", type=positive, default=10_000, help="greedy episodes of the final evaluation")
    g.add_argument("--eval-model", "--eval-q-table", help="evaluate this saved q_table.npy, no training; settings "
                   "come from the args.json beside it (--eval-q-table: the same flag)")
    g.add_argument("--capture-video", action="store_true",
                   help="record greedy episodes as mp4 to videos/<run_name>/ (needs pygame, moviepy)")
    g.add_argument("--video-episodes", type=positive, default=1,
                   help="how many greedy episodes --capture-video records")
    args = p.parse_args(argv)
    if args.eval_model is not None:  # the run that saved the table gives the defaults; flags typed now still win
        p.set_defaults(**saved_run_args(args.eval_model, known=vars(args)))
        args = p.parse_args(argv)
    if any(a.split("=")[0] == "--map-name" for a in argv):
        args.map = None  # a saved run's custom map gives way to the map named now
    # Refuse at once what cannot fit in memory (not after hours of training): a history row (a tuple of 5 numbers,
    # 250 bytes) per training episode, 64 bytes per simulated evaluation episode.
    need = {"episodes": 250 * args.episodes, "eval-episodes": 64 * args.eval_episodes}
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        available = math.inf  # not Linux: no cheap way to ask
    if sum(need.values()) > available:
        flag = max(need, key=need.get)
        fail(f"--{flag} {getattr(args, flag.replace('-', '_'))} needs {need[flag] / 1e9:,.1f} GB of memory but "
             f"{available / 1e9:.1f} GB is available")
    return args


def number(kind, low, high=math.inf, above=False):
    """An argparse type: a finite int or float from `low` (above: over it) up to `high` (with no `high`: from `low`)."""
    def parse(text):
        value = kind(text)  # a ValueError here is argparse's "invalid int value"
        if not (math.isfinite(value) and (low < value if above else low <= value) and value <= high):
            bounds = f"in {'(' if above else '['}{low}, {high}]" if high < math.inf else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be a finite number {bounds}, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def custom_map(text):
    """An argparse type: 'SFFF, FHFH,FFFH,HFFG' -> 'SFFF,FHFH,FFFH,HFFG', or why it is no FrozenLake map."""
    rows = [row.strip() for row in text.split(",")]
    if any(len(row) != len(rows[0]) for row in rows) or not rows[0]:
        raise argparse.ArgumentTypeError(f"must be rectangular (rows of equal, non-zero length), got {text!r}")
    if set("".join(rows)) - set("SFHG") or "S" not in text or "G" not in text:
        raise argparse.ArgumentTypeError(f"needs a start S and a goal G and may hold only S, F, H, G, got {text!r}")
    return ",".join(rows)


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own complaints (an unknown flag, "abc" for a number): one line too
        fail(message)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows every flag's default, and the docstring's example commands as they are written."""


def fail(message):  # bad input: one line and exit code 2, as argparse does, never a traceback
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


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
        fail(f"{path} is not a readable args.json")
    if script != SCRIPT:
        fail(f"{model_path} was saved by {script}; evaluate it with that script")
    if isinstance(saved.get("map"), list):  # args.json of older runs kept the map as a list of rows
        saved["map"] = ",".join(saved["map"])
    return {name: value for name, value in saved.items() if name in known and name not in ("eval_model",
                                                                                              "capture_video")}


def random_streams(seed):
    """The agent's random stream and the env's seed from one --seed, independent: SeedSequence(s).spawn's children.
    (default_rng(s) and reset(seed=s) would be one and the same stream: exploration would replay the ice's slips.)
    The env seed has 31 bits, below the evaluation's seeds (evaluation_seed: 2**32 and up)."""
    agent, env = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(agent), int(env.generate_state(1)[0] >> 1)


def make_env(map_name="4x4", custom_map=None, is_slippery=True, max_episode_steps=None, render_mode=None):
    """FrozenLake with its registered time limit (100 steps; 200 for FrozenLake8x8-v1) unless max_episode_steps is
    given; custom_map: a list of rows, in place of map_name."""
    env_id = "FrozenLake8x8-v1" if map_name == "8x8" and custom_map is None else "FrozenLake-v1"
    return gym.make(env_id, desc=custom_map, is_slippery=is_slippery, max_episode_steps=max_episode_steps,
                    render_mode=render_mode)


def load_q_table(path, shape):
    """A saved Q-table as float64, or one `error:` line saying why not. Read as a plain .npy array, never a pickle
    (one can run code); numpy's own messages are not passed on, as they advise allow_pickle=True."""
    if not os.path.isfile(path):
        fail(f"--eval-model: no such file {path!r}")
    not_a_model = f"{path} is not a saved model of {SCRIPT}"
    try:
        with open(path, "rb") as f:
            q_table = np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        fail(f"{not_a_model} (not a .npy array of numbers)")
    if q_table.dtype.kind not in "iuf":
        fail(f"{not_a_model} (it holds {q_table.dtype} values, not real numbers)")
    if q_table.shape != shape:
        fail(f"{not_a_model} for this map (shape {q_table.shape}, this map needs {shape})")
    bad_rows = sorted({int(row) for row in np.argwhere(~np.isfinite(q_table))[:, 0]})
    if bad_rows:
        fail(f"{not_a_model} (NaN or infinite Q-values in the rows of states {bad_rows})")
    return q_table.astype(np.float64)


def show(args, env, q_table, video_dir):
    """Evaluates the table and prints the greedy policy as arrows on the map (holes H, goal G) beside max_a Q(s,a);
    with --capture-video, plays --video-episodes greedy episodes in the rendered env, one mp4 each to video_dir
    (seeded with evaluation streams 2, 3, ... of --seed). Returns the evaluation and the videos."""
    result = evaluate(env, q_table, args.eval_episodes, args.seed)
    desc, arrows = env.unwrapped.desc.astype(str), "←↓→↑"  # FrozenLake's actions 0, 1, 2, 3
    values = q_table.max(axis=1).reshape(desc.shape)
    print("greedy policy         max_a Q(s,a)")
    for row, letters in enumerate(desc):
        cells = [letter if letter in "HG" else arrows[result["policy"][row * desc.shape[1] + col]]
                 for col, letter in enumerate(letters)]
        print(" ".join(cells).ljust(22) + " ".join(f"{v:.3f}" for v in values[row]))
    if not args.capture_video:
        return result, []
    env = make_env(args.map_name, args.map and args.map.split(","), args.is_slippery, render_mode="rgb_array")
    env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda episode: True, disable_logger=True)
    try:
        for episode in range(args.video_episodes):
            obs, _ = env.reset(seed=evaluation_seed(args.seed, 2 + episode))
            terminated = truncated = False
            while not (terminated or truncated):
                obs, _, terminated, truncated, _ = env.step(result["policy"][obs])
    finally:
        env.close()  # also writes the last video
    return result, sorted(glob.glob(os.path.join(video_dir, "*.mp4")))


def summary(result, source):
    """The headline (the first number after `result: `) with the exact numbers beside it."""
    return (f"result: {result['success_rate']:.4f} greedy success rate over {result['episodes']} episodes: {source} "
            f"(exact: {result['exact_this_policy']:.4f}; best achievable: {result['best_achievable']:.4f}; "
            f"within {result['max_episode_steps']} steps)")


class Terminated(Exception):
    """SIGTERM, as a scheduler sends it (SLURM at a time limit or a preemption): the run stops as on Ctrl-C."""


def on_sigterm(signum, frame):
    raise Terminated


def new_run_dir(run_dir):
    """Makes runs/<run_name>/ and returns it; a run started in the same second under the same name (the tasks of an
    array job) gets runs/<run_name>_2/, _3, ..., never another run's folder."""
    for name in [run_dir, *(f"{run_dir}_{copies}" for copies in range(2, 10_000))]:
        try:
            os.makedirs(name)
            return name
        except FileExistsError:
            pass


def save_q_table(path, q_table):
    """Writes aside, then renames: a full disk or a kill mid-write never leaves a damaged file under `path`."""
    tmp_path = path[: -len(".npy")] + ".tmp.npy"  # np.save adds .npy to any other name
    try:
        np.save(tmp_path, np.asarray(q_table))
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def train_and_report(args, env, run_dir, q_table):
    with open(os.path.join(run_dir, "args.json"), "w") as f:
        json.dump({**vars(args), "script": SCRIPT}, f, indent=2)
    start_time = time.time()
    # line-buffered: each episode's row is on disk as soon as it is written, so a run can be plotted as it goes
    with open(os.path.join(run_dir, "episodes.csv"), "w", newline="", buffering=1) as f:
        writer = csv.writer(f)
        writer.writerow(["episode", "return", "length", "epsilon", "learning_rate"])
        q_table, history = train(env, args.episodes, args.learning_rate, args.anneal_lr, args.gamma, args.start_e,
                                 args.end_e, args.exploration_fraction, args.seed, writer=writer, q_table=q_table,
                                 print_every=min(10_000, max(1, math.ceil(args.episodes / 10))))
    steps = sum(row[2] for row in history)
    print(f"trained {args.episodes} episodes, {steps} steps in {time.time() - start_time:.1f} s")
    model = os.path.join(run_dir, "q_table.npy")
    if args.save_model:
        save_q_table(model, q_table)
    run_name = os.path.basename(run_dir)
    result, videos = show(args, env, q_table, os.path.join("videos", run_name))
    with open(os.path.join(run_dir, "eval.json"), "w") as f:
        json.dump(result, f, indent=2, allow_nan=False)
    print(summary(result, "the final Q-table"))
    files = ", ".join(["args.json", "episodes.csv", *["q_table.npy"] * args.save_model, "eval.json"])
    print(f"files:  {run_dir}/ ({files})" + (f", videos/{run_name}/ ({len(videos)} mp4)" if videos else ""))
    plot = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks", "plot_results.py"))
    print(f"plot:   python {plot} {run_dir}")
    script = os.path.relpath(__file__)  # so the commands run as printed from where this run started
    if args.save_model:
        print(f"again:  python {script} --eval-model {model}")
        print(f"video:  python {script} --eval-model {model} --capture-video")
    else:
        print("again:  the Q-table was not saved (--no-save-model)")


def main(argv=None):
    args = parse_args(argv)
    if args.capture_video:
        try:
            import moviepy, pygame  # noqa: F401,E401  (FrozenLake draws with pygame, RecordVideo writes with moviepy)
        except ImportError:
            fail("--capture-video needs pygame and moviepy: pip install -r requirements.txt")
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame draws off screen, no display needed
    env = make_env(args.map_name, args.map and args.map.split(","), args.is_slippery)
    shape = (int(env.observation_space.n), int(env.action_space.n))  # plain ints in messages
    run_dir, q_table = f"runs/{env.spec.id}__{args.exp_name}__{args.seed}__{int(time.time())}", None
    handler = signal.signal(signal.SIGTERM, on_sigterm)  # a scheduler's stop ends the run as Ctrl-C does
    try:
        if args.eval_model is not None:  # evaluate a saved table, no training
            run_folder = os.path.basename(os.path.dirname(os.path.abspath(args.eval_model)))
            result, videos = show(args, env, load_q_table(args.eval_model, shape), f"videos/{run_folder}-eval")
            if args.capture_video:
                print(f"video:  {len(videos)} mp4 in videos/{run_folder}-eval/")
            print(summary(result, args.eval_model))
            return
        run_dir = new_run_dir(run_dir)
        q_table = zero_q_table(*shape)  # trained in place: a stopped run still saves it
        train_and_report(args, env, run_dir, q_table)
    except OSError as e:  # no space left, no permission: which file and why; what was written stays as it is
        print(f"error: cannot write {e.filename or run_dir + '/'}: {e.strerror or e}", file=sys.stderr)
        sys.exit(1)
    except (KeyboardInterrupt, Terminated) as stop:  # one way out for both signals: one line, no traceback
        what = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted (Ctrl-C)"
        if q_table is not None:  # stopped in training or after it: the log as far as it got, and the table
            if args.save_model:
                save_q_table(os.path.join(run_dir, "q_table.npy"), q_table)
            what += ": episodes.csv is complete up to here" + (", the Q-table is saved" if args.save_model else "")
        print(what, file=sys.stderr)
        sys.exit(143 if isinstance(stop, Terminated) else 130)
    finally:
        signal.signal(signal.SIGTERM, handler)
        env.close()


if __name__ == "__main__":
    main()
