"""Tabular Q-learning on FrozenLake-v1, one file, read top to bottom.

Q-learning: C. Watkins, "Learning from Delayed Rewards", PhD thesis, Cambridge 1989
(convergence proof: Watkins & Dayan, "Q-learning", Machine Learning 8, 1992). The update
is the lecture's (Lecture 03, Part 2):

    Q(s,a) <- Q(s,a) + alpha * [r + gamma * max_a' Q(s',a') - Q(s,a)]

The lecture's code gets 0.73 on most runs and 0.000 on some. Three changes make every seed
learn the gamma-optimal policy (0.740 of the 0.744 possible within the 100-step limit):
  1. no bootstrap from a *terminal* state, but bootstrap when the time limit cuts an episode
     short (the lecture's `done = terminated or truncated` treats the clock as a hole);
  2. ties in argmax broken at random (np.argmax always picks action 0 on a tie);
  3. epsilon and the learning rate decay over training: broad exploration early, settled
     estimates at the end.

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
"""
import argparse
import csv
import json
import math
import os
import sys
import tempfile
import time

import gymnasium as gym
import numpy as np

SCRIPT = os.path.basename(__file__)

# ---- Q-table
def zero_q_table(n_states, n_actions):
    """Q(s, a) = 0 for all s, a, as in the lecture: the "network" of tabular Q-learning."""
    return [[0.0] * n_actions for _ in range(n_states)]

def greedy_action(q_values, tie_draw):
    """argmax_a Q(s,a), ties broken by a uniform draw in [0, 1). np.argmax takes the
    *first* maximum: on the zero table LEFT, into the wall, and Q can stay zero."""
    max_q = max(q_values)
    best_actions = [action for action, q in enumerate(q_values) if q == max_q]
    return best_actions[int(tie_draw * len(best_actions))]

# ---- TD update
def td_update(q_table, obs, action, reward, next_obs, terminated, learning_rate, gamma):
    """Q(s,a) <- Q(s,a) + alpha * [r + gamma * max_a' Q(s',a') - Q(s,a)].

    `terminated` (a hole, the goal): no future, the target is r alone. A *truncated*
    step (the time limit) is not terminal: s' is an ordinary state the clock stopped
    in, its value is not 0, so the target bootstraps from it as Watkins' update does.
    The clock is not part of the state; a terminal there would teach Q some ice is 0."""
    td_target = reward if terminated else reward + gamma * max(q_table[next_obs])
    td_error = td_target - q_table[obs][action]
    q_table[obs][action] += learning_rate * td_error
    return td_error

# ---- schedules
def linear_schedule(start, end, duration, t):
    """`start` to `end` linearly over `duration` episodes, then `end` (CleanRL's)."""
    fraction_done = min(t / duration, 1.0) if duration > 0 else 1.0
    return start + fraction_done * (end - start)

def annealed_learning_rate(learning_rate, episode, episodes, anneal_lr):
    """alpha decays linearly to 0: large steps early spread the goal's reward back,
    small steps late average out the ice's noise so Q settles (the convergence proof
    asks for shrinking steps; the lecture's constant 0.1 keeps Q jittering around Q*)."""
    return learning_rate * (1.0 - episode / episodes) if anneal_lr else learning_rate

# ---- training loop
def random_streams(seed):
    """The agent's stream and the env's seed from one --seed, independent: with one
    stream (default_rng(s), reset(seed=s)) exploration would replay the ice's slips."""
    agent, env = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(agent), int(env.generate_state(1)[0] >> 1)

