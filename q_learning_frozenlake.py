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

    python q_learning_frozenlake.py --seed 1
    python q_learning_frozenlake.py --eval-q-table runs/<run_name>/q_table.npy
"""

# ---- imports ----------------------------------------------------------------------------------
import argparse
import csv
import json
import os
import sys
import time

import gymnasium as gym
import numpy as np


# ---- args -------------------------------------------------------------------------------------
def fail(message):
    """Bad input: one line on stderr and exit code 2, never a traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.error = fail  # argparse's own errors (unknown flag, bad number) also become one line
    parser.add_argument("--exp-name", type=str, default=os.path.basename(__file__)[: -len(".py")])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--map-name", type=str, default="4x4", help="4x4 (FrozenLake-v1) or 8x8 (FrozenLake8x8-v1)")
    parser.add_argument("--map", type=str, default=None, help='custom map, rows separated by commas: "SFFF,FHFH,FFFH,HFFG"')
    parser.add_argument("--is-slippery", "--slippery", dest="is_slippery", action=argparse.BooleanOptionalAction,
                        default=True, help="the ice moves you sideways 2/3 of the time (--no-slippery: never)")
    parser.add_argument("--episodes", type=int, default=10_000, help="training episodes (the lecture uses 10,000 too)")
    parser.add_argument("--learning-rate", type=float, default=0.1, help="alpha at the start of training")
    parser.add_argument("--anneal-lr", action=argparse.BooleanOptionalAction, default=True,
                        help="decay alpha linearly to 0 over training")
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--start-e", type=float, default=1.0, help="epsilon at the start")
    parser.add_argument("--end-e", type=float, default=0.1, help="epsilon after the decay")
    parser.add_argument("--exploration-fraction", type=float, default=0.5,
                        help="fraction of the training episodes over which epsilon decays linearly")
    parser.add_argument("--eval-episodes", type=int, default=10_000)
    parser.add_argument("--eval-q-table", type=str, default=None, help="evaluate this saved .npy Q-table, no training")
    args = parser.parse_args(argv)

    if args.map is None and args.map_name not in ("4x4", "8x8"):
        fail(f"--map-name must be 4x4 or 8x8, got {args.map_name!r}")
    if args.map is not None:
        args.map = parse_map(args.map)
    if args.seed < 0:
        fail(f"--seed must be 0 or more (numpy and gymnasium seeds), got {args.seed}")
    if args.episodes <= 0:
        fail(f"--episodes must be positive, got {args.episodes}")
    if args.eval_episodes <= 0:
        fail(f"--eval-episodes must be positive, got {args.eval_episodes}")
    if not 0.0 < args.learning_rate <= 1.0:
        fail(f"--learning-rate must be in (0, 1], got {args.learning_rate}")
    if not 0.0 <= args.gamma <= 1.0:
        fail(f"--gamma must be in [0, 1], got {args.gamma}")
    for name in ("start_e", "end_e", "exploration_fraction"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            fail(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(args, name)}")
    return args


def parse_map(text):
    """'SFFF,FHFH,FFFH,HFFG' -> ['SFFF', 'FHFH', 'FFFH', 'HFFG'], or fail with the reason."""
    rows = [row.strip() for row in text.split(",")]
    if any(len(row) != len(rows[0]) for row in rows) or not rows[0]:
        fail(f"--map must be rectangular (rows of equal, non-zero length), got {text!r}")
    if set("".join(rows)) - set("SFHG"):
        fail(f"--map may only contain S, F, H, G, got {text!r}")
    if "S" not in text or "G" not in text:
        fail(f"--map needs a start S and a goal G, got {text!r}")
    return rows


# ---- env --------------------------------------------------------------------------------------
def make_env(map_name="4x4", custom_map=None, is_slippery=True, max_episode_steps=None):
    """FrozenLake with its registered time limit (100 steps; 200 for FrozenLake8x8-v1)."""
    kwargs = {"is_slippery": is_slippery}
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    if custom_map is not None:
        return gym.make("FrozenLake-v1", desc=custom_map, **kwargs)
    return gym.make("FrozenLake8x8-v1" if map_name == "8x8" else "FrozenLake-v1", **kwargs)


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


def greedy_policy(q_table, rng):
    """The deterministic policy the Q-table defines: one action per state, ties broken at random once."""
    return np.array([greedy_action(q_values, rng.random()) for q_values in np.asarray(q_table).tolist()])


# ---- loop -------------------------------------------------------------------------------------
def linear_schedule(start, end, duration, t):
    """From `start` to `end` linearly over `duration` episodes, then `end` (CleanRL's schedule)."""
    fraction_done = min(t / duration, 1.0) if duration > 0 else 1.0
    return start + fraction_done * (end - start)


def train(env, episodes, learning_rate=0.1, anneal_lr=True, gamma=0.99, start_e=1.0, end_e=0.1,
          exploration_fraction=0.5, seed=1, progress_lines=5):
    """Epsilon-greedy Q-learning. Returns the Q-table and one (episode, return, length, epsilon,
    learning_rate) row per episode."""
    n_states, n_actions = env.observation_space.n, env.action_space.n
    max_steps = env.spec.max_episode_steps
    rng = np.random.default_rng(seed)  # all of the agent's randomness; the env has its own, seeded below
    env.action_space.seed(seed)        # (unused here: exploration draws from rng, but seeded all the same)
    # One row of Q-values per state, all 0 at the start as in the lecture. A list of lists while
    # training: on rows of 4 numbers plain Python is several times faster than a numpy call.
    q_table = [[0.0] * n_actions for _ in range(n_states)]
    history = []
    start_time = time.time()

    for episode in range(episodes):
        epsilon = linear_schedule(start_e, end_e, exploration_fraction * episodes, episode)
        # alpha decays to 0: large steps early spread the goal's reward back quickly, small steps
        # late average out the slippery ice's noise so Q settles (the convergence proof asks for
        # step sizes that shrink; the lecture's constant 0.1 keeps Q jittering around Q*).
        alpha = learning_rate * (1.0 - episode / episodes) if anneal_lr else learning_rate
        # Draw this episode's random numbers in three numpy calls, not three calls per step;
        # .tolist() makes indexing them plain Python (no per-step numpy overhead).
        explore_draws = rng.random(max_steps).tolist()
        random_actions = rng.integers(n_actions, size=max_steps).tolist()
        tie_draws = rng.random(max_steps).tolist()

        # Seed the env once; later resets continue its random stream, so --seed reproduces the run.
        obs, _ = env.reset(seed=seed if episode == 0 else None)
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

        if progress_lines and (episode + 1) % max(1, episodes // progress_lines) == 0:
            recent = [row[1] for row in history[-1000:]]
            print(f"episode {episode + 1}/{episodes}  {(episode + 1) / (time.time() - start_time):,.0f} episodes/s  "
                  f"success (last {len(recent)}) {np.mean(recent):.3f}  epsilon {epsilon:.3f}  alpha {alpha:.4f}")
    return np.array(q_table), history


# ---- eval -------------------------------------------------------------------------------------
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


def evaluate(env, q_table, episodes, seed):
    """Print the greedy policy, its simulated and exact success rates, and the best achievable."""
    rng = np.random.default_rng([seed, 1])  # a stream of its own: training draws don't shift it
    policy = greedy_policy(q_table, rng)
    success_rate = simulate_success_rate(env, policy, episodes, rng)
    print(draw_grids(env, q_table, policy))
    limit = env.spec.max_episode_steps
    print(f"greedy success rate over {episodes} episodes: {success_rate:.4f}  |  exact, this policy, "
          f"within {limit} steps: {exact_success_probability(env, policy):.4f}  |  "
          f"best achievable: {exact_success_probability(env):.4f}")
    return success_rate


if __name__ == "__main__":
    args = parse_args()
    env = make_env(args.map_name, args.map, args.is_slippery)
    n_states, n_actions = env.observation_space.n, env.action_space.n

    if args.eval_q_table is not None:
        if not os.path.isfile(args.eval_q_table):
            fail(f"--eval-q-table: no such file {args.eval_q_table!r}")
        try:
            q_table = np.load(args.eval_q_table, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exception:
            fail(f"--eval-q-table: cannot read {args.eval_q_table!r} as a .npy array ({exception})")
        if q_table.shape != (n_states, n_actions):
            fail(f"--eval-q-table: shape {q_table.shape} does not fit this map, which needs {(n_states, n_actions)}")
        evaluate(env, q_table, args.eval_episodes, args.seed)
        sys.exit(0)

    run_name = f"{env.spec.id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run_dir = os.path.join("runs", run_name)
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "args.json"), "w") as f:
        json.dump(vars(args), f, indent=2)

    start_time = time.time()
    q_table, history = train(env, args.episodes, args.learning_rate, args.anneal_lr, args.gamma, args.start_e,
                             args.end_e, args.exploration_fraction, args.seed)
    print(f"trained {args.episodes} episodes, {sum(row[2] for row in history)} steps in {time.time() - start_time:.1f} s")

    np.save(os.path.join(run_dir, "q_table.npy"), q_table)
    with open(os.path.join(run_dir, "episodes.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["episode", "return", "length", "epsilon", "learning_rate"])
        writer.writerows(history)
    evaluate(env, q_table, args.eval_episodes, args.seed)
    print(f"saved {run_dir}/q_table.npy (evaluate again: --eval-q-table {run_dir}/q_table.npy)")
