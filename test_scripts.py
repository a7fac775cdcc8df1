"""Tests for the single-file scripts. Each script has its own section; helpers stay inside it."""
import glob
import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.abspath(__file__))


# ---- q_learning_frozenlake.py ----------------------------------------------------------------
_FL_SCRIPT = os.path.join(REPO, "q_learning_frozenlake.py")
_FL_LEFT, _FL_RIGHT = 0, 2


def _fl_module():
    spec = importlib.util.spec_from_file_location("q_learning_frozenlake", _FL_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fl_run(args, cwd):
    """Run the script in `cwd` (its runs/ folder lands there)."""
    return subprocess.run([sys.executable, _FL_SCRIPT, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _fl_saved_q_table(cwd):
    paths = glob.glob(os.path.join(str(cwd), "runs", "*", "q_table.npy"))
    assert len(paths) == 1, paths
    return np.load(paths[0]), os.path.dirname(paths[0])


def _fl_dense_model(env):
    """env.unwrapped.P as dense arrays, built independently of the script: expected reward R[s,a],
    and C[s,a,s'] = P(s' and the episode goes on | s,a)."""
    P = env.unwrapped.P
    n_states, n_actions = len(P), len(P[0])
    expected_reward = np.zeros((n_states, n_actions))
    continue_prob = np.zeros((n_states, n_actions, n_states))
    for s in P:
        for a in P[s]:
            for p, s_next, r, terminated in P[s][a]:
                expected_reward[s, a] += p * r
                if not terminated:
                    continue_prob[s, a, s_next] += p
    return expected_reward, continue_prob


def _fl_value_iteration(env, gamma):
    """Q* by value iteration: Q(s,a) = R(s,a) + gamma * sum_s' C(s,a,s') max_a' Q(s',a')."""
    expected_reward, continue_prob = _fl_dense_model(env)
    q_star = np.zeros_like(expected_reward)
    for _ in range(100_000):
        new_q = expected_reward + gamma * continue_prob @ q_star.max(axis=1)
        if np.abs(new_q - q_star).max() < 1e-12:
            return new_q
        q_star = new_q
    raise AssertionError("value iteration did not converge")


def _fl_success_within_limit(env, policy=None):
    """P(goal within env.spec.max_episode_steps) for `policy`, or for the best non-stationary policy."""
    expected_reward, continue_prob = _fl_dense_model(env)
    success = np.zeros(expected_reward.shape[0])
    for _ in range(env.spec.max_episode_steps):
        by_action = expected_reward + continue_prob @ success
        success = by_action.max(axis=1) if policy is None else by_action[np.arange(len(policy)), policy]
    return float(env.unwrapped.initial_state_distrib @ success)


def _fl_printed_rates(stdout):
    """(simulated greedy success, exact for this policy, best achievable) from the script's output."""
    match = re.search(r"greedy success rate over \d+ episodes: ([\d.]+) .*this policy, within \d+ steps: ([\d.]+)"
                      r" .*best achievable: ([\d.]+)", stdout)
    assert match, stdout
    return tuple(float(x) for x in match.groups())


def test_fl_deterministic_map_learns_q_star(tmp_path):
    # With deterministic moves and alpha = 1, each update sets Q(s,a) to r + gamma max Q(s'):
    # Q-learning becomes value iteration along the transitions it visits, so it must reach Q*.
    result = _fl_run(["--no-slippery", "--learning-rate", "1.0", "--no-anneal-lr", "--episodes", "3000",
                      "--eval-episodes", "1000"], tmp_path)
    assert result.returncode == 0, result.stderr
    q_table, run_dir = _fl_saved_q_table(tmp_path)
    q_star = _fl_value_iteration(_fl_module().make_env(is_slippery=False), gamma=0.99)
    assert np.abs(q_table - q_star).max() < 0.01
    assert _fl_printed_rates(result.stdout)[:2] == (1.0, 1.0)
    # the run's records: args and one CSV row per episode
    assert json.load(open(os.path.join(run_dir, "args.json")))["is_slippery"] is False
    rows = open(os.path.join(run_dir, "episodes.csv")).read().splitlines()
    assert rows[0].startswith("episode,return,length,epsilon") and len(rows) == 3001


def test_fl_slippery_default_run_reaches_the_optimum(tmp_path):
    result = _fl_run(["--seed", "1"], tmp_path)
    assert result.returncode == 0, result.stderr
    q_table, _ = _fl_saved_q_table(tmp_path)
    env = _fl_module().make_env()
    policy_success = _fl_success_within_limit(env, q_table.argmax(axis=1))
    best = _fl_success_within_limit(env)
    assert abs(best - 0.744) < 0.001  # FACTS.md
    assert policy_success > best - 0.02
    simulated, printed_exact, printed_best = _fl_printed_rates(result.stdout)
    assert simulated >= 0.72 and abs(simulated - policy_success) < 0.02  # 10,000 episodes: sd 0.0044
    assert abs(printed_exact - policy_success) < 1e-4 and abs(printed_best - best) < 1e-4


def test_fl_simulated_evaluation_matches_the_exact_probability():
    fl = _fl_module()
    env = fl.make_env()
    policy = _fl_value_iteration(env, gamma=0.99).argmax(axis=1)
    exact = _fl_success_within_limit(env, policy)
    simulated = fl.simulate_success_rate(env, policy, 40_000, np.random.default_rng(0))
    assert abs(simulated - exact) < 0.011  # 5 standard deviations of 40,000 episodes
    # the time limit: on non-slippery ice the shortest path to the goal is 6 steps
    for limit, expected in ((5, 0.0), (6, 1.0)):
        env = fl.make_env(is_slippery=False, max_episode_steps=limit)
        shortest = _fl_value_iteration(env, gamma=0.9).argmax(axis=1)
        assert fl.simulate_success_rate(env, shortest, 100, np.random.default_rng(0)) == expected
        assert _fl_success_within_limit(env, shortest) == expected


def test_fl_td_update_terminal_has_no_bootstrap_truncated_does():
    fl = _fl_module()
    gamma, alpha = 0.9, 0.5
    q_table = np.array([[0.0, 0.0], [0.2, 0.6]])  # state 1 is the next state, max_a Q = 0.6
    td_error = fl.td_update(q_table, 0, 1, 1.0, 1, True, alpha, gamma)
    assert td_error == pytest.approx(1.0) and q_table[0, 1] == pytest.approx(0.5)  # target r = 1
    q_table[0, 1] = 0.0
    td_error = fl.td_update(q_table, 0, 1, 1.0, 1, False, alpha, gamma)  # e.g. the time limit hit
    assert td_error == pytest.approx(1.0 + 0.9 * 0.6) and q_table[0, 1] == pytest.approx(0.5 * 1.54)


def test_fl_training_loop_bootstraps_when_truncated():
    # Three start cells and a goal: S S S G. Every episode is cut after 1 step by the time limit, so
    # from cells 0 and 1 moving RIGHT is always *truncated*. Treating that as terminal
    # (done = terminated or truncated) would leave their Q at 0; bootstrapping gives gamma^distance.
    fl = _fl_module()
    env = fl.make_env(custom_map=["SSSG"], is_slippery=False, max_episode_steps=1)
    q_table, _ = fl.train(env, 500, learning_rate=1.0, anneal_lr=False, gamma=0.9, seed=0, progress_lines=0)
    assert q_table[2, _FL_RIGHT] == pytest.approx(1.0)
    assert q_table[1, _FL_RIGHT] == pytest.approx(0.9)
    assert q_table[0, _FL_RIGHT] == pytest.approx(0.81)


def test_fl_ties_are_broken_at_random():
    fl = _fl_module()
    draws = np.random.default_rng(0).random(4000)
    picks = np.array([fl.greedy_action([0.0, 0.0, 0.0, 0.0], u) for u in draws])
    assert np.all(np.abs(np.bincount(picks, minlength=4) / len(picks) - 0.25) < 0.03)
    assert {fl.greedy_action([0.0, 0.7, 0.7, 0.1], u) for u in draws} == {1, 2}
    # In the loop: purely greedy (epsilon 0) on non-slippery ice. np.argmax would pick LEFT into the
    # wall at the start forever and never see the goal; random tie-breaking wanders until it does.
    env = fl.make_env(is_slippery=False)
    q_table, history = fl.train(env, 1000, start_e=0.0, end_e=0.0, seed=0, progress_lines=0)
    assert sum(row[1] for row in history) > 500 and q_table[0].max() > 0.9


def test_fl_same_seed_same_q_table():
    fl = _fl_module()
    runs = [fl.train(fl.make_env(), 300, seed=seed, progress_lines=0)[0] for seed in (7, 7, 8)]
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_fl_saved_q_table_evaluates_the_same(tmp_path):
    result = _fl_run(["--seed", "5", "--episodes", "1000", "--eval-episodes", "2000"], tmp_path)
    assert result.returncode == 0, result.stderr
    _, run_dir = _fl_saved_q_table(tmp_path)
    again = _fl_run(["--seed", "5", "--eval-episodes", "2000", "--eval-q-table",
                     os.path.join(run_dir, "q_table.npy")], tmp_path)
    assert again.returncode == 0, again.stderr
    assert _fl_printed_rates(again.stdout) == _fl_printed_rates(result.stdout)
    assert "greedy policy" in again.stdout and "trained" not in again.stdout


@pytest.mark.parametrize("args", [
    ["--map-name", "5x5"],
    ["--map", "SFF,FG"],          # not rectangular
    ["--map", "SFFX,FFFG"],       # a letter other than S F H G
    ["--map", "FFFF,FFFG"],       # no start
    ["--map", "SFFF,FFFF"],       # no goal
    ["--seed", "-1"],
    ["--episodes", "0"],
    ["--episodes", "-3"],
    ["--episodes", "many"],
    ["--learning-rate", "0"],
    ["--learning-rate", "1.5"],
    ["--gamma", "1.01"],
    ["--start-e", "-0.1"],
    ["--end-e", "2"],
    ["--exploration-fraction", "1.5"],
    ["--eval-q-table", "no_such_file.npy"],
    ["--eval-q-table", "wrong_shape.npy"],
    ["--eval-q-table", "not_numpy.npy"],
])
def test_fl_bad_input_is_one_line_and_exit_code_2(args, tmp_path):
    np.save(tmp_path / "wrong_shape.npy", np.zeros((64, 4)))  # an 8x8 table, for the 4x4 map
    (tmp_path / "not_numpy.npy").write_text("hello")
    result = _fl_run(args, tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not os.path.exists(tmp_path / "runs")