def train(env, episodes, learning_rate=0.1, anneal_lr=True, gamma=0.99, start_e=1.0,
          end_e=0.1, exploration_fraction=0.5, seed=1, print_every=0, writer=None, q_table=None):
    """Epsilon-greedy Q-learning: the Q-table and a row (episode, return, length,
    epsilon, learning_rate) per episode, also to `writer`; `q_table`: trained in place."""
    n_actions, max_steps = env.action_space.n, env.spec.max_episode_steps
    rng, env_seed = random_streams(seed)  # the agent's randomness; the env has its own
    if q_table is None:
        q_table = zero_q_table(env.observation_space.n, n_actions)
    history, start_time = [], time.time()
    for episode in range(episodes):
        epsilon = linear_schedule(start_e, end_e, exploration_fraction * episodes, episode)
        alpha = annealed_learning_rate(learning_rate, episode, episodes, anneal_lr)
        # the episode's draws in 3 numpy calls, not 3 per step
        explore_draws = rng.random(max_steps).tolist()
        random_actions = rng.integers(n_actions, size=max_steps).tolist()
        tie_draws = rng.random(max_steps).tolist()
        # seed the env once; later resets continue its stream
        obs, _ = env.reset(seed=env_seed if episode == 0 else None)
        episode_return, step = 0.0, 0
        while True:
            # epsilon-greedy: a random action with probability epsilon, else argmax_a Q
            if explore_draws[step] < epsilon:
                action = random_actions[step]
            else:
                action = greedy_action(q_table[obs], tie_draws[step])
            next_obs, reward, terminated, truncated, _ = env.step(action)
            # `terminated`, not `done = terminated or truncated`: the clock bootstraps
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
            print(f"episode {episode + 1}/{episodes}  {speed:,.0f} episodes/s  success (last "
                  f"{len(recent)}) {np.mean(recent):.3f}  epsilon {epsilon:.3f}  alpha {alpha:.4f}")
    return np.array(q_table), history

# ---- evaluation
def evaluation_seed(seed, stream):
    """Evaluation stream `stream` (1: simulated, 2, 3, ...: videos) of `seed`: the
    SeedSequence entropy [seed, stream], which no training stream shares."""
    return seed + stream * 2**32

def transition_arrays(env):
    """env.unwrapped.P as arrays prob, next_state, reward, terminated, each [s, a, k]:
    one k per way the ice can make you slide, shorter lists padded with prob 0."""
    P = env.unwrapped.P
    width = max(len(P[s][a]) for s in P for a in P[s])
    pad = [(0.0, 0, 0.0, True)]
    table = np.array([[P[s][a] + pad * (width - len(P[s][a])) for a in P[s]] for s in P])
    return (table[..., 0], table[..., 1].astype(np.int64), table[..., 2],
            table[..., 3].astype(bool))

def simulate_success_rate(env, policy, episodes, rng):
    """The fraction of `episodes` episodes that reach the goal in time, in numpy, each
    step as FrozenLakeEnv.step's: the first k whose cumulative P exceeds u ~ U[0,1)."""
    prob, next_state, reward, terminated = transition_arrays(env)
    cumulative = np.cumsum(prob[np.arange(len(policy)), policy], axis=1)
    start_probs = env.unwrapped.initial_state_distrib
    obs = rng.choice(len(start_probs), size=episodes, p=start_probs)
    running, successes = np.ones(episodes, dtype=bool), 0.0
    for _ in range(env.spec.max_episode_steps):
        uniform_draws = rng.random(running.sum())
        current, action = obs[running], policy[obs[running]]
        outcome = (cumulative[current] > uniform_draws[:, None]).argmax(axis=1)  # slide k
        successes += reward[current, action, outcome].sum()
        obs[running] = next_state[current, action, outcome]
        running[running] = ~terminated[current, action, outcome]
        if not running.any():
            break
    return successes / episodes

def exact_success_probability(env, policy=None):
    """P(goal in time) by dynamic programming: P(goal within t steps | s) is 0 at t = 0;
    success[s] = sum_k prob[s,a,k] * (reward + (not terminated) * success[next_state])
    with a = policy[s], or else the best a for the steps left (the optimum)."""
    prob, next_state, reward, terminated = transition_arrays(env)
    success = np.zeros(prob.shape[0])
    for _ in range(env.spec.max_episode_steps):
        by_action = (prob * (reward + ~terminated * success[next_state])).sum(axis=2)
        success = (by_action.max(axis=1) if policy is None
                   else by_action[np.arange(len(policy)), policy])
    return float(env.unwrapped.initial_state_distrib @ success)

def evaluate(env, q_table, episodes, seed):
    """The greedy policy (the lecture's select_action(state, training=False)), its
    simulated success, and the exact success of it and of the best."""
    rng = np.random.default_rng(evaluation_seed(seed, 1))  # not shifted by training
    policy = np.array([greedy_action(q, rng.random()) for q in np.asarray(q_table).tolist()])
    return {"success_rate": float(simulate_success_rate(env, policy, episodes, rng)),
            "episodes": episodes, "exact_this_policy": exact_success_probability(env, policy),
            "best_achievable": exact_success_probability(env),
            "max_episode_steps": env.spec.max_episode_steps, "policy": policy.tolist()}

# ===== plumbing
def make_env(map_name="4x4", custom_map=None, is_slippery=True,
             max_episode_steps=None, render_mode=None):
    """FrozenLake (custom_map: a list of rows in place of map_name)."""
    big = map_name == "8x8" and custom_map is None
    return gym.make("FrozenLake8x8-v1" if big else "FrozenLake-v1", desc=custom_map,
                    is_slippery=is_slippery, max_episode_steps=max_episode_steps,
                    render_mode=render_mode)

def load_q_table(path, shape):
    """A saved Q-table (never a pickle: one can run code), or a ValueError."""
    try:
        q_table = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        q_table = None
    if not (isinstance(q_table, np.ndarray) and q_table.shape == shape
            and q_table.dtype.kind in "iuf" and np.isfinite(q_table).all()):
        raise ValueError(f"{path} is not a saved model of {SCRIPT} for this map")
    return q_table.astype(np.float64)

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                exit_on_error=False)
    yes_no = argparse.BooleanOptionalAction
    g = p.add_argument_group("algorithm")
    g.add_argument("--episodes", type=int, default=10_000, help="training episodes")
    g.add_argument("--learning-rate", type=float, default=0.1, help="alpha at first")
    g.add_argument("--anneal-lr", action=yes_no, default=True, help="decay alpha to 0")
    g.add_argument("--gamma", type=float, default=0.99, help="the discount factor")
    g.add_argument("--start-e", type=float, default=1.0, help="epsilon at first")
    g.add_argument("--end-e", type=float, default=0.1, help="epsilon after the decay")
    g.add_argument("--exploration-fraction", type=float, default=0.5,
                   help="fraction of the episodes epsilon decays over")
    one_map = g.add_mutually_exclusive_group()
    one_map.add_argument("--map-name", choices=["4x4", "8x8"], default="4x4",
                         help="FrozenLake-v1 or FrozenLake8x8-v1")
    one_map.add_argument("--map", type=custom_map,
                         help='a custom map instead, e.g. "SFFF,FHFH,FFFH,HFFG"')
    g.add_argument("--is-slippery", action=yes_no, default=True,
                   help="the ice moves you sideways 2/3 of the time")
    g = p.add_argument_group("run and logs")
    g.add_argument("--exp-name", default=SCRIPT[:-3], help="part of the run's name")
    g.add_argument("--seed", type=int, default=1, help="seeds agent, env, evaluation")
    g.add_argument("--save-model", action=yes_no, default=True, help="save q_table.npy")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-episodes", type=int, default=10_000, help="greedy episodes")
    g.add_argument("--eval-model", "--eval-q-table",
                   help="evaluate this q_table.npy with its run's args.json")
    g.add_argument("--capture-video", action="store_true", help="record greedy episodes")
    g.add_argument("--video-episodes", type=int, default=1, help="episodes to record")
    try:
        args, unknown = p.parse_known_args(argv)
        path = os.path.join(os.path.dirname(args.eval_model or ""), "args.json")
        if args.eval_model and os.path.isfile(path):  # the saved run's settings
            with open(path) as f:
                saved = json.load(f)
            if saved.get("script", SCRIPT) != SCRIPT:
                fail(f"{args.eval_model} was saved by {saved['script']}; "
                     "evaluate it with that script")
            saved["capture_video"] = False
            p.set_defaults(**{k: v for k, v in saved.items() if k in vars(args)})
            args = p.parse_known_args(argv)[0]  # but for the flags typed now
    except argparse.ArgumentError as e:  # "abc" for a number, a wrong choice
        fail(e)
    if unknown:
        fail(f"unrecognized arguments: {' '.join(unknown)}")
    for names, low, high in [("episodes eval_episodes video_episodes", 1, math.inf),
                             ("learning_rate gamma start_e end_e", 0, 1),
                             ("exploration_fraction", 0, 1), ("seed", 0, 2**32 - 1)]:
        for name in names.split():  # nan is in no range
            value, flag = getattr(args, name), "--" + name.replace("_", "-")
            if name == "learning_rate" and value == 0:
                fail(f"{flag} must be above 0")
            if not low <= value <= high:
                fail(f"{flag} must be a finite number in [{low}, {high}], got {value}")
    return args

def custom_map(text):
    rows = [row.strip() for row in text.split(",")]
    letters = set("".join(rows))
    if len({len(row) for row in rows}) > 1 or not {"S", "G"} <= letters <= set("SFHG"):
        raise argparse.ArgumentTypeError("needs equal rows of SFHG with an S and a G")
    return ",".join(rows)

def fail(message):  # bad input: one line, exit code 2, no traceback
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)

def show(args, env, q_table, source, video_dir):
    """Evaluates and prints; --capture-video: greedy episodes (streams 2, 3, ...)."""
    r = evaluate(env, q_table, args.eval_episodes, args.seed)
    print(f"result: {r['success_rate']:.4f} greedy success rate over {r['episodes']} "
          f"episodes: {source} (exact: {r['exact_this_policy']:.4f}; best achievable: "
          f"{r['best_achievable']:.4f}; within {r['max_episode_steps']} steps)")
    if not args.capture_video:
        return r, 0
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame draws off screen
    env = make_env(args.map_name, args.map and args.map.split(","), args.is_slippery,
                   render_mode="rgb_array")
    env = gym.wrappers.RecordVideo(env, video_dir, lambda e: True, disable_logger=True)
    for episode in range(args.video_episodes):
        obs, _ = env.reset(seed=evaluation_seed(args.seed, 2 + episode))
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, _ = env.step(r["policy"][obs])
    env.close()  # also writes the last video
    return r, len(os.listdir(video_dir))

def main(argv=None):
    args = parse_args(argv)
    env = make_env(args.map_name, args.map and args.map.split(","), args.is_slippery)
    shape = (int(env.observation_space.n), int(env.action_space.n))
    run_dir, q_table = "runs", None
    try:
        if args.eval_model:  # evaluate a saved table, no training
            try:
                saved = load_q_table(args.eval_model, shape)
            except ValueError as e:
                fail(e)
            folder = os.path.dirname(os.path.abspath(args.eval_model))
            videos = f"videos/{os.path.basename(folder)}-eval"
            _, count = show(args, env, saved, args.eval_model, videos)
            if args.capture_video:
                print(f"video:  {count} mp4 in {videos}/")
            return
        os.makedirs("runs", exist_ok=True)  # a new folder, even in the same second
        name = f"{env.spec.id}__{args.exp_name}__{args.seed}__{int(time.time())}_"
        run_dir = tempfile.mkdtemp(prefix=name, dir="runs")
        with open(f"{run_dir}/args.json", "w") as f:
            json.dump({**vars(args), "script": SCRIPT}, f, indent=2)
        q_table = zero_q_table(*shape)  # trained in place: a stopped run still saves it
        # line-buffered: each row is on disk at once
        with open(f"{run_dir}/episodes.csv", "w", newline="", buffering=1) as f:
            writer = csv.writer(f)
            writer.writerow(["episode", "return", "length", "epsilon", "learning_rate"])
            q_table, _ = train(
                env, args.episodes, args.learning_rate, args.anneal_lr, args.gamma,
                args.start_e, args.end_e, args.exploration_fraction, args.seed,
                min(10_000, max(1, math.ceil(args.episodes / 10))), writer, q_table)
        model = f"{run_dir}/q_table.npy"
        if args.save_model:
            np.save(model, q_table)
        videos = "videos/" + os.path.basename(run_dir)
        result, count = show(args, env, q_table, "the final Q-table", videos)
        with open(f"{run_dir}/eval.json", "w") as f:
            json.dump(result, f, indent=2, allow_nan=False)
        files = "args.json, episodes.csv, " + "q_table.npy, " * args.save_model
        videos = f", {videos}/ ({count} mp4)" if count else ""
        print(f"files:  {run_dir}/ ({files}eval.json)" + videos)
        plot = os.path.join(os.path.dirname(__file__), "benchmarks/plot_results.py")
        print(f"plot:   python {os.path.relpath(plot)} {run_dir}")
        script = os.path.relpath(__file__)  # the commands run as printed from here
        if args.save_model:
            print(f"again:  python {script} --eval-model {model}")
            print(f"video:  python {script} --eval-model {model} --capture-video")
        else:
            print("again:  the Q-table was not saved (--no-save-model)")
    except OSError as e:  # a full disk, no permission
        print(f"error: cannot write {e.filename or run_dir}: {e.strerror}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C: the table saved, one line
        if q_table is not None and args.save_model:
            np.save(f"{run_dir}/q_table.npy", np.asarray(q_table))
        print("interrupted (Ctrl-C)", file=sys.stderr)
        sys.exit(130)
    finally:
        env.close()

if __name__ == "__main__":
    main()
