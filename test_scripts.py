"""Does my copy work? The behaviour suite: `pytest -n 2 test_scripts.py` (about 2 minutes on 2 cores).

Scripts run as subprocesses (end to end, exit codes, files written) or are imported from their path
(unit tests of their parts). Runs write runs/ under a temporary directory, never into the repository.
Every test passes the flags whose values it needs, so it passes on any machine and after a student
changes a comment or a default. The repository's own bookkeeping (recorded results against the code,
the docs' numbers, file lengths) is benchmarks/test_repository.py; the benchmark tools' tests are
benchmarks/test_benchmarks.py.
"""
import argparse
import ast
import builtins
import csv
import errno
import glob
import hashlib
import importlib.util
import inspect
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import imageio_ffmpeg
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parent
REPO = str(ROOT)


def load_script(name):
    """Import a script from its path (the scripts are not a package: none imports another)."""
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), ROOT / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name, *args, cwd=None, env=None, timeout=300):
    """Run a script of the repository (or of benchmarks/, docs/) as a user would, one torch thread, in `cwd`."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, str(ROOT / name), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


class FullDisk:
    """Stands in for a module's open(): a file whose name ends with `name`, opened to write, takes `room` characters,
    then fails as a full disk does (ENOSPC), on that write and again when closed (a real close flushes the buffer)."""

    def __init__(self, name, room):
        self.name, self.room, self.full = name, room, False

    def __call__(self, path, mode="r", *args, **kwargs):
        file = builtins.open(path, mode, *args, **kwargs)
        if not str(path).endswith(self.name) or "r" in mode:
            return file
        disk, real_write, real_close = self, file.write, file.close

        def write(data):
            if disk.room < len(data):
                disk.full = True
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            disk.room -= len(data)
            return real_write(data)

        def close():
            real_close()
            if disk.full:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        file.write, file.close = write, close
        return file


def assert_one_line_error(result):
    """Bad input: exit code 2, exactly one line on stderr that starts with 'error:', and no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def main_error(module, flags, cwd, capsys, monkeypatch, folder_ok=False):
    """Bad input, in-process (an interpreter start with torch costs seconds; a call costs nothing): main()
    ends with SystemExit 2, exactly one 'error: ' line on stderr, no run folder. Returns that line."""
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        module.main([str(flag) for flag in flags])
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert folder_ok or not (Path(cwd) / "runs").exists()
    return err


def run_main(module, *flags, cwd, capsys, monkeypatch):
    """A script's main() called in-process, as its command line would run it (no interpreter start with
    torch: seconds saved a run). Returns what it printed."""
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    module.main([str(flag) for flag in flags])
    return capsys.readouterr().out


def only_run_dir(cwd):
    (run_dir,) = (Path(cwd) / "runs").iterdir()
    return run_dir


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---- q_learning_frozenlake.py ----------------------------------------------------------------
_FL_SCRIPT = os.path.join(REPO, "q_learning_frozenlake.py")
_FL_LEFT, _FL_RIGHT = 0, 2


@pytest.fixture(scope="module")
def fl():
    return load_script("q_learning_frozenlake.py")


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
    """(simulated greedy success, exact for this policy, best achievable) from the summary's result line."""
    match = re.search(r"^result: ([\d.]+) greedy success rate over \d+ episodes: .* \(exact: ([\d.]+); "
                      r"best achievable: ([\d.]+); within \d+ steps\)$", stdout, re.MULTILINE)
    assert match, stdout
    return tuple(float(x) for x in match.groups())


def _fl_printed_command(stdout, label):
    """The command the summary prints after `again:` or `video:`, as a list of arguments after the script."""
    (line,) = [line for line in stdout.splitlines() if line.startswith(label + ":")]
    words = line.split()[1:]
    assert words[0] == "python" and Path(words[1]).name == "q_learning_frozenlake.py", line
    return words[2:]


def test_fl_deterministic_map_learns_q_star(tmp_path):
    # With deterministic moves and alpha = 1, each update sets Q(s,a) to r + gamma max Q(s'):
    # Q-learning becomes value iteration along the transitions it visits, so it must reach Q*.
    result = run_script("q_learning_frozenlake.py", *["--no-is-slippery", "--learning-rate", "1.0", "--no-anneal-lr", "--episodes", "3000",
                      "--gamma", "0.99", "--start-e", "1.0", "--end-e", "0.1", "--exploration-fraction", "0.5",
                      "--seed", "1", "--eval-episodes", "1000"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    q_table, run_dir = _fl_saved_q_table(tmp_path)
    q_star = _fl_value_iteration(load_script("q_learning_frozenlake.py").make_env(is_slippery=False), gamma=0.99)
    assert np.abs(q_table - q_star).max() < 0.01
    assert _fl_printed_rates(result.stdout)[:2] == (1.0, 1.0)
    # the run's records: args and one CSV row per episode, progress every 10% of the run
    saved_args = json.load(open(os.path.join(run_dir, "args.json")))
    assert saved_args["is_slippery"] is False and saved_args["script"] == "q_learning_frozenlake.py"
    rows = open(os.path.join(run_dir, "episodes.csv")).read().splitlines()
    assert rows[0].startswith("episode,return,length,epsilon") and len(rows) == 3001
    assert re.findall(r"^episode (\d+)/3000", result.stdout, re.MULTILINE) == [str(300 * k) for k in range(1, 11)]


def test_fl_simulated_evaluation_matches_the_exact_probability():
    fl = load_script("q_learning_frozenlake.py")
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


def test_fl_evaluation_streams_are_disjoint_across_training_seeds():
    # Issue 9 item 4: seed s evaluated with a stream seed s + k had the same as seed s + k's evaluation.
    # Now every evaluation stream is the SeedSequence entropy [seed, stream]; training uses [seed].
    fl = load_script("q_learning_frozenlake.py")
    streams = {(fl.evaluation_seed(seed, stream)) for seed in range(20) for stream in range(1, 5)}
    assert len(streams) == 80 and min(streams) >= 2**32  # none is a training seed (those are < 2**32)
    assert np.random.default_rng(fl.evaluation_seed(7, 1)).random() == np.random.default_rng([7, 1]).random()
    env = fl.make_env()
    policy = _fl_value_iteration(env, gamma=0.99).argmax(axis=1)
    q_table = np.eye(4)[policy]  # a table whose greedy policy is that one, no ties
    rates = {fl.evaluate(env, q_table, 2000, seed)["success_rate"] for seed in range(1, 11)}
    assert len(rates) >= 8  # ten seeds, ten different sets of episodes (sd 0.01: collisions are rare)


def test_fl_td_update_terminal_has_no_bootstrap_truncated_does():
    fl = load_script("q_learning_frozenlake.py")
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
    fl = load_script("q_learning_frozenlake.py")
    env = fl.make_env(custom_map=["SSSG"], is_slippery=False, max_episode_steps=1)
    q_table, _ = fl.train(env, 500, learning_rate=1.0, anneal_lr=False, gamma=0.9, seed=0)
    assert q_table[2, _FL_RIGHT] == pytest.approx(1.0)
    assert q_table[1, _FL_RIGHT] == pytest.approx(0.9)
    assert q_table[0, _FL_RIGHT] == pytest.approx(0.81)


def test_fl_schedules_and_env_follow_their_arguments():
    """Each algorithm flag's value, at values away from every default, inside the function it reaches."""
    fl = load_script("q_learning_frozenlake.py")
    epsilon = [fl.linear_schedule(0.8, 0.2, 400, t) for t in (0, 100, 400, 1000)]
    assert epsilon == pytest.approx([0.8, 0.65, 0.2, 0.2])
    alpha = [fl.annealed_learning_rate(0.3, e, 600, True) for e in (0, 150, 599)]
    assert alpha == pytest.approx([0.3, 0.225, 0.0005])
    assert fl.annealed_learning_rate(0.3, 150, 600, False) == 0.3
    env = fl.make_env("8x8", None, False)
    assert env.unwrapped.desc.shape == (8, 8) and len(env.unwrapped.P[9][0]) == 1  # no slips
    env = fl.make_env("4x4", ["SFFH", "FFFG"], True)
    assert env.unwrapped.desc.shape == (2, 4) and len(env.unwrapped.P[1][0]) == 3  # slips


def test_fl_ties_are_broken_at_random():
    fl = load_script("q_learning_frozenlake.py")
    draws = np.random.default_rng(0).random(4000)
    picks = np.array([fl.greedy_action([0.0, 0.0, 0.0, 0.0], u) for u in draws])
    assert np.all(np.abs(np.bincount(picks, minlength=4) / len(picks) - 0.25) < 0.03)
    assert {fl.greedy_action([0.0, 0.7, 0.7, 0.1], u) for u in draws} == {1, 2}
    # In the loop: purely greedy (epsilon 0) on non-slippery ice. np.argmax would pick LEFT into the
    # wall at the start forever and never see the goal; random tie-breaking wanders until it does.
    env = fl.make_env(is_slippery=False)
    q_table, history = fl.train(env, 1000, start_e=0.0, end_e=0.0, seed=0)
    assert sum(row[1] for row in history) > 500 and q_table[0].max() > 0.9


def test_fl_same_seed_same_q_table():
    fl = load_script("q_learning_frozenlake.py")
    runs = [fl.train(fl.make_env(), 300, seed=seed)[0] for seed in (7, 7, 8)]
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_fl_every_algorithm_flag_reaches_the_loop(tmp_path, monkeypatch):
    """Each flag of the algorithm group, set away from its default, arrives where it acts: the env training runs on
    (map, size, slipperiness), the number of episodes, alpha and whether it decays, gamma in every TD update, and
    epsilon's schedule, read back from episodes.csv. benchmarks/flag_breaks.py ignores each in turn ("fl: ...")."""
    fl, seen = load_script("q_learning_frozenlake.py"), {"gamma": set(), "alpha": set()}
    original_train, original_update = fl.train, fl.td_update

    def recording_train(env, *args, **kwargs):
        seen["desc"], seen["slides"] = env.unwrapped.desc.astype(str).tolist(), len(env.unwrapped.P[1][0])
        return original_train(env, *args, **kwargs)

    def recording_update(*args):  # (q_table, obs, action, reward, next_obs, terminated,) learning_rate, gamma
        seen["alpha"].add(args[-2])
        seen["gamma"].add(args[-1])
        return original_update(*args)
    monkeypatch.setattr(fl, "train", recording_train)
    monkeypatch.setattr(fl, "td_update", recording_update)
    monkeypatch.chdir(tmp_path)
    fl.main(["--map-name", "8x8", "--no-is-slippery", "--episodes", "37", "--learning-rate", "0.3", "--no-anneal-lr",
             "--gamma", "0.9", "--start-e", "0.7", "--end-e", "0.2", "--exploration-fraction", "0.4",
             "--eval-episodes", "10", "--exp-name", "named"])
    assert (len(seen.pop("desc")), seen.pop("slides"), seen) == (8, 1, {"gamma": {0.9}, "alpha": {0.3}})
    (run_dir,) = (tmp_path / "runs").glob("*named*")
    rows = read_csv(run_dir / "episodes.csv")
    assert len(rows) == 37 and {float(row["learning_rate"]) for row in rows} == {0.3}
    expected = [0.7 + min(episode / (0.4 * 37), 1.0) * (0.2 - 0.7) for episode in range(37)]
    assert [float(row["epsilon"]) for row in rows] == pytest.approx(expected)
    assert json.loads((run_dir / "eval.json").read_text())["max_episode_steps"] == 200  # FrozenLake8x8-v1's limit
    # a custom map, slippery by default; alpha decays by default
    fl.main(["--map", "SFFH,FFFF,HFFG", "--episodes", "20", "--learning-rate", "0.1", "--eval-episodes", "10",
             "--exp-name", "custom"])
    assert seen["desc"] == [list("SFFH"), list("FFFF"), list("HFFG")] and seen["slides"] == 3
    (run_dir,) = (tmp_path / "runs").glob("*custom*")
    assert [float(row["learning_rate"]) for row in read_csv(run_dir / "episodes.csv")] == pytest.approx(
        [0.1 * (1 - episode / 20) for episode in range(20)])


def test_fl_help_shows_groups_help_and_default_for_every_flag():
    result = run_script("q_learning_frozenlake.py", *["--help"], cwd=REPO)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert [g for g in ("algorithm:", "run and logs:", "evaluation:") if f"\n{g}\n" in text] == [
        "algorithm:", "run and logs:", "evaluation:"]
    body = text.split("options:\n")[1]
    entries = re.split(r"\n(?=  -)", body)
    options = [e for e in entries if e.lstrip().startswith("--")]
    assert len(options) == 17, [e.split()[0] for e in options]  # every flag but -h
    for entry in options:
        flag, _, help_text = entry.strip().partition("  ")
        assert len(help_text.split()) > 3 and "(default: " in " ".join(entry.split()), entry
    assert "--slippery " not in text and "--eval-q-table" in text
    # abbreviations refused: --episode is not --episodes
    assert_one_line_error(run_script("q_learning_frozenlake.py", *["--episode", "5"], cwd=REPO))


def _fl_bad_q_tables(folder):
    """Files --eval-model must refuse, each with one line (issue 9 item 2)."""
    nan_rows = np.zeros((16, 4))
    nan_rows[[3, 7]] = np.nan
    np.save(folder / "nan_rows.npy", nan_rows)
    np.save(folder / "wrong_shape.npy", np.zeros((64, 4)))  # an 8x8 table, for the 4x4 map
    np.save(folder / "strings.npy", np.array([["a"] * 4] * 16))
    np.save(folder / "complex.npy", np.zeros((16, 4), dtype=complex))
    np.save(folder / "objects.npy", np.array([[None] * 4] * 16, dtype=object), allow_pickle=True)
    np.savez(folder / "table.npz", q_table=np.zeros((16, 4)))
    (folder / "empty.npy").write_bytes(b"")
    (folder / "not_numpy.npy").write_text("hello")
    other = folder / "other_run"
    other.mkdir()
    np.save(other / "q_table.npy", np.zeros((16, 4)))
    (other / "args.json").write_text(json.dumps({"script": "dqn_cartpole.py", "seed": 1}))


@pytest.mark.parametrize("args", [
    ["--map-name", "5x5"],
    ["--map", "SFF,FG"],          # not rectangular
    ["--map", "SFFX,FFFG"],       # a letter other than S F H G
    ["--map", "FFFF,FFFG"],       # no start
    ["--map", "SFFF,FFFF"],       # no goal
    ["--map", "SFFF,FHFH,FFFH,HFFG", "--map-name", "8x8"],
    ["--slippery"],               # one spelling: --is-slippery
    ["--episode", "5"],           # no abbreviations
    ["--seed", "-1"],
    ["--seed", "4294967296"],
    ["--episodes", "0"],
    ["--episodes", "-3"],
    ["--episodes", "many"],
    ["--eval-episodes", "0"],
    ["--video-episodes", "0"],
    ["--learning-rate", "0"],
    ["--learning-rate", "1.5"],
    ["--learning-rate", "nan"],
    ["--gamma", "1.01"],
    ["--gamma", "inf"],
    ["--gamma", "nan"],
    ["--start-e", "-0.1"],
    ["--end-e", "2"],
    ["--end-e=-inf"],             # (argparse reads a bare -inf as a flag)
    ["--exploration-fraction", "1.5"],
    ["--exploration-fraction", "nan"],
    ["--eval-q-table", "no_such_file.npy"],
    ["--eval-model", "wrong_shape.npy"],
    ["--eval-model", "not_numpy.npy"],
    ["--eval-model", "nan_rows.npy"],
    ["--eval-model", "strings.npy"],
    ["--eval-model", "complex.npy"],
    ["--eval-model", "objects.npy"],
    ["--eval-model", "table.npz"],
    ["--eval-model", "empty.npy"],
    ["--eval-q-table", "empty.npy"],
    ["--eval-model", "/dev/null"],
    ["--eval-model", os.path.join(REPO, "README.md")],
    ["--eval-model", "other_run/q_table.npy"],
])
def test_fl_bad_input_is_one_line_and_exit_code_2(fl, args, tmp_path, capsys, monkeypatch):
    _fl_bad_q_tables(tmp_path)
    err = main_error(fl, args, tmp_path, capsys, monkeypatch)
    assert "allow_pickle" not in err and "np.int64" not in err
    if any(a.endswith(("nan", "inf")) for a in args):  # named as such, not as a number out of range
        assert "must be a finite number" in err, err
    if "--eval-model" in args or "--eval-q-table" in args[:1]:
        assert "is not a saved model of q_learning_frozenlake.py" in err or "no such file" in err \
            or "saved by dqn_cartpole.py; evaluate it with that script" in err, err


def test_fl_env_is_closed_on_every_exit_path(tmp_path, monkeypatch):
    fl = load_script("q_learning_frozenlake.py")
    closed = []

    def make_env(*args, **kwargs):
        env = fl.gym.make("FrozenLake-v1")
        env.close = lambda: closed.append(True)
        return env

    monkeypatch.setattr(fl, "make_env", make_env)
    monkeypatch.chdir(tmp_path)
    _fl_bad_q_tables(tmp_path)
    with pytest.raises(SystemExit) as exit_info:  # a bad table: one error line, exit code 2
        fl.main(["--eval-model", "nan_rows.npy"])
    assert exit_info.value.code == 2 and closed == [True]
    fl.main(["--episodes", "20", "--eval-episodes", "10"])  # a whole run
    assert closed == [True, True]
    monkeypatch.setattr(fl, "train", lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(SystemExit) as exit_info:  # Ctrl-C while training
        fl.main(["--episodes", "20"])
    assert exit_info.value.code == 130 and closed == [True, True, True]


def test_fl_eval_model_from_the_run_folder_needs_no_other_flag(tmp_path):
    # a run on a custom, non-slippery map with its own seed and evaluation size: --eval-model alone
    # must find all of it in args.json, and the printed again-command reproduces the headline exactly
    result = run_script("q_learning_frozenlake.py", *["--map", "SFFH,FFFF,HFFG", "--no-is-slippery", "--seed", "5", "--episodes", "400",
                      "--eval-episodes", "300", "--gamma", "0.9"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    again_args = _fl_printed_command(result.stdout, "again")
    assert again_args[0] == "--eval-model" and len(again_args) == 2
    again = run_script("q_learning_frozenlake.py", *again_args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert _fl_printed_rates(again.stdout) == _fl_printed_rates(result.stdout)
    assert "300 episodes" in again.stdout.splitlines()[-1] and "trained" not in again.stdout
    assert len(list((tmp_path / "runs").iterdir())) == 1  # evaluating writes no new run
    # a flag typed now still wins over the saved one; --eval-q-table is the same flag
    fewer = run_script("q_learning_frozenlake.py", *["--eval-q-table", again_args[1], "--eval-episodes", "50"], cwd=tmp_path)
    assert fewer.returncode == 0 and "over 50 episodes" in fewer.stdout, fewer.stderr


def test_fl_printed_again_command_reproduces_the_slippery_headline(tmp_path):
    result = run_script("q_learning_frozenlake.py", *["--seed", "3", "--episodes", "2000", "--eval-episodes", "3000"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    headline = re.search(r"^result: ([\d.]+) ", result.stdout, re.MULTILINE).group(1)
    again = run_script("q_learning_frozenlake.py", *_fl_printed_command(result.stdout, "again"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert re.search(r"^result: ([\d.]+) ", again.stdout, re.MULTILINE).group(1) == headline
    assert _fl_printed_rates(again.stdout) == _fl_printed_rates(result.stdout)
    # --no-save-model: nothing to evaluate again, and the summary says so
    unsaved = run_script("q_learning_frozenlake.py", *["--seed", "3", "--episodes", "100", "--eval-episodes", "10", "--no-save-model",
                       "--exp-name", "unsaved"], cwd=tmp_path)
    assert unsaved.returncode == 0 and "not saved" in unsaved.stdout.splitlines()[-1], unsaved.stderr
    assert not glob.glob(str(tmp_path / "runs" / "*unsaved*" / "q_table.npy"))


def test_fl_capture_video_records_the_greedy_episodes(tmp_path):
    fl = load_script("q_learning_frozenlake.py")
    result = run_script("q_learning_frozenlake.py", *["--seed", "2", "--episodes", "300", "--eval-episodes", "100", "--capture-video",
                      "--video-episodes", "2"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, run_dir = _fl_saved_q_table(tmp_path)
    videos = sorted(glob.glob(str(tmp_path / "videos" / os.path.basename(run_dir) / "*.mp4")))
    assert len(videos) == 2, result.stdout
    # play the same episodes here: the policy from eval.json, the env seeds of the evaluation streams 2, 3
    policy = json.load(open(os.path.join(run_dir, "eval.json")))["policy"]
    env = fl.make_env()
    for episode, path in enumerate(videos):
        obs, _ = env.reset(seed=fl.evaluation_seed(2, 2 + episode))
        length, done = 0, False
        while not done:
            obs, _, terminated, truncated, _ = env.step(policy[obs])
            length, done = length + 1, terminated or truncated
        assert imageio_ffmpeg.count_frames_and_secs(path)[0] == length + 1  # the reset frame and one per step
    # the run was trained with --capture-video, but its evaluation again records nothing unless asked to
    plain = run_script("q_learning_frozenlake.py", *_fl_printed_command(result.stdout, "again"), cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert not (tmp_path / "videos" / (os.path.basename(run_dir) + "-eval")).exists() and "video:" not in plain.stdout
    # the printed video command works on the saved table alone, into videos/<run folder>-eval/
    again = run_script("q_learning_frozenlake.py", *_fl_printed_command(result.stdout, "video"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(glob.glob(str(tmp_path / "videos" / (os.path.basename(run_dir) + "-eval") / "*.mp4"))) == 2


def test_fl_agent_and_env_streams_are_independent():
    """The agent's draws (exploration, ties) are none of the env's slips: independent streams from one --seed."""
    fl = load_script("q_learning_frozenlake.py")
    for seed in [0, 1, 2, 12345]:
        agent, env_seed = fl.random_streams(seed)
        env = fl.make_env()
        env.reset(seed=env_seed)
        env_draws = set(_copy_of_stream(env.unwrapped.np_random).random_raw(1000).tolist())
        assert not set(agent.bit_generator.random_raw(1000).tolist()) & env_draws
        assert fl.random_streams(seed)[1] == env_seed  # the same --seed, the same streams


def test_fl_ctrl_c_stops_cleanly_with_the_log_and_the_q_table(tmp_path):
    proc = subprocess.Popen([sys.executable, _FL_SCRIPT, "--episodes", "10000000"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for_rows(tmp_path, "episodes.csv", 100)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert "interrupted (Ctrl-C)" in stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    rows = read_csv(run_dir / "episodes.csv")
    assert len(rows) >= 100 and all(row["learning_rate"] for row in rows)  # every row complete
    assert np.load(run_dir / "q_table.npy").shape == (16, 4)


def test_fl_same_second_runs_get_folders_of_their_own(tmp_path, monkeypatch):
    fl = load_script("q_learning_frozenlake.py")
    monkeypatch.setattr(fl.time, "time", lambda: 1_000_000.0)  # both runs start in the same second
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        fl.main(["--seed", "1", "--episodes", "50", "--eval-episodes", "10"])
    names = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(names) == 2, names
    assert all(n.startswith("FrozenLake-v1__q_learning_frozenlake__1__1000000_") for n in names)


def test_fl_files_that_cannot_be_written_end_in_one_line_and_exit_code_1(tmp_path, monkeypatch, capsys):
    (tmp_path / "runs").write_text("a file where the runs/ folder would go")
    assert _fl_run_failing(tmp_path, ["--episodes", "50"]) == 1
    fl = load_script("q_learning_frozenlake.py")
    small_disk = FullDisk("episodes.csv", 2_000)
    monkeypatch.setattr(fl, "open", small_disk, raising=False)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    with pytest.raises(SystemExit) as stop:
        fl.main(["--episodes", "1000"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip()] and "No space left on device" in err
    (run_dir,) = (tmp_path / "sub" / "runs").iterdir()
    assert json.loads((run_dir / "args.json").read_text())["episodes"] == 1000  # written before the disk filled: intact
    rows = read_csv(run_dir / "episodes.csv")
    assert rows and all(row["learning_rate"] for row in rows)  # whole rows up to where the disk filled


def _fl_run_failing(cwd, args):
    result = run_script("q_learning_frozenlake.py", *args, cwd=cwd)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write ") and "Traceback" not in result.stderr, result.stderr
    return result.returncode


def _copy_of_stream(generator):
    """A copy of a numpy Generator's bit stream at its current position (the original is not advanced)."""
    copy = np.random.PCG64()
    copy.state = generator.bit_generator.state
    return copy


def _wait_for_rows(cwd, name, rows, timeout=60):
    """Wait until runs/*/<name> holds `rows` lines (the CSV files are line-buffered)."""
    deadline = time.time() + timeout
    while time.time() < deadline and not any(len(p.read_text().splitlines()) > rows for p in Path(cwd).glob(f"runs/*/{name}")):
        time.sleep(0.1)


# ---- dqn_cartpole.py ----

TINY = ["--seed", 1, "--total-timesteps", 600, "--learning-starts", 200, "--buffer-size", 1000, "--batch-size", 32,
        "--target-network-frequency", 50, "--eval-episodes", 2]
DQN_SCRIPTS = ["dqn_cartpole.py", "double_dqn.py", "dueling_dqn.py", "per_dqn.py"]
VARIANTS = DQN_SCRIPTS[1:]
SCRIPTS = ["q_learning_frozenlake.py", "dqn_cartpole.py", "double_dqn.py", "dueling_dqn.py", "per_dqn.py", "dqn_atari.py"]


@pytest.fixture(scope="module")
def dqn():
    return load_script("dqn_cartpole.py")


def _result_line(stdout):
    """The headline of a run or of --eval-model: 'result: 21.7 ± 1.2 over 3 greedy episodes: ...'."""
    (line,) = [line for line in stdout.splitlines() if line.startswith("result: ")]
    return line


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_shows_a_help_line_and_the_default_of_every_flag(script, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps at the terminal's width
    with pytest.raises(SystemExit) as stop:
        load_script(script).parse_args(["--help"])
    assert stop.value.code == 0
    stdout = capsys.readouterr().out
    entries = re.split(r"\n  (?=-)", stdout.split("\noptions:", 1)[1])[1:]  # one entry per option
    flags = [entry for entry in entries if not entry.startswith("-h, --help")]
    assert len(flags) >= 8
    for entry in flags:
        name, _, text = entry.partition("  ")
        entry, text = " ".join(entry.split()), " ".join(text.split())  # argparse wraps lines at the terminal's width
        assert "(default: " in entry, entry
        assert text.strip() and not text.strip().startswith("(default:"), f"no help text: {entry}"
    for group in ["algorithm:", "run and logs:", "evaluation:"]:
        assert f"\n{group}\n" in stdout


def test_td_target_bootstraps_on_truncation_not_on_termination(dqn):
    target_network = dqn.QNetwork(4, 2, 8)
    next_obs = torch.randn(3, 4)
    with torch.no_grad():
        next_q_max = target_network(next_obs).max(dim=1).values
    rewards = torch.tensor([1.0, 1.0, 0.5])
    terminated = torch.tensor([1.0, 0.0, 0.0])  # row 0 fell over; row 1 hit the time limit; row 2 goes on
    td_target = dqn.compute_td_target(target_network, rewards, next_obs, terminated, gamma=0.9)
    assert td_target[0] == pytest.approx(1.0)  # terminal: y = r, no bootstrap
    assert td_target[1] == pytest.approx(1.0 + 0.9 * next_q_max[1].item())  # truncated: still bootstraps
    assert td_target[2] == pytest.approx(0.5 + 0.9 * next_q_max[2].item())


def test_loop_stores_terminated_not_truncated_and_never_crosses_an_episode(dqn, tmp_path, monkeypatch):
    """Run the real loop on CartPole with a 12-step limit; inspect every stored transition."""
    if "ShortCartPole-v1" not in gym.registry:
        gym.register("ShortCartPole-v1", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
                     max_episode_steps=12)
    stored, original_add = [], dqn.ReplayBuffer.add

    def recording_add(self, *row):
        stored.append([np.copy(x) for x in row])
        original_add(self, *row)
    monkeypatch.setattr(dqn.ReplayBuffer, "add", recording_add)
    monkeypatch.chdir(tmp_path)
    dqn.main(["--env-id", "ShortCartPole-v1", *map(str, TINY)])
    assert len(stored) == 600  # one row per step: none for the resets
    truncations = terminations = length = 0
    for t, (obs, action, reward, next_obs, terminated) in enumerate(stored):
        length += 1
        fell = abs(next_obs[0]) > 2.4 or abs(next_obs[2]) > 12 * 2 * np.pi / 360
        assert bool(terminated) == fell  # terminated means the pole really fell or the cart left the track
        if t + 1 < len(stored):
            follows = np.array_equal(stored[t + 1][0], next_obs)
            ended = terminated or length == 12
            assert follows != ended  # s' starts the next row unless the episode ended there
            if ended:
                truncations += not terminated
                terminations += bool(terminated)
                length = 0
    assert truncations > 0 and terminations > 0


def test_epsilon_schedule_is_linear_then_flat(dqn):
    assert dqn.linear_schedule(1.0, 0.05, 1000, 0) == pytest.approx(1.0)
    assert dqn.linear_schedule(1.0, 0.05, 1000, 500) == pytest.approx(0.525)
    assert dqn.linear_schedule(1.0, 0.05, 1000, 1000) == pytest.approx(0.05)
    assert dqn.linear_schedule(1.0, 0.05, 1000, 50_000) == pytest.approx(0.05)


def _count_updates_in_the_loop(module, monkeypatch, tmp_path, *flags):
    """Run the real loop and record after how many env steps (transitions stored so far) each gradient step (a call
    of compute_td_target) and each target update happened."""
    at = {"steps": 0, "gradient": [], "target": []}
    original_target, original_update = module.compute_td_target, module.update_target_network
    original_add = module.ReplayBuffer.add

    def counting_add(self, *args, **kwargs):
        at["steps"] += 1
        return original_add(self, *args, **kwargs)

    def counting_target(*args, **kwargs):
        at["gradient"].append(at["steps"])
        return original_target(*args, **kwargs)

    def counting_update(*args, **kwargs):
        at["target"].append(at["steps"])
        return original_update(*args, **kwargs)
    monkeypatch.setattr(module.ReplayBuffer, "add", counting_add)
    monkeypatch.setattr(module, "compute_td_target", counting_target)
    monkeypatch.setattr(module, "update_target_network", counting_update)
    monkeypatch.chdir(tmp_path)
    module.main([*map(str, flags)])
    return at


@pytest.mark.parametrize("train_frequency, target_frequency, learning_starts", [(4, 100, 0), (2, 50, 500), (1, 7, 30)])
def test_gradient_steps_and_target_updates_come_at_their_frequencies(dqn, tmp_path, monkeypatch, train_frequency,
                                                                      target_frequency, learning_starts):
    """Over 2,400 env steps: a gradient step after env step m (counted from 0) for every m >= --learning-starts that
    is a multiple of --train-frequency, and a target update likewise for --target-network-frequency."""
    at = _count_updates_in_the_loop(
        dqn, monkeypatch, tmp_path, "--total-timesteps", 2400, "--train-frequency", train_frequency,
        "--target-network-frequency", target_frequency, "--learning-starts", learning_starts, "--batch-size", 8,
        "--buffer-size", 3000, "--check-frequency", 0, "--eval-episodes", 1, "--no-save-model")
    # the step-m transition is stored (m + 1 stored so far) before that step's update: worked out by hand
    assert at["gradient"] == [m + 1 for m in range(learning_starts, 2400) if m % train_frequency == 0]
    assert at["target"] == [m + 1 for m in range(learning_starts, 2400) if m % target_frequency == 0]


def test_epsilon_and_learning_rate_in_the_loop_follow_their_schedules(dqn, tmp_path, monkeypatch):
    learning_rates = []

    class RecordingAdam(torch.optim.Adam):
        def step(self, *args, **kwargs):
            learning_rates.append(self.param_groups[0]["lr"])
            return super().step(*args, **kwargs)
    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    monkeypatch.chdir(tmp_path)
    dqn.main(["--total-timesteps", "2000", "--learning-starts", "400", "--train-frequency", "4", "--learning-rate", "0.001",
              "--anneal-lr",
              "--exploration-fraction", "0.5", "--start-e", "0.8", "--end-e", "0.2", "--batch-size", "16",
              "--buffer-size", "2000", "--check-frequency", "0", "--eval-episodes", "1", "--no-save-model"])
    # annealed linearly to 0 over the run, one gradient step every 4 env steps from step 400 on
    assert np.allclose(learning_rates, [0.001 * (1 - step / 2000) for step in range(400, 2000, 4)])
    episodes = read_csv(only_run_dir(tmp_path) / "episodes.csv")
    for row in episodes:  # epsilon at the step that ended the episode: 0.8 -> 0.2 over the first 1,000 steps
        step = int(row["global_step"]) - 1
        assert float(row["epsilon"]) == pytest.approx(max(0.2, 0.8 - 0.6 * step / 1000), abs=1e-4)
    assert {float(row["epsilon"]) for row in episodes} >= {0.2} and len(episodes) > 20
    # --anneal-lr-start 0.25: constant for the first 500 steps of 2,000, then linearly to 0 at the end
    learning_rates.clear()
    dqn.main(["--total-timesteps", "2000", "--learning-starts", "400", "--train-frequency", "4", "--learning-rate", "0.001",
              "--anneal-lr", "--anneal-lr-start", "0.25", "--batch-size", "16", "--buffer-size", "2000",
              "--check-frequency", "0", "--eval-episodes", "1", "--no-save-model"])
    assert np.allclose(learning_rates, [0.001 if step < 500 else 0.001 * (2000 - step) / 1500
                                        for step in range(400, 2000, 4)])


# Each algorithm flag, checked by its effect on the numbers inside the function its value reaches (values
# away from every default, worked out by hand): benchmarks/flag_breaks.py breaks each function in turn.
@pytest.mark.parametrize("script", DQN_SCRIPTS)
def test_target_update_moves_tau_of_the_way_to_the_online_weights(script):
    module = load_script(script)
    online, target = module.QNetwork(3, 2, 5), module.QNetwork(3, 2, 5)
    for param in online.parameters():
        torch.nn.init.constant_(param, 1.0)
    for param in target.parameters():
        torch.nn.init.constant_(param, 0.0)
    module.update_target_network(target, online, 0.3)
    assert all(torch.allclose(p, torch.full_like(p, 0.3)) for p in target.parameters())
    module.update_target_network(target, online, 0.3)  # 0.3 * 1 + 0.7 * 0.3
    assert all(torch.allclose(p, torch.full_like(p, 0.51)) for p in target.parameters())
    module.update_target_network(target, online, 1.0)  # tau = 1: Algorithm 1's copy
    assert all(torch.equal(p, q) for p, q in zip(target.parameters(), online.parameters()))


@pytest.mark.parametrize("script", DQN_SCRIPTS)
def test_network_width_and_outputs_follow_the_flags(script):
    module = load_script(script)
    q_network = module.QNetwork(3, 5, 17)
    layers = [m for m in q_network.modules() if isinstance(m, torch.nn.Linear)]
    assert layers[0].in_features == 3 and layers[0].out_features == 17
    assert all(m.in_features == 17 for m in layers[1:])  # every hidden layer 17 wide
    assert q_network(torch.zeros(2, 3)).shape == (2, 5)


@pytest.mark.parametrize("script", DQN_SCRIPTS)
def test_epsilon_and_learning_rate_schedules_against_hand_values(script):
    module = load_script(script)
    epsilon = [module.linear_schedule(0.8, 0.2, 400, t) for t in (0, 100, 400, 1000)]
    assert epsilon == pytest.approx([0.8, 0.65, 0.2, 0.2])
    args = argparse.Namespace(learning_rate=0.02, anneal_lr_start=0.5, total_timesteps=1000)
    rates = [module.learning_rate_at(args, step) for step in (0, 499, 500, 750, 999)]
    assert rates == pytest.approx([0.02, 0.02, 0.02, 0.01, 0.00004])


@pytest.mark.parametrize("script", DQN_SCRIPTS)
def test_replay_buffer_samples_a_batch_of_the_size_asked(script):
    module = load_script(script)
    rng = np.random.default_rng(0)
    if script == "per_dqn.py":
        rb = module.PrioritizedReplayBuffer(6, 2, rng, alpha=0.6, eps=1e-6)
    else:
        rb = module.ReplayBuffer(6, 2, rng)
    for i in range(9):  # 9 rows into 6 slots
        rb.add(np.array([i, i], dtype=np.float32), 0, float(i), np.zeros(2), 0)
    batch = rb.sample(7, "cpu") if script != "per_dqn.py" else rb.sample(7, "cpu", 0.4)
    assert [len(x) for x in batch[:5]] == [7] * 5
    assert set(batch[2].tolist()) <= {3.0, 4.0, 5.0, 6.0, 7.0, 8.0}  # the 6 newest rows


def test_lesson_functions_can_be_called_from_a_notebook_and_raise_instead_of_exiting(dqn, tmp_path):
    """A notebook imports dqn_cartpole.py, calls its lesson functions on hand-made tensors, and a bad
    call raises an exception it can catch (never SystemExit, which would end the kernel)."""
    class FixedQ(torch.nn.Module):  # Q(s', ·) = s' itself: two actions, two numbers per state
        def forward(self, obs):
            return obs
    rewards = torch.tensor([1.0, 0.5, -1.0])
    next_obs = torch.tensor([[2.0, 3.0], [4.0, -1.0], [10.0, 20.0]])
    terminated = torch.tensor([0.0, 0.0, 1.0])
    td_target = dqn.compute_td_target(FixedQ(), rewards, next_obs, terminated, 0.5)
    assert td_target.tolist() == [1.0 + 0.5 * 3.0, 0.5 + 0.5 * 4.0, -1.0]
    rb = dqn.ReplayBuffer(3, 2, np.random.default_rng(0))
    for i in range(4):  # the 4th row overwrites the 1st
        rb.add(np.array([i, i]), i % 2, float(i), np.array([i + 10, i + 10]), i == 2)
    assert (rb.size, rb.pos) == (3, 1) and rb.rewards.tolist() == [3.0, 1.0, 2.0]
    obs, actions, rewards_b, next_obs_b, terminated_b = rb.sample(64, "cpu")
    assert torch.equal(next_obs_b, obs + 10) and torch.equal(actions, obs[:, 0].long() % 2)
    for env_id in ["NoSuchEnv-v0", "ALE/Breakout-v5", "Pendulum-v1"]:
        with pytest.raises(ValueError, match=env_id):
            dqn.make_env(env_id)
    (tmp_path / "empty.pt").write_bytes(b"")
    for path in [tmp_path / "missing.pt", tmp_path / "empty.pt"]:
        with pytest.raises(ValueError, match="is not a model of dqn_cartpole.py"):
            dqn.load_model(dqn.QNetwork(4, 2, 8), str(path))


def test_replay_buffer_wraps_around_and_samples_only_written_rows(dqn):
    rb = dqn.ReplayBuffer(5, 1, np.random.default_rng(0))
    for i in range(2):
        rb.add(np.array([float(i)]), i, float(i), np.array([10.0 + i]), i)
    assert (rb.size, rb.pos) == (2, 2)
    obs, *_ = rb.sample(200, "cpu")
    assert set(obs[:, 0].tolist()) == {0.0, 1.0}  # never the zero-filled rows beyond size
    for i in range(2, 8):  # 8 rows into 5 slots: rows 0-2 are overwritten by 5-7
        rb.add(np.array([float(i)]), i % 2, float(i), np.array([10.0 + i]), 0)
    assert (rb.size, rb.pos) == (5, 3)
    assert rb.obs[:, 0].tolist() == [5.0, 6.0, 7.0, 3.0, 4.0]
    assert rb.next_obs[:, 0].tolist() == [15.0, 16.0, 17.0, 13.0, 14.0]  # rows stay aligned across fields
    obs, actions, rewards, next_obs, terminated = rb.sample(500, "cpu")
    assert set(obs[:, 0].tolist()) == {3.0, 4.0, 5.0, 6.0, 7.0}
    assert torch.equal(next_obs[:, 0], obs[:, 0] + 10) and torch.equal(rewards, obs[:, 0])


BAD_INPUTS = [
    ["--buffer-size", 0], ["--batch-size", -1], ["--learning-rate", 0], ["--total-timesteps", -5],
    ["--batch-size", 200, "--buffer-size", 100], ["--gamma", 1.5], ["--exploration-fraction", 0],
    ["--env-id", "NoSuchEnv-v0"], ["--env-id", "Pendulum-v1"], ["--eval-model", "missing.pt"],
    ["--check-frequency", -1], ["--check-episodes", 0], ["--no-such-flag"], ["--seed", "abc"],
    ["--seed", -1], ["--seed", 4294967296], ["--learning-rate", "nan"], ["--gamma", "inf"], ["--tau", "nan"],
    ["--max-grad-norm", "inf"], ["--total-timesteps", 2**31], ["--num-envs", 2], ["--total-timestep", 5],
    ["--env-id", "ALE/Breakout-v5"], ["--eval-model", "empty.pt"], ["--eval-model", "/dev/null"],
    ["--eval-model", "truncated.pt"], ["--eval-model", "README.md"], ["--eval-model", "small.pt", "--hidden-dim", 64],
]


def _bad_model_files(cwd):
    """The files the bad --eval-model inputs name: empty, cut short, not a model, a model of another shape."""
    (cwd / "empty.pt").write_bytes(b"")
    (cwd / "README.md").write_text((ROOT / "README.md").read_text())
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
                                   torch.nn.Linear(16, 2)).state_dict(), cwd / "small.pt")
    (cwd / "truncated.pt").write_bytes((cwd / "small.pt").read_bytes()[:300])
    os.rename(cwd / "small.pt", cwd / "small.tmp")
    state = torch.load(cwd / "small.tmp")
    torch.save({f"net.{name}": tensor for name, tensor in state.items()}, cwd / "small.pt")  # QNetwork's names, width 16


@pytest.mark.parametrize("flags", BAD_INPUTS)
def test_bad_input_is_one_line_and_exit_code_2(dqn, flags, tmp_path, capsys, monkeypatch):
    _bad_model_files(tmp_path)
    err = main_error(dqn, flags, tmp_path, capsys, monkeypatch)
    assert "weights_only" not in err and "np.int64" not in err
    if "ALE/Breakout-v5" in flags:
        assert "dqn_atari.py" in err
    if flags[-1] in ("empty.pt", "/dev/null", "truncated.pt", "README.md") or "small.pt" in flags:
        assert "is not a model of dqn_cartpole.py at this --env-id and --hidden-dim" in err


def test_eval_json_is_valid_json_when_no_check_ran(dqn, tmp_path, capsys, monkeypatch):
    run_main(dqn, *TINY, "--total-timesteps", 2, "--learning-starts", 0, "--check-frequency", 0, cwd=tmp_path,
             capsys=capsys, monkeypatch=monkeypatch)
    text = (only_run_dir(tmp_path) / "eval.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    json.loads(text)


def test_run_ends_with_a_summary_whose_again_command_reproduces_the_headline(tmp_path):
    result = run_script("dqn_cartpole.py", *TINY, "--total-timesteps", 1500, "--check-frequency", 500,
                        "--check-episodes", 2, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = only_run_dir(tmp_path)
    checks = read_csv(run_dir / "checks.csv")
    assert [int(row["global_step"]) for row in checks] == [500, 1000, 1500]  # one row per check, as printed
    assert sum(line.startswith("check  step") for line in result.stdout.splitlines()) == 3
    saved = json.loads((run_dir / "eval.json").read_text())
    kept = [row for row in checks if row["kept"] == "1"][-1]
    assert saved["kept_step"] == int(kept["global_step"]) and saved["kept_check_score"] == float(kept["score"])
    headline = _result_line(result.stdout)  # the final network first, as CleanRL and SB3 report it
    assert headline == (f"result: {saved['final_mean']:.1f} ± {saved['final_std']:.1f} over 2 greedy episodes: "
                        "the final network")
    assert (f"the kept model (step {saved['kept_step']}, {saved['kept_check_score']:.1f} on 2 check episodes): "
            f"{saved['kept_mean']:.1f} ± {saved['kept_std']:.1f}") in result.stdout
    assert (run_dir / "dqn_cartpole.pt").exists() and (run_dir / "dqn_cartpole_kept.pt").exists()
    (again,) = [line.removeprefix("again:").strip() for line in result.stdout.splitlines() if line.startswith("again:")]
    command = shlex.split(again)
    assert command[0] == "python"
    rerun = subprocess.run([sys.executable, *command[1:]], cwd=tmp_path, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert _result_line(rerun.stdout).split(":")[1] == headline.split(":")[1]  # "21.7 ± 1.2 over 2 greedy episodes"


def test_saved_models_evaluate_again_to_exactly_their_own_scores(dqn, tmp_path, monkeypatch):
    """The final network and the kept model from the run folder alone (args.json gives the env, the width and the
    episodes)."""
    monkeypatch.chdir(tmp_path)
    dqn.main([*map(str, TINY), "--hidden-dim", "32", "--check-frequency", "200", "--check-episodes", "1",
              "--eval-episodes", "3"])
    run_dir = only_run_dir(tmp_path)
    saved = json.loads((run_dir / "eval.json").read_text())
    assert saved["kept_returns"] != saved["final_returns"]  # two different models here, so a swap of the files shows
    assert dqn.main(["--eval-model", str(run_dir / "dqn_cartpole.pt")]).tolist() == saved["final_returns"]
    assert dqn.main(["--eval-model", str(run_dir / "dqn_cartpole_kept.pt")]).tolist() == saved["kept_returns"]
    assert len(dqn.main(["--eval-model", str(run_dir / "dqn_cartpole.pt"), "--eval-episodes", "1"])) == 1  # flags win


def test_model_saved_by_another_script_is_refused_naming_it(tmp_path):
    run_dir = tmp_path / "runs" / "x"
    run_dir.mkdir(parents=True)
    (run_dir / "args.json").write_text(json.dumps({"env_id": "CartPole-v1", "script": "dueling_dqn.py"}))
    torch.save({}, run_dir / "dueling_dqn.pt")
    result = run_script("dqn_cartpole.py", "--eval-model", run_dir / "dueling_dqn.pt", cwd=tmp_path)
    assert_one_line_error(result)
    assert "dueling_dqn.pt is not a model of dqn_cartpole.py" in result.stderr


def test_best_model_keeps_the_best_checked_weights_on_episodes_apart_from_the_eval(dqn, monkeypatch):
    scores, seeds_seen = iter([10.0, 50.0, 30.0, 50.0]), []

    def fake_evaluate(q_network, env_id, seeds, device, max_episode_steps=None, video_dir=None):
        assert max_episode_steps == 1000  # twice CartPole's limit: a slow drift off the track has time to show
        seeds_seen.extend(seeds)
        return np.array([next(scores)])

    class NoLogs:
        def check(self, *args):
            pass
    monkeypatch.setattr(dqn, "evaluate", fake_evaluate)
    network, snapshots = dqn.QNetwork(4, 2, 8), []
    best = dqn.BestModel(network, "CartPole-v1", episodes=5, seed=1, device="cpu")
    for step in range(1, 5):  # one network trained in place between the checks, as in the loop
        with torch.no_grad():
            for param in network.parameters():
                param.add_(1.0)
        snapshots.append({name: tensor.clone() for name, tensor in network.state_dict().items()})
        best.check(network, global_step=step * 1000, logs=NoLogs())
    assert (best.score, best.step) == (50.0, 4000)  # a tie goes to the later, longer-trained model
    with torch.no_grad():  # training goes on after the last check: the kept weights must not move with it
        for param in network.parameters():
            param.add_(1.0)
    for name, tensor in snapshots[3].items():
        assert torch.equal(best.weights[name], tensor)
    assert len(set(seeds_seen)) == 20  # no two checks replay the same starts
    eval_seeds = {dqn.episode_seed(1, episode) for episode in range(10)}  # main() evaluates seed 1 with 10 episodes
    assert not eval_seeds & set(seeds_seen)  # the model is chosen on other episodes than it is scored on


def test_evaluation_and_check_starts_of_different_seeds_are_disjoint(dqn):
    starts = {}
    for seed in [0, 1, 2, 7, 2**32 - 1]:
        starts[seed] = {dqn.episode_seed(seed, e) for e in range(100)}
        starts[seed] |= {dqn.episode_seed(seed, e, check_step=step) for step in range(0, 10**6, 10**4) for e in range(100)}
    seeds = list(starts)
    for i, a in enumerate(seeds):
        assert len(starts[a]) == 100 + 100 * 100 and min(starts[a]) >= 2**32  # above every training seed
        for b in seeds[i + 1:]:
            assert not starts[a] & starts[b]


def test_evaluation_side_by_side_plays_each_episode_as_if_alone(dqn):
    torch.manual_seed(3)
    network = dqn.QNetwork(4, 2, 16)  # untrained: episodes of different lengths, so some end while others go on
    seeds = [dqn.episode_seed(7, episode) for episode in range(6)]
    together = dqn.evaluate(network, "CartPole-v1", seeds, device="cpu")
    alone = [dqn.evaluate(network, "CartPole-v1", [seed], device="cpu")[0] for seed in seeds]
    assert len(set(together)) > 1 and together.tolist() == alone  # no crosstalk between the episodes
    limited = dqn.evaluate(network, "CartPole-v1", seeds, device="cpu", max_episode_steps=12)
    assert limited.max() <= 12 and limited.tolist() == np.minimum(together, 12).tolist()


@pytest.mark.parametrize("flags", [
    ["--tau", 0.05, "--target-network-frequency", 1], ["--loss", "huber", "--no-anneal-lr"],
    ["--env-id", "Acrobot-v1", "--hidden-dim", 32], ["--cuda", "--no-torch-deterministic"],
    ["--check-frequency", 200, "--check-episodes", 1], ["--check-frequency", 0],
])
def test_smoke_flag_families(dqn, flags, tmp_path, capsys, monkeypatch):
    assert _result_line(run_main(dqn, *TINY, *flags, cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch))


def test_capture_video_records_every_evaluation_episode_of_a_saved_model(tmp_path):
    assert run_script("dqn_cartpole.py", *TINY, "--check-frequency", 0, cwd=tmp_path).returncode == 0
    model = only_run_dir(tmp_path) / "dqn_cartpole.pt"
    result = run_script("dqn_cartpole.py", "--eval-model", model, "--capture-video", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    returns = json.loads((only_run_dir(tmp_path) / "eval.json").read_text())["final_returns"]
    videos = sorted((tmp_path / "videos" / f"{model.parent.name}-eval").glob("*.mp4"))
    assert len(videos) == len(returns) == 2
    for video, episode_return in zip(videos, returns):  # CartPole: 1 per step, a frame per step and one at reset
        frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(video))
        assert frames == episode_return + 1  # every frame, the last one too
        assert seconds == pytest.approx(frames / 50, abs=0.021)  # at CartPole's real speed, 50 frames a second


@pytest.mark.parametrize("script", ["dqn_cartpole.py", "double_dqn.py", "dueling_dqn.py", "per_dqn.py"])
def test_an_env_with_float64_observations_trains_and_evaluates(script, tmp_path, monkeypatch):
    """gymnasium envs may return float64 observations: acting, the buffer and the evaluation take them alike."""
    def float64_cartpole(**kwargs):
        env = gym.make("CartPole-v1", **kwargs)
        space = gym.spaces.Box(env.observation_space.low, env.observation_space.high, dtype=np.float64)
        return gym.wrappers.TransformObservation(env, lambda obs: obs.astype(np.float64), space)
    if "Float64CartPole-v0" not in gym.registry:
        gym.register("Float64CartPole-v0", entry_point=float64_cartpole, max_episode_steps=500)
    assert gym.make("Float64CartPole-v0").reset(seed=0)[0].dtype == np.float64
    monkeypatch.chdir(tmp_path)
    returns = load_script(script).main([*map(str, TINY), "--env-id", "Float64CartPole-v0", "--learning-starts", "100",
                                        "--exploration-fraction", "0.1", "--check-frequency", "0", "--probe-states", "10"])
    assert len(returns) == 2


@pytest.mark.parametrize("script", ["dqn_cartpole.py", "double_dqn.py", "dueling_dqn.py", "per_dqn.py"])
def test_tensorboard_events_hold_the_runs_csv_numbers_under_cleanrls_tags(script, tmp_path, monkeypatch):
    """`tensorboard --logdir runs` shows the run: its event file, read back, holds every episode of episodes.csv,
    every train.csv row and every check, under CleanRL's tag names."""
    monkeypatch.chdir(tmp_path)
    load_script(script).main([*map(str, TINY), "--total-timesteps", "1000", "--check-frequency", "500",
                              "--check-episodes", "1"])
    run_dir = only_run_dir(tmp_path)
    events = EventAccumulator(str(run_dir)).Reload()
    scalars = lambda tag: [(e.step, e.value) for e in events.Scalars(tag)]  # noqa: E731
    episodes = read_csv(run_dir / "episodes.csv")
    assert scalars("charts/episodic_return") == [(int(r["global_step"]), float(r["episodic_return"])) for r in episodes]
    assert scalars("charts/episodic_length") == [(int(r["global_step"]), float(r["episodic_length"])) for r in episodes]
    assert [step for step, _ in scalars("charts/epsilon")] == [int(r["global_step"]) for r in episodes]
    train = read_csv(run_dir / "train.csv")
    for tag, column in [("losses/td_loss", "loss"), ("losses/q_values", "q_values"), ("charts/SPS", "sps"),
                        ("charts/probe_q_mean", "probe_q_mean"), ("charts/probe_q_max", "probe_q_max")]:
        assert scalars(tag) == [(int(r["global_step"]), pytest.approx(float(r[column]))) for r in train], tag
    checks = read_csv(run_dir / "checks.csv")
    assert scalars("charts/check_score") == [(int(r["global_step"]), pytest.approx(float(r["score"]))) for r in checks]


def test_same_seed_gives_same_episode_returns(dqn, tmp_path, capsys, monkeypatch):
    returns = []
    for name in ["a", "b"]:
        (tmp_path / name).mkdir()
        run_main(dqn, *TINY, "--total-timesteps", 1500, cwd=tmp_path / name, capsys=capsys, monkeypatch=monkeypatch)
        returns.append([row["episodic_return"] for row in read_csv(only_run_dir(tmp_path / name) / "episodes.csv")])
    assert returns[0] == returns[1] and len(returns[0]) > 10


def test_nan_loss_stops_the_run_naming_the_step(tmp_path):
    result = run_script("dqn_cartpole.py", *TINY, "--learning-rate", 1e30, "--max-grad-norm", 1e30, cwd=tmp_path)
    assert result.returncode == 1
    assert "global step" in result.stderr and "Traceback" not in result.stderr
    assert read_csv(only_run_dir(tmp_path) / "episodes.csv")  # the log up to the fault is on disk


def test_ctrl_c_stops_cleanly_with_logs_and_model(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    # A shell's background job (`cmd &`) starts with SIGINT ignored, and the child would inherit that: restore it.
    proc = subprocess.Popen([sys.executable, str(ROOT / "dqn_cartpole.py"), "--learning-starts", "90000",
                             "--total-timesteps", "1000000"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60  # wait until the first episode rows reached the disk (the files are line-buffered)
    while time.time() < deadline and not any(len(p.read_text().splitlines()) > 5 for p in tmp_path.glob("runs/*/episodes.csv")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    run_dir = only_run_dir(tmp_path)
    rows = read_csv(run_dir / "episodes.csv")
    assert rows and all(row["epsilon"] for row in rows)  # every row complete, the file closed cleanly
    assert (run_dir / "dqn_cartpole.pt").exists()


@pytest.mark.parametrize("script", DQN_SCRIPTS)
def test_agent_env_evaluation_and_probe_streams_are_independent(script):
    """The agent's first draws (exploration, replay sampling) are none of the envs', the evaluation's or the probe's:
    with default_rng(seed) and reset(seed=seed) they would be one stream (env 0's start = the agent's first uniforms)."""
    module = load_script(script)
    for seed in [0, 1, 2, 12345]:
        agent, env_seed, probe = module.random_streams(seed)
        env = module.make_env("CartPole-v1")
        env.reset(seed=env_seed)
        eval_env = module.gym.make("CartPole-v1")
        eval_env.reset(seed=module.episode_seed(seed, 0))
        others = [env.unwrapped.np_random, eval_env.unwrapped.np_random, probe]
        agent_draws = set(agent.bit_generator.random_raw(1000).tolist())
        for other in others:
            assert not agent_draws & set(_copy_of_stream(other).random_raw(1000).tolist())
        assert module.random_streams(seed)[1] == env_seed  # the same --seed, the same streams
        env.close()


@pytest.mark.parametrize("script", DQN_SCRIPTS)
def test_files_that_cannot_be_written_end_in_one_line_and_exit_code_1(script, tmp_path, monkeypatch, capsys):
    (tmp_path / "runs").write_text("a file where the runs/ folder would go")
    module = load_script(script)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        module.main([*map(str, TINY)])
    assert stop.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == ["error: cannot write runs: File exists"]
    # a disk that fills up mid-run: one line naming the reason, the rows written before it intact
    monkeypatch.setattr(module, "open", FullDisk("episodes.csv", 600), raising=False)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    with pytest.raises(SystemExit) as stop:
        module.main([*map(str, TINY), "--total-timesteps", "3000"])
    assert stop.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == ["error: cannot write runs/: No space left on device"]
    run_dir = only_run_dir(tmp_path / "sub")
    assert json.loads((run_dir / "args.json").read_text())["total_timesteps"] == 3000
    rows = read_csv(run_dir / "episodes.csv")
    assert 5 < len(rows) and all(row["elapsed_s"] for row in rows)  # whole rows up to where the disk filled
    assert not (run_dir / "eval.json").exists()


@pytest.mark.parametrize("script", DQN_SCRIPTS)
def test_same_second_runs_get_folders_of_their_own(script, tmp_path, monkeypatch):
    module = load_script(script)
    monkeypatch.setattr(module.time, "time", lambda: 1_000_000.0)  # both runs start in the same second
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        module.main([*map(str, TINY), "--check-frequency", "0", "--probe-states", "0"])
    prefix = f"CartPole-v1__{script[:-3]}__1__1000000_"
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 2 and all(folder.startswith(prefix) for folder in folders)
    assert all((tmp_path / "runs" / folder / "eval.json").exists() for folder in folders)


@pytest.mark.parametrize("script", DQN_SCRIPTS)
def test_a_size_that_cannot_be_allocated_is_one_line_naming_its_flag(script, tmp_path, monkeypatch, capsys):
    """Caught where it is allocated: numpy's replay buffer, torch's layers. One line, exit code 2."""
    module = load_script(script)
    monkeypatch.chdir(tmp_path)
    for flags, line in [(["--buffer-size", 10**12, "--batch-size", 8],
                         "error: --buffer-size 1000000000000 does not fit in memory"),
                        (["--hidden-dim", 10**10], "error: --hidden-dim 10000000000 does not fit in memory")]:
        with pytest.raises(SystemExit) as stop:
            module.main([str(flag) for flag in flags])
        assert stop.value.code == 2 and capsys.readouterr().err.strip() == line


# ---- double_dqn.py, dueling_dqn.py, per_dqn.py ----

# Chi-square quantiles for 39 degrees of freedom (scipy.stats.chi2.ppf; scipy is not in requirements.txt)
_CHI2_39_P_1E_3, _CHI2_39_P_1E_10 = 72.055, 123.61


def _chi_square(counts, expected):
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.fixture(scope="module")
def double():
    return load_script("double_dqn.py")


@pytest.fixture(scope="module")
def dueling():
    return load_script("dueling_dqn.py")


@pytest.fixture(scope="module")
def per():
    return load_script("per_dqn.py")


@pytest.mark.parametrize("script", ["dqn_cartpole.py", "double_dqn.py", "dueling_dqn.py", "per_dqn.py"])
def test_every_algorithm_flag_reaches_the_loop(script, tmp_path, monkeypatch):
    """Each flag of the algorithm group, set away from its default, arrives where it acts in the real loop: Adam's
    rate and epsilon, the buffer's size, the batch, γ and τ as passed, the clipping norm, the loss, the width, the
    budget. (Schedules and frequencies have tests of their own.) benchmarks/flag_breaks.py ignores each in turn."""
    module, seen = load_script(script), {"adds": 0, "gamma": set(), "tau": set(), "batch": set(), "clip": set()}
    original_target, original_update = module.compute_td_target, module.update_target_network
    original_init, original_add = module.ReplayBuffer.__init__, module.ReplayBuffer.add

    class RecordingAdam(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            super().__init__(params, **kwargs)
            seen["adam"] = (self.param_groups[0]["lr"], self.param_groups[0]["eps"])

    def recording_init(self, capacity, *args, **kwargs):
        seen["capacity"] = capacity
        original_init(self, capacity, *args, **kwargs)

    def recording_add(self, *row):
        seen["adds"] += 1
        original_add(self, *row)

    def recording_target(*args):  # (online,) target network, rewards, next_obs, terminated, gamma
        seen["batch"].add(len(args[-4]))
        seen["gamma"].add(args[-1])
        return original_target(*args)

    def recording_update(target_network, q_network, tau):
        seen["tau"].add(tau)
        original_update(target_network, q_network, tau)

    def recording_clip(parameters, max_norm, *args, **kwargs):
        seen["clip"].add(max_norm)
        return torch.nn.utils.clip_grad.clip_grad_norm_(parameters, max_norm, *args, **kwargs)

    def recording_huber(*args, **kwargs):
        seen["huber"] = True
        return torch.nn.functional.huber_loss(*args, **kwargs, delta=1.0)
    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    monkeypatch.setattr(module.ReplayBuffer, "__init__", recording_init)
    monkeypatch.setattr(module.ReplayBuffer, "add", recording_add)
    monkeypatch.setattr(module, "compute_td_target", recording_target)
    monkeypatch.setattr(module, "update_target_network", recording_update)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    monkeypatch.setattr(module.F, "smooth_l1_loss", recording_huber)
    monkeypatch.chdir(tmp_path)
    module.main(["--total-timesteps", "900", "--learning-starts", "200", "--learning-rate", "3e-3", "--adam-eps", "1e-5",
                 "--buffer-size", "700", "--batch-size", "24", "--gamma", "0.9", "--tau", "0.3", "--hidden-dim", "20",
                 "--loss", "huber", "--max-grad-norm", "3.5", "--check-frequency", "0", "--eval-episodes", "1"])
    assert seen.pop("adam") == (3e-3, 1e-5) and seen.pop("huber")
    assert seen == {"adds": 900, "capacity": 700, "batch": {24}, "gamma": {0.9}, "tau": {0.3}, "clip": {3.5}}
    weights = torch.load(only_run_dir(tmp_path) / script.replace(".py", ".pt"))
    assert weights["net.0.weight"].shape == (20, 4)  # --hidden-dim: the first layer's width


def _fixed_q_network(q_table):
    """A hand-built network: observation e_i (a one-hot row) gives Q-values q_table[i]."""
    q_table = torch.tensor(q_table, dtype=torch.float32)
    network = torch.nn.Linear(q_table.shape[0], q_table.shape[1], bias=False)
    with torch.no_grad():
        network.weight.copy_(q_table.T)
    return network


def test_double_target_is_target_net_at_online_argmax(double, dqn):
    online = _fixed_q_network([[1, 2, 0], [5, 0, 1], [0, 0, 3], [0, 1, 9], [4, 0, 0]])
    target = _fixed_q_network([[10, 4, 7], [2, 8, 6], [1, 9, -1], [1, 2, 3], [7, 7, 7]])
    next_obs = torch.eye(5)
    rewards = torch.tensor([1.0, 0.0, -1.0, 0.5, 2.0])
    terminated = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0])
    y = double.compute_td_target(online, target, rewards, next_obs, terminated, gamma=0.5)
    # online argmax: actions 1, 0, 2, 2; the target network values them at 4, 2, -1, 3; row 4 is terminal
    assert y.tolist() == pytest.approx([1 + 0.5 * 4, 0 + 0.5 * 2, -1 + 0.5 * -1, 0.5 + 0.5 * 3, 2.0])
    max_target = dqn.compute_td_target(target, rewards, next_obs, terminated, gamma=0.5)
    assert max_target.tolist() == pytest.approx([1 + 0.5 * 10, 0 + 0.5 * 8, -1 + 0.5 * 9, 0.5 + 0.5 * 3, 2.0])
    # where the networks disagree on the best next action the targets differ; where they agree (row 3) they do not
    assert (y[:3] < max_target[:3]).all() and y[3] == max_target[3]
    assert not y.requires_grad  # the target is a constant for the gradient step


def test_double_target_on_random_networks_matches_the_formula(double):
    online, target = double.QNetwork(4, 3, 16), double.QNetwork(4, 3, 16)
    next_obs, rewards, terminated = torch.randn(64, 4), torch.randn(64), (torch.rand(64) < 0.2).float()
    y = double.compute_td_target(online, target, rewards, next_obs, terminated, gamma=0.9)
    with torch.no_grad():
        picked = online(next_obs).argmax(dim=1)
        expected = rewards + 0.9 * (1 - terminated) * target(next_obs)[torch.arange(64), picked]
    assert torch.allclose(y, expected)


def test_double_loop_selects_with_the_trained_network(double, tmp_path, monkeypatch):
    # In the loop, the selecting network must be the one being trained (it changes at every gradient step) and
    # the evaluating one the target network (it changes only at the copies, every 50 steps here).
    first_weights, second_weights, original = [], [], double.compute_td_target

    def recording_target(selector, evaluator, *rest):
        first_weights.append(next(selector.parameters()).detach().clone())
        second_weights.append(next(evaluator.parameters()).detach().clone())
        return original(selector, evaluator, *rest)
    monkeypatch.setattr(double, "compute_td_target", recording_target)
    monkeypatch.chdir(tmp_path)
    double.main([*map(str, TINY), "--train-frequency", "2"])
    changes = [[not torch.equal(a, b) for a, b in zip(w, w[1:])] for w in (first_weights, second_weights)]
    assert len(first_weights) == 200 and all(changes[0])  # steps 200-599, every 2nd
    assert 0 < sum(changes[1]) <= 600 // 50


def test_dueling_mean_over_actions_of_q_is_v(dueling):
    torch.manual_seed(0)
    network = dueling.QNetwork(4, 3, 32)
    with torch.no_grad():  # move the advantage stream's output far from 0, as training might
        network.advantage_stream[-1].bias.add_(torch.tensor([5.0, -2.0, 30.0]))
    obs = torch.randn(100, 4)
    with torch.no_grad():
        q_values = network(obs)
        features = network.net(obs)
        value, advantages = network.value_stream(features), network.advantage_stream(features)
    assert q_values.shape == (100, 3) and value.shape == (100, 1)
    assert torch.allclose(q_values.mean(dim=1), value.squeeze(1), atol=1e-5)  # Eq. (9): mean_a Q = V
    assert torch.allclose(q_values - value, advantages - advantages.mean(dim=1, keepdim=True), atol=1e-5)


def test_dueling_shifting_every_advantage_leaves_q_unchanged(dueling):
    network = dueling.QNetwork(4, 2, 16)
    obs = torch.randn(10, 4)
    with torch.no_grad():
        before = network(obs)
        network.advantage_stream[-1].bias.add_(7.0)  # A + c: V + A would move, V + (A - mean A) must not
        assert torch.allclose(network(obs), before, atol=1e-5)


def test_dueling_keeps_dqn_target_rule_and_loop(dueling, dqn):
    # the diff is the network alone: the target, the training loop and the evaluation are DQN's code
    for name in ["compute_td_target", "train", "evaluate", "main"]:
        assert _code(getattr(dueling, name)) == _code(getattr(dqn, name)), name


def _code(function):
    """A function's code without its comments and docstrings: what it does, not how it is explained."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def test_dueling_refuses_a_plain_dqn_model(dqn, tmp_path):
    torch.save(dqn.QNetwork(4, 2, 128).state_dict(), tmp_path / "dqn.pt")
    assert_one_line_error(run_script("dueling_dqn.py", "--eval-model", "dqn.pt", cwd=tmp_path))


def _brute_force_prefix_search(priorities, values):
    """The leaf j with sum(p[:j]) <= v < sum(p[:j+1]), by a cumulative sum over every leaf."""
    return np.searchsorted(np.cumsum(priorities), values, side="right")


@pytest.mark.parametrize("capacity", [1, 2, 5, 37, 64, 1000])
def test_per_sum_tree_matches_brute_force(per, capacity):
    rng = np.random.default_rng(capacity)
    tree, reference = per.SumTree(capacity), np.zeros(capacity)
    for _ in range(30):  # batches of updates, with duplicate leaves (the last one given counts)
        leaves = rng.integers(0, capacity, size=int(rng.integers(1, 70)))
        priorities = rng.exponential(1.0, size=len(leaves)) * (rng.random(len(leaves)) < 0.9)  # some are 0
        tree.update(leaves, priorities)
        for leaf, priority in zip(leaves, priorities):
            reference[leaf] = priority
        assert tree.total == pytest.approx(reference.sum(), rel=1e-12)
        assert np.array_equal(tree.priorities(np.arange(capacity)), reference)
        inner = np.arange(1, tree.first_leaf)
        assert np.allclose(tree.nodes[inner], tree.nodes[2 * inner] + tree.nodes[2 * inner + 1], rtol=1e-12)
        if reference.sum() > 0:
            values = rng.random(200) * reference.sum()
            assert np.array_equal(tree.find_prefix_sum(values), _brute_force_prefix_search(reference, values))


def test_per_sum_tree_prefix_search_at_exact_boundaries_skips_zero_leaves(per):
    tree = per.SumTree(7)
    priorities = np.array([1.0, 0.0, 2.0, 0.0, 0.0, 3.0, 1.0])  # integers: every sum is exact
    tree.update(np.arange(7), priorities)
    values = np.array([0.0, 0.5, 1.0, 2.9, 3.0, 5.99, 6.0, 6.5])
    found = tree.find_prefix_sum(values)
    assert found.tolist() == [0, 0, 2, 2, 5, 5, 6, 6]
    assert np.array_equal(found, _brute_force_prefix_search(priorities, values))
    assert tree.total == 7.0 and tree.first_leaf == 8 and tree.depth == 3


def _filled_per_buffer(per, capacity, size, td_errors, alpha=0.6, eps=1e-6, seed=0):
    rb = per.PrioritizedReplayBuffer(capacity, 1, np.random.default_rng(seed), alpha, eps)
    for row in np.arange(size, dtype=np.float32):
        rb.add(np.array([row]), 0, row, np.array([row + 0.5]), 0.0)
    rb.update_priorities(np.arange(size), td_errors)
    return rb


def test_per_sampling_frequencies_match_priorities(per):
    td_errors = np.random.default_rng(1).exponential(1.0, size=40)
    rb = _filled_per_buffer(per, 50, 40, td_errors)  # 10 rows never written: they must never come out
    counts = np.zeros(50)
    for _ in range(2000):
        obs, *_, rows, is_weights = rb.sample(32, "cpu", beta=0.4)
        assert np.array_equal(obs[:, 0].numpy(), rows)  # the rows returned are the transitions returned
        counts += np.bincount(rows, minlength=50)
    assert counts[40:].sum() == 0
    p_alpha = (np.abs(td_errors) + 1e-6) ** 0.6
    expected = counts.sum() * p_alpha / p_alpha.sum()  # P(i) = p_i^α / Σ_k p_k^α, Eq. (1)
    assert _chi_square(counts[:40], expected) < _CHI2_39_P_1E_3  # p-value above 0.001
    # the test has teeth: frequencies proportional to |δ| (α forgotten) or uniform are rejected outright
    for wrong in (np.abs(td_errors), np.ones(40)):
        assert _chi_square(counts[:40], counts.sum() * wrong / wrong.sum()) > _CHI2_39_P_1E_10  # p below 1e-10


def test_per_sampling_is_stratified(per):
    rb = _filled_per_buffer(per, 8, 8, np.ones(8), alpha=1.0)  # equal priorities: 8 segments, one row each
    for _ in range(20):
        assert sorted(rb.sample(8, "cpu", beta=1.0)[-2].tolist()) == list(range(8))


@pytest.mark.parametrize("beta", [0.0, 0.4, 1.0])
def test_per_importance_sampling_weights_match_the_formula(per, beta):
    td_errors = np.random.default_rng(2).exponential(1.0, size=30)
    rb = _filled_per_buffer(per, 100, 30, td_errors, alpha=0.7)  # N = 30 transitions in a buffer of 100
    *_, rows, is_weights = rb.sample(16, "cpu", beta=beta)
    p_alpha = (np.abs(td_errors) + 1e-6) ** 0.7
    probs = p_alpha / p_alpha.sum()
    expected = (30 * probs[rows]) ** -beta
    expected /= expected.max()  # w_i = (N P(i))^-β / max_j w_j
    assert is_weights.dtype == torch.float32 and np.allclose(is_weights.numpy(), expected, rtol=1e-6)


def test_per_new_transition_gets_the_maximum_priority(per):
    rb = per.PrioritizedReplayBuffer(10, 1, np.random.default_rng(0), alpha=0.5, eps=0.0)
    one = (np.zeros(1), 0, 0.0, np.zeros(1), 0.0)
    rb.add(*one)
    assert rb.tree.priorities(np.array([0])) == 1.0  # nothing seen yet: p_1 = 1 (Algorithm 1)
    rb.update_priorities(np.array([0]), np.array([-16.0]))  # |δ| = 16: p^α = 4
    rb.add(*one)
    assert rb.tree.priorities(np.array([1])) == 4.0
    rb.update_priorities(np.array([0, 1]), np.array([0.25, 0.25]))  # every priority falls; the maximum so far stays
    rb.add(*one)
    assert rb.tree.priorities(np.array([2])) == 4.0
    assert rb.tree.total == pytest.approx(0.5 + 0.5 + 4.0)


def test_per_wraps_around_like_the_uniform_buffer(per):
    rb = per.PrioritizedReplayBuffer(5, 1, np.random.default_rng(0), alpha=0.6, eps=1e-6)
    for i in range(8):  # 8 rows into 5 slots
        rb.add(np.array([float(i)]), 0, float(i), np.array([10.0 + i]), 0)
    assert (rb.size, rb.pos) == (5, 3) and rb.obs[:, 0].tolist() == [5.0, 6.0, 7.0, 3.0, 4.0]
    obs, _, rewards, next_obs, _, rows, _ = rb.sample(500, "cpu", beta=0.4)
    assert set(obs[:, 0].tolist()) == {3.0, 4.0, 5.0, 6.0, 7.0}
    assert torch.equal(next_obs[:, 0], obs[:, 0] + 10) and torch.equal(rewards, obs[:, 0])


def test_per_loop_anneals_beta_weights_the_loss_and_updates_priorities(per, tmp_path, monkeypatch):
    """In the real loop: β anneals to 1, the loss is the IS-weighted mean (Algorithm 1, line 13), and the new
    priorities come from the TD errors δ = y - Q(s, a) of that same update (line 12)."""
    steps = []  # per gradient step: beta, weights, rows, the loss's inputs, the loss, the priority update
    original_sample, original_update = per.PrioritizedReplayBuffer.sample, per.PrioritizedReplayBuffer.update_priorities
    original_mse, original_train_step = per.F.mse_loss, per.Logs.train_step

    def recording_sample(self, batch_size, device, beta):
        batch = original_sample(self, batch_size, device, beta)
        steps.append({"beta": beta, "rows": batch[-2].copy(), "weights": batch[-1].clone()})
        return batch

    def recording_mse(q_taken, td_target, **kwargs):
        steps[-1].update(q_taken=q_taken.detach().clone(), td_target=td_target.clone(), reduction=kwargs.get("reduction"))
        return original_mse(q_taken, td_target, **kwargs)

    def recording_train_step(self, global_step, loss, *rest):
        steps[-1]["loss"] = loss.item()
        return original_train_step(self, global_step, loss, *rest)

    def recording_update(self, rows, td_errors):
        steps[-1].update(updated_rows=rows.copy(), td_errors=np.copy(td_errors))
        original_update(self, rows, td_errors)
        steps[-1]["priorities"] = self.tree.priorities(rows).copy()
    monkeypatch.setattr(per.PrioritizedReplayBuffer, "sample", recording_sample)
    monkeypatch.setattr(per.PrioritizedReplayBuffer, "update_priorities", recording_update)
    monkeypatch.setattr(per.F, "mse_loss", recording_mse)
    monkeypatch.setattr(per.Logs, "train_step", recording_train_step)
    monkeypatch.chdir(tmp_path)
    per.main([*map(str, TINY), "--train-frequency", "1", "--check-frequency", "0", "--no-save-model",
              "--prioritized-replay-alpha", "0.7", "--prioritized-replay-beta", "0.2", "--prioritized-replay-eps", "0.01"])
    # β from 0.2 at step 0 to 1 at the end, linearly: gradient steps run from step 200 to 599
    assert len(steps) == 400 and np.allclose([step["beta"] for step in steps], 0.2 + 0.8 * np.arange(200, 600) / 600)
    assert {step["reduction"] for step in steps} == {"none"}  # an elementwise loss, to be weighted by w before the mean
    unequal_weights = 0
    for step in steps:
        squared_errors = (step["td_target"] - step["q_taken"]) ** 2
        assert step["loss"] == pytest.approx((step["weights"] * squared_errors).mean().item(), rel=1e-5)
        unequal_weights += not torch.allclose(step["weights"], torch.ones(32))
        assert np.array_equal(step["updated_rows"], step["rows"])
        assert np.allclose(step["td_errors"], (step["td_target"] - step["q_taken"]).numpy(), atol=1e-6)  # δ, not y
        last = {row: i for i, row in enumerate(step["rows"])}  # a row sampled twice keeps its last update
        expected = (np.abs(step["td_errors"]) + 0.01) ** 0.7  # p_i^α = (|δ_i| + ε)^α, α = 0.7, ε = 0.01
        assert np.allclose([step["priorities"][i] for i in last.values()], [expected[i] for i in last.values()])
    assert unequal_weights > 300  # weights that differ from 1, so an unweighted loss would not pass for a weighted one


@pytest.mark.parametrize("flags", [
    ["--prioritized-replay-alpha", -0.1], ["--prioritized-replay-alpha", 1.5], ["--prioritized-replay-beta", -0.1],
    ["--prioritized-replay-beta", 1.01], ["--prioritized-replay-eps", 0], ["--prioritized-replay-eps", -1e-6],
    ["--prioritized-replay-alpha", "high"], ["--prioritized-replay-eps", "nan"], ["--prioritized-replay-beta", "inf"],
])
def test_per_bad_input_is_one_line_and_exit_code_2(per, flags, tmp_path, capsys, monkeypatch):
    assert "--prioritized-replay-" in main_error(per, flags, tmp_path, capsys, monkeypatch)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("flags", [["--buffer-size", 0], ["--gamma", 1.5], ["--env-id", "Pendulum-v1"],
                                   ["--eval-model", "missing.pt"], ["--no-such-flag"], ["--seed", 4294967296],
                                   ["--learning-rate", "nan"], ["--eval-model", "README.md"],
                                   ["--total-timesteps", 2**31]])
def test_variant_keeps_dqn_bad_input_handling(variant, flags, tmp_path, capsys, monkeypatch):
    (tmp_path / "README.md").write_text("not a model")
    main_error(load_script(variant), flags, tmp_path, capsys, monkeypatch)


@pytest.mark.parametrize("script", ["q_learning_frozenlake.py", "dqn_cartpole.py", "dqn_atari.py"])
def test_bad_input_from_the_command_line_is_one_line_and_exit_code_2(script, tmp_path):
    """As a user types it (the tests above call main() in-process, the variants' plumbing is DQN's):
    one line, exit code 2, no traceback."""
    assert_one_line_error(run_script(script, "--learning-rate", "-1", cwd=tmp_path))
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_smoke_train_save_and_evaluate_saved_model(variant, tmp_path, monkeypatch):
    """Each saved model, from the run folder alone, evaluates again to exactly its own returns in eval.json."""
    module = load_script(variant)
    monkeypatch.chdir(tmp_path)
    module.main([*map(str, TINY), "--check-frequency", "200", "--check-episodes", "1"])
    run_dir = only_run_dir(tmp_path)
    assert f"__{variant.removesuffix('.py')}__1__" in run_dir.name  # the experiment name is the file's
    assert read_csv(run_dir / "episodes.csv") and read_csv(run_dir / "train.csv") and read_csv(run_dir / "checks.csv")
    saved = json.loads((run_dir / "eval.json").read_text())
    final = run_dir / variant.replace(".py", ".pt")
    assert module.main(["--eval-model", str(final)]).tolist() == saved["final_returns"]
    kept = run_dir / variant.replace(".py", "_kept.pt")
    assert module.main(["--eval-model", str(kept)]).tolist() == saved["kept_returns"]


def test_dueling_model_with_a_non_default_width_evaluates_from_the_run_folder_alone(dueling, dqn, tmp_path, capsys,
                                                                                   monkeypatch):
    run = dict(cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    run_main(dueling, *TINY, "--hidden-dim", 24, "--check-frequency", 0, **run)
    run_dir = only_run_dir(tmp_path)
    out = run_main(dueling, "--eval-model", run_dir / "dueling_dqn.pt", **run)
    saved = json.loads((run_dir / "eval.json").read_text())
    assert _result_line(out).startswith(f"result: {saved['final_mean']:.1f} ± {saved['final_std']:.1f} over 2 greedy")
    refused = main_error(dqn, ["--eval-model", run_dir / "dueling_dqn.pt"], tmp_path, capsys, monkeypatch,
                         folder_ok=True)
    assert "dueling_dqn.pt is not a model of dqn_cartpole.py" in refused


def test_probe_states_change_no_training_number(dqn, tmp_path, capsys, monkeypatch):
    returns = []
    for probe in [0, 500]:
        (tmp_path / str(probe)).mkdir()
        run_main(dqn, *TINY, "--total-timesteps", 1500, "--probe-states", probe, cwd=tmp_path / str(probe),
                 capsys=capsys, monkeypatch=monkeypatch)
        run_dir = only_run_dir(tmp_path / str(probe))
        returns.append([row["episodic_return"] for row in read_csv(run_dir / "episodes.csv")])
        probe_q = [row["probe_q_max"] for row in read_csv(run_dir / "train.csv")]
        assert all(q == "nan" for q in probe_q) if probe == 0 else all(np.isfinite(float(q)) for q in probe_q)
    assert returns[0] == returns[1] and len(returns[0]) > 10


# ---- dqn_atari.py ----

# The flags a student may change the defaults of, at the values these tests were written for; a new run
# starts from them (a --resume or --eval-model run takes its run's own), the test's own flags after them.
ATARI_PINNED = ["--seed", 1, "--learning-rate", 1e-4, "--gamma", 0.99, "--start-e", 1.0, "--end-e", 0.01,
                "--exploration-fraction", 0.1, "--batch-size", 32, "--total-timesteps", 10_000_000]
ATARI_TINY = [*ATARI_PINNED, "--total-timesteps", 1500, "--learning-starts", 1000, "--buffer-size", 1000, "--batch-size", 32,
              "--target-network-frequency", 200, "--exploration-fraction", 0.5, "--eval-episodes", 1,
              "--eval-max-frames", 800, "--threads", 1]  # 1: the suite's two workers share two cores


@pytest.fixture(scope="module")
def atari():
    return load_script("dqn_atari.py")


def _pinned(flags):
    flags = [str(flag) for flag in flags]
    return flags if {"--resume", "--eval-model"} & set(flags) else [*map(str, ATARI_PINNED), *flags]


def _atari_main(atari, *flags):
    return atari.main(_pinned(flags))


def _atari_result(stdout):
    """The numbers of the `result:` line: (mean, std, games)."""
    (line,) = [line for line in stdout.splitlines() if line.startswith("result: ")]
    mean, std, games = re.match(r"result: (-?[\d.]+) ± ([\d.]+) over (\d+) games", line).groups()
    return float(mean), float(std), int(games)


def _atari_wrap_envs(atari, monkeypatch, on_step=None, on_reset=None, max_frames=None):
    """Wrap make_envs: call on_step(training, actions, out) after every step and on_reset(training, seed, out)
    after every reset, and count the envs made and closed."""
    made = {"made": 0, "closed": 0}
    original_make_envs = atari.make_envs

    def wrapped_make_envs(args, num_envs, training=True, **overrides):
        if max_frames and training:
            overrides["max_num_frames_per_episode"] = max_frames
        envs = original_make_envs(args, num_envs, training, **overrides)
        original_step, original_reset, original_close = envs.step, envs.reset, envs.close
        made["made"] += 1

        def step(actions):
            out = original_step(actions)
            if on_step:
                on_step(training, np.copy(actions), out)
            return out

        def reset(*, seed=None, options=None):
            out = original_reset(seed=seed, options=options)
            if on_reset:
                on_reset(training, seed, out)
            return out

        def close():
            made["closed"] += 1
            original_close()
        envs.step, envs.reset, envs.close = step, reset, close
        return envs
    monkeypatch.setattr(atari, "make_envs", wrapped_make_envs)
    return made


def _digest(obs, action, reward, next_obs, terminated):
    return hashlib.blake2b(b"".join([np.ascontiguousarray(obs, dtype=np.uint8).tobytes(), bytes([int(action)]),
                                     str(float(reward)).encode(), np.ascontiguousarray(next_obs, dtype=np.uint8).tobytes(),
                                     bytes([bool(terminated)])]), digest_size=16).digest()


def test_atari_buffer_samples_exactly_the_transitions_the_env_returned(atari, tmp_path, monkeypatch):
    """Random Breakout play through the real training loop, 2 envs, a 2 x 150-slot buffer that wraps ~10 times,
    a 1,200-frame limit so some games are truncated. The truth comes from the env alone: (s, a, sign r, s',
    terminated) with s' = info["final_obs"] where a new game began (its frame counter restarted). Every row
    that ReplayBuffer.sample() itself returns must be one of these transitions, whole: lost lives (stack kept),
    game overs and truncations (true last stack) all sampled."""
    truth, state, counts = {}, {}, {"checked": 0, "life loss": 0, "game over": 0, "truncation": 0}

    def on_reset(training, seed, out):
        if training:
            state["obs"], state["frame"] = out[0].copy(), out[1]["episode_frame_number"].copy()

    def on_step(training, actions, out):
        if not training:
            return
        next_obs, rewards, terminations, truncations, info = out
        new_game = info["episode_frame_number"] < state["frame"] + 1  # the counter restarted: a reset happened
        for i in range(len(actions)):
            true_next = info["final_obs"][i] if new_game[i] else next_obs[i]
            kind = ("truncation" if truncations[i] else "game over" if new_game[i] else
                    "life loss" if terminations[i] else None)
            truth[_digest(state["obs"][i], actions[i], np.sign(rewards[i]), true_next, terminations[i])] = kind
        state["obs"], state["frame"] = next_obs.copy(), info["episode_frame_number"].copy()
    _atari_wrap_envs(atari, monkeypatch, on_step, on_reset, max_frames=1200)

    original_add, adds = atari.ReplayBuffer.add, [0]

    def checking_add(self, *row):
        original_add(self, *row)
        adds[0] += 1
        if adds[0] % 7 == 0:
            obs_b, actions_b, rewards_b, next_obs_b, terminated_b = self.sample(64, "cpu")
            for j in range(64):
                key = _digest(obs_b[j].numpy(), actions_b[j], rewards_b[j], next_obs_b[j].numpy(), terminated_b[j])
                assert key in truth, f"sampled row {j} is no transition the env returned"
                if truth[key]:
                    counts[truth[key]] += 1
            counts["checked"] += 64
    monkeypatch.setattr(atari.ReplayBuffer, "add", checking_add)
    monkeypatch.chdir(tmp_path)
    _atari_main(atari, "--num-envs", 2, "--buffer-size", 300, "--total-timesteps", 3000, "--learning-starts", 10**6,
                "--exploration-fraction", 1, "--end-e", 1, "--eval-episodes", 1, "--eval-max-frames", 40, "--no-save-model")
    assert counts["checked"] >= 10_000
    assert counts["life loss"] >= 100 and counts["game over"] >= 10 and counts["truncation"] >= 1, counts


def test_atari_buffer_masks_frames_from_before_an_episode_start(atari):
    rb = atari.ReplayBuffer(12, 1, np.random.default_rng(0))
    frame = lambda v: np.full((1, 4, 84, 84), v, dtype=np.uint8)  # noqa: E731  (a stack whose newest frame is v)
    one = np.ones(1, dtype=bool)
    rb.add(frame(1), [0], [1], frame(2), [False], one)           # slots 0, 1
    rb.add(frame(2), [1], [0], frame(3), [True], ~one)           # slot 2 (a lost life: the stack goes on)
    rb.add(frame(3), [2], [-1], frame(4), [True], ~one)          # slot 3: the game's last frame, 4
    rb.add(frame(9), [3], [0], frame(10), [False], one)          # a new game: slots 4, 5
    assert rb.valid[0].tolist()[:6] == [True, True, True, False, True, False]
    stacks = rb._stacks(np.zeros(4, dtype=int), np.array([1, 3, 4, 5]))
    assert stacks[:, :, 0, 0].tolist() == [[0, 0, 1, 2], [1, 2, 3, 4], [0, 0, 0, 9], [0, 0, 9, 10]]
    env_idx, slot_idx = rb.sample_indices(300)
    assert set(slot_idx.tolist()) == {0, 1, 2, 4}  # never the last frame of a game, nor the newest slot
    obs, actions, rewards, next_obs, terminated = rb.sample(8, "cpu")
    assert obs.dtype == next_obs.dtype == torch.uint8 and obs.shape == (8, 4, 84, 84)  # floats only in the network
    assert atari.QNetwork(4)(obs).dtype == torch.float32


def test_atari_env_ids_name_the_game(atari):
    assert atari.atari_game("BreakoutNoFrameskip-v4") == "breakout"
    assert atari.atari_game("ALE/Pong-v5") == "pong"
    assert atari.atari_game("ALE/SpaceInvaders-v5") == "space_invaders"


class _TinyQNetwork(torch.nn.Module):
    """A stand-in for QNetwork that reads every 21st pixel: a gradient step in microseconds."""

    def __init__(self, n_actions):
        super().__init__()
        self.linear = torch.nn.Linear(4 * 4 * 4, n_actions)

    def forward(self, obs):
        return self.linear(obs[:, :, ::21, ::21].flatten(1).float() / 255.0)


@pytest.mark.parametrize("num_envs, train_frequency, expected", [(1, 4, 600), (3, 2, 1200), (8, 4, 600)])
def test_atari_gradient_steps_and_target_updates_at_the_rate_the_flags_promise(atari, num_envs, train_frequency,
                                                                               expected, tmp_path, monkeypatch):
    """2,400 env steps in the real loop: --train-frequency and --target-network-frequency count env steps summed
    over envs, whatever --num-envs (issue 9's table: 800, 800 and 300 gradient steps before the fix). Each
    multiple m of a frequency is one gradient step (target update) in the vector step that plays env step m,
    the one starting at global step m // num_envs * num_envs: the exact list of steps, not only the totals
    (a window shifted by one env step has the same totals)."""
    seen = {"gradient steps": [], "target updates": []}
    monkeypatch.setattr(atari, "QNetwork", _TinyQNetwork)  # the real loop, a network cheap enough for 1,200 steps
    original_td_target, original_update = atari.compute_td_target, atari.update_target_network
    env_steps = [0]

    def on_step(training, actions, out):
        env_steps[0] += training

    def recording_td_target(*a, **k):  # the vector step just played started at global step (calls - 1) * num_envs
        seen["gradient steps"].append((env_steps[0] - 1) * num_envs)
        return original_td_target(*a, **k)

    def recording_update(*a, **k):
        seen["target updates"].append((env_steps[0] - 1) * num_envs)
        return original_update(*a, **k)
    _atari_wrap_envs(atari, monkeypatch, on_step)
    monkeypatch.setattr(atari, "compute_td_target", recording_td_target)
    monkeypatch.setattr(atari, "update_target_network", recording_update)
    monkeypatch.chdir(tmp_path)
    _atari_main(atari, "--num-envs", num_envs, "--train-frequency", train_frequency, "--target-network-frequency", 100,
                "--total-timesteps", 2400, "--learning-starts", 0, "--buffer-size", 64, "--batch-size", 2,
                "--start-e", 1, "--end-e", 1, "--eval-episodes", 1, "--eval-max-frames", 40, "--no-save-model")
    vector_step_of = lambda m: m // num_envs * num_envs  # noqa: E731
    assert seen["gradient steps"] == [vector_step_of(m) for m in range(0, 2400, train_frequency)]
    assert seen["target updates"] == [vector_step_of(m) for m in range(0, 2400, 100)]
    assert (len(seen["gradient steps"]), len(seen["target updates"])) == (expected, 24)


def test_atari_budget_is_rounded_up_to_whole_vector_steps(atari, capsys):
    assert atari.due(0, 1, 4) == 1 and [atari.due(s, 1, 4) for s in range(1, 9)] == [0, 0, 0, 1, 0, 0, 0, 1]
    args = atari.parse_args(["--total-timesteps", "1001", "--num-envs", "4"])
    assert args.total_timesteps == 1004
    assert capsys.readouterr().err.strip() == ("note: --total-timesteps 1001 is not a multiple of --num-envs 4; "
                                               "running 1004")


def _atari_games_by_frame_counter(atari, monkeypatch, num_envs):
    """Wrap the training envs: a new game started on a step iff the env's own frame counter restarted (the step that
    ends a game returns the next game's first info), an oracle apart from the script's game_over(). Returns the
    list of (env, vector step, score, hits, lives lost, length) of every game that ended, and the stored rewards
    and `terminated` flags with the env's own terminations and new-game flags, step by step."""
    seen = {"games": [], "stored": [], "env": [], "frame": None, "steps": 0}
    current = [{"score": 0.0, "hits": 0, "lives_lost": 0, "length": 0} for _ in range(num_envs)]

    def on_reset(training, seed, out):
        if training:
            seen["frame"] = out[1]["episode_frame_number"].copy()

    def on_step(training, actions, out):
        if not training:
            return
        _, reward, term, trunc, info = out
        new_game = info["episode_frame_number"] < seen["frame"] + 4  # frame skip 4: a running game gains 4
        seen["env"].append((term.copy(), new_game.copy()))
        for i in range(num_envs):
            game = current[i]
            game["score"] += float(reward[i])
            game["hits"] += int(reward[i] > 0)
            game["lives_lost"] += int(term[i] and not new_game[i])
            game["length"] += 1
            if new_game[i]:
                seen["games"].append((i, seen["steps"], game["score"], game["hits"], game["lives_lost"], game["length"]))
                current[i] = {"score": 0.0, "hits": 0, "lives_lost": 0, "length": 0}
        seen["frame"] = info["episode_frame_number"].copy()
        seen["steps"] += 1
    _atari_wrap_envs(atari, monkeypatch, on_step, on_reset)
    original_add = atari.ReplayBuffer.add

    def recording_add(self, obs, actions, rewards, next_obs, terminated, episode_start):
        seen["stored"].append((np.copy(rewards), np.copy(terminated)))
        original_add(self, obs, actions, rewards, next_obs, terminated, episode_start)
    monkeypatch.setattr(atari.ReplayBuffer, "add", recording_add)
    return seen


def test_atari_logs_the_real_game_score_over_all_lives(atari, tmp_path, monkeypatch):
    """Space Invaders pays 5-30 points a hit and has 3 lives: the logged return must be the unclipped sum
    over the whole game, while the buffer stores only the sign (Nature's clipping, for learning only)."""
    seen = _atari_games_by_frame_counter(atari, monkeypatch, 1)
    monkeypatch.chdir(tmp_path)
    _atari_main(atari, "--env-id", "SpaceInvadersNoFrameskip-v4", "--total-timesteps", 2500, "--buffer-size", 1000,
                "--learning-starts", 10**6, "--start-e", 1, "--end-e", 1, "--eval-episodes", 1, "--eval-max-frames", 40,
                "--no-save-model")
    logged = [float(row["episodic_return"]) for row in read_csv(only_run_dir(tmp_path) / "episodes.csv")]
    games = seen["games"]
    assert len(logged) >= 2 and logged == [score for _, _, score, *_ in games]
    assert all(lives_lost == 2 for *_, lives_lost, _ in games)  # 3 lives: 2 lost lives, then the game over
    # every hit is worth 5-30 points: the log holds points over all lives, not the clipped count of hits
    assert all(score >= 5 * hits for _, _, score, hits, _, _ in games) and sum(g[3] for g in games) >= 10
    stored = np.concatenate([rewards for rewards, _ in seen["stored"]])
    assert set(stored.tolist()) == {0.0, 1.0}  # the sign of 5-30 points: 1


@pytest.mark.parametrize("env_id, num_envs, steps, lives", [("BreakoutNoFrameskip-v4", 2, 1600, 5),
                                                             ("PongNoFrameskip-v4", 1, 2100, 0)])
def test_atari_a_game_ends_at_the_game_over_and_a_lost_life_is_terminal_only_for_learning(
        atari, env_id, num_envs, steps, lives, tmp_path, monkeypatch):
    """The env's frame counter says when a game ended: episodes.csv has one row per game, at that step and of that
    length, and nowhere else; a lost life (Breakout: 5 lives, 4 lost lives per game) is stored `terminated` while
    the game and its row go on; Pong has no lives (always 0) and ends only at its game over (21 points)."""
    seen = _atari_games_by_frame_counter(atari, monkeypatch, num_envs)
    monkeypatch.setattr(atari, "QNetwork", _TinyQNetwork)
    monkeypatch.chdir(tmp_path)
    _atari_main(atari, "--env-id", env_id, "--num-envs", num_envs, "--total-timesteps", steps, "--buffer-size", 400,
                "--learning-starts", 10**6, "--start-e", 1, "--end-e", 1, "--eval-episodes", 1, "--eval-max-frames", 40,
                "--no-save-model")
    rows = read_csv(only_run_dir(tmp_path) / "episodes.csv")
    expected = sorted((step * num_envs + i + 1, score, length) for i, step, score, _, _, length in seen["games"])
    assert [(int(r["global_step"]), float(r["episodic_return"]), int(r["episodic_length"])) for r in rows] == expected
    assert len(rows) >= 2
    lost = [lives_lost for *_, lives_lost, _ in seen["games"]]
    assert lost == [max(lives - 1, 0)] * len(lost)  # every life played, and no game ended at a lost life
    for (env_term, new_game), (_, stored_term) in zip(seen["env"], seen["stored"]):
        assert stored_term.tolist() == env_term.tolist()  # a lost life and a game over are both terminal for learning
    if lives:
        assert sum(int((term & ~new).sum()) for term, new in seen["env"]) >= 4 * len(rows)


def test_atari_protocol_no_op_starts_frame_skip_4_and_sticky_actions_only_when_asked(atari, monkeypatch):
    """The env the script makes, measured by its own frame counter: up to 30 no-ops at each start (the starts of 20
    seeds differ), 4 frames an agent step, and no sticky actions unless --sticky-actions, whatever the id (ALE/*-v5
    ids would bring 0.25): the same seed and actions give the same game on BreakoutNoFrameskip-v4 and
    ALE/Breakout-v5, and another game with --sticky-actions (repeat probability 0.25)."""
    kwargs = []
    real_env = atari.AtariVectorEnv
    monkeypatch.setattr(atari, "AtariVectorEnv", lambda *a, **k: kwargs.append(k) or real_env(*a, **k))

    def play(*flags):
        envs = atari.make_envs(atari.parse_args(list(flags)), 1)
        starts = [int(envs.reset(seed=seed)[1]["episode_frame_number"][0]) for seed in range(20)]
        obs, info = envs.reset(seed=7)
        frames, observations = [int(info["episode_frame_number"][0])], [obs]
        for t in range(300):
            obs, _, _, _, info = envs.step(np.array([t % 4]))  # the action changes every step: repeats show
            frames.append(int(info["episode_frame_number"][0]))
            observations.append(obs)
        envs.close()
        return starts, frames, np.concatenate(observations)
    starts, frames, v4 = play()
    assert len(set(starts)) >= 8 and max(starts) <= 30 + 10, starts  # no-op starts: 0 to 30 no-ops, then FIRE
    assert np.diff(frames[:50]).tolist() == [4] * 49  # frame skip 4
    _, _, v5 = play("--env-id", "ALE/Breakout-v5")
    _, _, sticky = play("--sticky-actions")
    assert np.array_equal(v4, v5) and not np.array_equal(v4, sticky)
    assert [k["repeat_action_probability"] for k in kwargs] == [0.0, 0.0, 0.25]


def test_atari_every_algorithm_flag_reaches_the_loop(atari, tmp_path, monkeypatch):
    """Each flag of the algorithm group, set away from its default, arrives where it acts in the real loop (a tiny
    network): the game, the budget, the envs, sticky actions, Adam's rate and epsilon, the buffer, the batch, γ, τ,
    Huber, the clipping norm, bf16 autocast, the first gradient step, and epsilon and the learning rate at every
    step, against numbers computed by hand. (Frequencies: the test above.) benchmarks/flag_breaks.py breaks each."""
    seen = {"adds": 0, "gamma": set(), "tau": set(), "batch": set(), "clip": set(), "autocast": set(), "lr": [],
            "epsilon": [], "sticky": set()}
    original_target, original_update = atari.compute_td_target, atari.update_target_network
    original_init, original_add = atari.ReplayBuffer.__init__, atari.ReplayBuffer.add
    original_train_step, original_progress = atari.Logs.train_step, atari.Logs.progress
    real_env = atari.AtariVectorEnv
    bf16 = ["--bf16"] if atari.bf16_supported(False) else []

    class RecordingNetwork(_TinyQNetwork):
        def __init__(self, n_actions):
            super().__init__(n_actions)
            seen["n_actions"] = n_actions

        def forward(self, obs):
            if torch.is_grad_enabled():  # the online network's forward in the gradient step (not the target's)
                seen["autocast"].add(torch.is_autocast_enabled("cpu"))
            return super().forward(obs)

    class RecordingAdam(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            super().__init__(params, **kwargs)
            seen["adam"] = (self.param_groups[0]["lr"], self.param_groups[0]["eps"])

    def recording_init(self, capacity, num_envs, rng):
        seen["capacity"] = capacity
        original_init(self, capacity, num_envs, rng)

    def recording_add(self, obs, *row):
        seen["adds"] += len(obs)
        original_add(self, obs, *row)

    def recording_target(target_network, rewards, next_obs, terminated, gamma):
        seen["batch"].add(len(rewards))
        seen["gamma"].add(gamma)
        return original_target(target_network, rewards, next_obs, terminated, gamma)

    def recording_update(target_network, q_network, tau):
        seen["tau"].add(tau)
        original_update(target_network, q_network, tau)

    def recording_clip(parameters, max_norm, *args, **kwargs):
        seen["clip"].add(max_norm)
        return torch.nn.utils.clip_grad.clip_grad_norm_(parameters, max_norm, *args, **kwargs)

    def recording_huber(*args, **kwargs):
        seen["huber"] = True
        return torch.nn.functional.huber_loss(*args, **kwargs, delta=1.0)

    def recording_train_step(self, global_step, loss, q_taken, learning_rate, losses_finite, grad_norm):
        seen["lr"].append((global_step, learning_rate))
        original_train_step(self, global_step, loss, q_taken, learning_rate, losses_finite, grad_norm)

    def recording_progress(self, steps_done, epsilon, recent_returns):
        seen["epsilon"].append((steps_done, epsilon))
        original_progress(self, steps_done, epsilon, recent_returns)

    def recording_env(game, num_envs, **kwargs):
        seen["sticky"].add(kwargs["repeat_action_probability"])
        return real_env(game, num_envs, **kwargs)
    monkeypatch.setattr(atari, "QNetwork", RecordingNetwork)
    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    monkeypatch.setattr(atari.ReplayBuffer, "__init__", recording_init)
    monkeypatch.setattr(atari.ReplayBuffer, "add", recording_add)
    monkeypatch.setattr(atari, "compute_td_target", recording_target)
    monkeypatch.setattr(atari, "update_target_network", recording_update)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    monkeypatch.setattr(atari.F, "smooth_l1_loss", recording_huber)
    monkeypatch.setattr(atari.Logs, "train_step", recording_train_step)
    monkeypatch.setattr(atari.Logs, "progress", recording_progress)
    monkeypatch.setattr(atari, "AtariVectorEnv", recording_env)
    monkeypatch.chdir(tmp_path)
    total, starts = 1200, 300
    _atari_main(atari, "--env-id", "PongNoFrameskip-v4", "--total-timesteps", total, "--num-envs", 3, "--sticky-actions",
                "--learning-rate", 3e-3, "--anneal-lr", "--adam-eps", 1e-5, "--buffer-size", 600, "--batch-size", 24,
                "--gamma", 0.9, "--tau", 0.3, "--target-network-frequency", 100, "--train-frequency", 6,
                "--learning-starts", starts, "--start-e", 0.9, "--end-e", 0.2, "--exploration-fraction", 0.5,
                "--loss", "huber", "--max-grad-norm", 3.5, *bf16, "--eval-episodes", 1, "--eval-max-frames", 40,
                "--no-save-model")
    assert seen.pop("adam") == (3e-3, 1e-5) and seen.pop("huber") and seen.pop("n_actions") == 6  # Pong: 6 actions
    assert seen.pop("autocast") == {bool(bf16)}
    gradient_steps = list(range(starts, total, 6))  # 3 envs, a gradient step every 6 env steps from step 300
    assert seen.pop("lr") == [(step, pytest.approx(3e-3 * (1 - step / total), rel=1e-12)) for step in gradient_steps]
    assert seen.pop("epsilon") == [(step + 3, pytest.approx(max(0.2, 0.9 - 0.7 * step / 600), rel=1e-12))
                                   for step in range(0, total, 3)]  # by hand: 0.9 to 0.2 over half the run
    assert seen == {"adds": total, "capacity": 600, "batch": {24}, "gamma": {0.9}, "tau": {0.3}, "clip": {3.5},
                    "sticky": {0.25}}


class _AlwaysFire(torch.nn.Module):
    """A stand-in network whose greedy action is always FIRE (1 of Breakout's 4 actions)."""

    def forward(self, obs):
        q = torch.zeros(len(obs), 4)
        q[:, 1] = 1.0
        return q


def test_atari_evaluation_plays_whole_games_at_epsilon_0_05_on_seeds_of_its_own(atari, monkeypatch):
    """Inside the real evaluate(): every game goes on through its lost lives until the game over (5 lives), the
    actions differ from the greedy one at the rate epsilon 0.05 gives (3 in 4 random actions differ), each game
    starts from its own seed, and no two training seeds (nor training itself, seeds >= 0) share one."""
    steps, seeds, made = [], [], None

    def on_step(training, actions, out):
        assert not training
        steps.append((int(actions[0]), int(out[4]["lives"][0]), bool(out[2][0]), bool(out[3][0])))

    def on_reset(training, seed, out):
        seeds.append(seed)
    made = _atari_wrap_envs(atari, monkeypatch, on_step, on_reset)
    args = atari.parse_args(["--eval-episodes", "10", "--seed", "5"])
    returns, lengths = atari.evaluate(_AlwaysFire(), args, "cpu")
    assert seeds == [atari.eval_seed(5, game) for game in range(10)] and made == {"made": 1, "closed": 1}
    assert len(steps) == lengths.sum()
    start = 0
    for length in lengths:  # each game: lives 5 to 1 played through, then the game over
        game = steps[start:start + length]
        # (the step that ends the game returns the next game's first observation and info: lives 5 again)
        assert [lives for _, lives, _, _ in game[:-1]] == sorted(lives for _, lives, _, _ in game[:-1])[::-1]
        assert {lives for _, lives, _, _ in game[:-1]} == {5, 4, 3, 2, 1} and game[-1][1] == 5
        assert not any(term or trunc for _, _, term, trunc in game[:-1]) and game[-1][2]
        start += length
    # seeded: the same games again, game k the same whether 3 or 10 are asked for (lengths differ game to game)
    again = atari.evaluate(_AlwaysFire(), atari.parse_args(["--eval-episodes", "3", "--seed", "5"]), "cpu")
    assert again[0].tolist() == returns[:3].tolist() and again[1].tolist() == lengths[:3].tolist()
    assert len(set(lengths)) > 1
    not_greedy = np.mean([action != 1 for action, *_ in steps[:lengths.sum()]])
    assert len(steps) >= 1000 and 0.02 <= not_greedy <= 0.06, (len(steps), not_greedy)
    owned = [{atari.eval_seed(seed, game) for game in range(atari.EVAL_GAMES_PER_SEED)} for seed in range(1, 11)]
    assert len(set().union(*owned)) == 10 * atari.EVAL_GAMES_PER_SEED  # disjoint
    # within int32 and non-negative (ALE draws a random start for a negative seed), above every training seed
    assert atari.MAX_SEED + 10**6 < atari.eval_seed(0, 0) < atari.eval_seed(atari.MAX_SEED, atari.EVAL_GAMES_PER_SEED - 1) < 2**31


@pytest.mark.parametrize("flags", [
    ["--buffer-size", 0], ["--batch-size", -1], ["--learning-rate", 0], ["--total-timesteps", -5],
    ["--batch-size", 200, "--buffer-size", 100], ["--gamma", 1.5], ["--exploration-fraction", 0],
    ["--seed", -1], ["--num-envs", 0], ["--buffer-size", 12, "--num-envs", 2, "--batch-size", 4],
    ["--env-id", "NoSuchGame-v4"], ["--env-id", "CartPole-v1"], ["--eval-model", "missing.pt"],
    ["--eval-model", "full_actions.pt"], ["--eval-model", "junk.pt"], ["--buffer-size", 10**12],
    ["--learning-starts", "soon"], ["--no-such-flag"], ["--eval-max-frames", 0], ["--eval-episodes", 1001],
    ["--max-grad-norm", "inf"], ["--eval-epsilon", "nan"], ["--adam-eps", "-inf"], ["--total-timesteps", 3, "--num-envs", 4],
    ["--total-timestep", 5], ["--seed", 1_000_001], ["--checkpoint-frequency", -1],
    ["--resume", "runs/x", "--eval-model", "junk.pt"],
])
def test_atari_bad_input_is_one_line_and_exit_code_2(atari, flags, tmp_path, monkeypatch, capsys):
    """In-process (no interpreter start per case); the subprocess test below covers the command line itself."""
    torch.save(atari.QNetwork(18).state_dict(), tmp_path / "full_actions.pt")  # Breakout has 4 actions, not 18
    (tmp_path / "junk.pt").write_text("not a model")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        _atari_main(atari, *flags)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    if "full_actions.pt" in flags:  # a model of another game (18 actions, not Breakout's 4)
        assert lines[0] == "error: full_actions.pt is not a saved model of dqn_atari.py for this game"
    if "CartPole-v1" in flags:
        assert "use dqn_cartpole.py" in lines[0]
    if 10**12 in flags:
        assert "GB" in lines[0] and "smaller --buffer-size" in lines[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flags", [  # more cases in-process above: an interpreter start costs seconds
    ["--eval-model", "truncated.pt"],
])
def test_atari_bad_input_from_the_command_line(atari, flags, tmp_path):
    """Issue 9's list, each run as a user would: exit code 2, one `error:` line, no traceback, nothing written;
    a model is never refused with torch's weights_only advice. (More cases in-process above: an interpreter
    start with torch and ale-py costs 2 s.)"""
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save(atari.QNetwork(4).state_dict(), tmp_path / "model.pt")
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "model.pt").read_bytes()[:50_000])
    (tmp_path / "README.md").write_text((ROOT / "README.md").read_text())
    (tmp_path / "other").mkdir()
    torch.save(atari.QNetwork(4).state_dict(), tmp_path / "other" / "dqn_atari.pt")
    (tmp_path / "other" / "args.json").write_text(json.dumps({"script": "dueling_dqn.py", "hidden_dim": 64}))
    result = run_script("dqn_atari.py", *flags, cwd=tmp_path)
    assert_one_line_error(result)
    assert "weights_only" not in result.stderr and "np.int64" not in result.stderr
    if "/dev/null" in flags or "README.md" in flags or "truncated.pt" in flags or "empty.pt" in flags:
        assert f"{flags[1]} is not a saved model of dqn_atari.py" in result.stderr
    if "other/dqn_atari.pt" in flags:
        assert "was saved by dueling_dqn.py; evaluate it with that script" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_atari_help_shows_every_flag_with_its_default_in_groups(atari, capsys):
    with pytest.raises(SystemExit) as exit_info:
        atari.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.index("examples:") < text.index("algorithm:") < text.index("run and logs:") < text.index("evaluation:")
    assert "python dqn_atari.py --eval-model runs/<run_name>/dqn_atari.pt --capture-video" in text
    entries = re.split(r"\n  (?=--)", text[text.index("algorithm:"):])[1:]
    assert len(entries) == 33  # --bf16 and --threads among them
    for entry in entries:
        flag, _, help_text = entry.partition("  ")
        assert "(default:" in entry and help_text.split("(default:")[0].strip(), entry


def test_atari_smoke_summary_and_the_printed_command_reproduces_the_result(tmp_path):
    """A short run with settings away from the defaults (seed 3, 2 games, a frame cap), its summary, and the
    evaluate-again command run exactly as printed: the same numbers, read from args.json beside the model."""
    start = time.time()
    result = run_script("dqn_atari.py", *ATARI_TINY, "--total-timesteps", 1001, "--num-envs", 2,
                        "--learning-starts", 800, "--batch-size", 16, "--seed", 3, "--eval-episodes", 2, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert time.time() - start < 60
    assert result.stderr.strip() == "note: --total-timesteps 1001 is not a multiple of --num-envs 2; running 1002"
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines[-4:]] == ["result:", "files:", "again:", "video:"]
    progress = [line for line in lines if line.startswith("step ")]
    assert len(progress) >= 10 and progress[-1].startswith("step     1002/1002 |") and "SPS" in progress[-1]
    run_dir = only_run_dir(tmp_path)
    assert lines[-4].endswith(": the final network (step 1002)")
    assert lines[-3] == (f"files:  runs/{run_dir.name}/ (args.json, episodes.csv, train.csv, eval.json, dqn_atari.pt)")
    episodes = read_csv(run_dir / "episodes.csv")
    assert episodes and set(episodes[0]) == {"global_step", "episodic_return", "episodic_length", "epsilon", "resumed"}
    assert {row["resumed"] for row in episodes} == {"0"}
    train_rows = read_csv(run_dir / "train.csv")
    assert train_rows and all(np.isfinite(float(row["loss"])) for row in train_rows)
    events = EventAccumulator(str(run_dir)).Reload()  # tensorboard --logdir runs: the CSVs' numbers, CleanRL's tags
    assert [(e.step, e.value) for e in events.Scalars("charts/episodic_return")] == [
        (int(row["global_step"]), float(row["episodic_return"])) for row in episodes]
    assert [(e.step, e.value) for e in events.Scalars("losses/td_loss")] == [
        (int(row["global_step"]), pytest.approx(float(row["loss"]))) for row in train_rows]
    assert json.loads((run_dir / "args.json").read_text())["script"] == "dqn_atari.py"
    saved_eval = json.loads((run_dir / "eval.json").read_text())
    mean, std, games = _atari_result(result.stdout)
    assert (f"{saved_eval['mean']:.1f}", f"{saved_eval['std']:.1f}", len(saved_eval["returns"])) == (
        f"{mean:.1f}", f"{std:.1f}", games) and games == 2
    command = shlex.split(lines[-2].removeprefix("again:"))
    assert command[:2] == ["python", "dqn_atari.py"] and len(command) == 4
    again = run_script("dqn_atari.py", *command[2:], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert _atari_result(again.stdout) == (mean, std, games)


def test_atari_eval_model_takes_the_run_folders_settings_and_the_saved_weights(atari, tmp_path, monkeypatch, capsys):
    """--eval-model runs/<run>/dqn_atari.pt with no other flag: the settings come from args.json beside it (a Pong
    model, seed 7, 3 games, a frame cap), a flag given on the command line still wins, and evaluate() gets the
    saved weights, not a fresh network."""
    run_dir = tmp_path / "runs" / "pong_run"
    run_dir.mkdir(parents=True)
    saved_args = vars(atari.parse_args(["--env-id", "ALE/Pong-v5", "--seed", "7", "--eval-episodes", "3",
                                        "--eval-max-frames", "123", "--capture-video"]))
    (run_dir / "args.json").write_text(json.dumps({**saved_args, "script": "dqn_atari.py"}))
    torch.manual_seed(123)
    saved = atari.QNetwork(6)  # Pong: 6 actions
    torch.save(saved.state_dict(), run_dir / "dqn_atari.pt")
    seen = []

    def fake_evaluate(q_network, args, device, video_path=None):
        seen.append((q_network.state_dict(), args, video_path))
        return np.array([1.0, 2.0]), np.array([10, 20])
    monkeypatch.setattr(atari, "evaluate", fake_evaluate)
    monkeypatch.chdir(tmp_path)
    for flags, games in [([], 3), (["--eval-episodes", "2"], 2)]:
        _atari_main(atari, "--eval-model", "runs/pong_run/dqn_atari.pt", *flags)
        state, args, video_path = seen[-1]
        assert (args.env_id, args.seed, args.eval_episodes, args.eval_max_frames) == ("ALE/Pong-v5", 7, games, 123)
        assert not video_path  # a video is asked for each time, not inherited from the run
        assert all(torch.equal(state[name], tensor) for name, tensor in saved.state_dict().items())
    assert capsys.readouterr().out.splitlines()[-1] == "result: 1.5 ± 0.5 over 2 games at epsilon 0.05: runs/pong_run/dqn_atari.pt"


def test_atari_same_seed_gives_same_episode_returns(atari, tmp_path, monkeypatch):
    returns = []
    for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        eval_returns = _atari_main(atari, *ATARI_TINY, "--total-timesteps", 1000, "--learning-starts", 800,
                                   "--batch-size", 16, "--seed", seed, "--no-save-model")
        rows = read_csv(only_run_dir(tmp_path / name) / "episodes.csv")
        losses = [row["loss"] for row in read_csv(only_run_dir(tmp_path / name) / "train.csv")]
        returns.append(([row["episodic_return"] for row in rows], losses, eval_returns.tolist()))
    assert returns[0] == returns[1] and len(returns[0][0]) >= 2 and returns[0][1]
    assert returns[0] != returns[2]


def test_atari_capture_video_records_the_evaluation_game_in_colour(atari, tmp_path, monkeypatch):
    """--eval-model with no other flag but the video ones: the mp4 in videos/<run folder>-eval/ holds the
    evaluation game, frame for frame (its first frame and one per step), 210x160 in colour, cut at the cap."""
    (tmp_path / "run").mkdir()
    torch.manual_seed(0)
    network = atari.QNetwork(4)
    torch.save(network.state_dict(), tmp_path / "run" / "dqn_atari.pt")
    played = {"game": [], "video": []}

    def on_step(training, actions, out):  # the video env's frames are 210x160 RGB
        played["video" if out[0].shape[-1] == 3 else "game"].append(
            (out[1].tolist(), out[4]["lives"].tolist(), out[4]["episode_frame_number"].tolist()))
    made = _atari_wrap_envs(atari, monkeypatch, on_step)
    monkeypatch.chdir(tmp_path)
    returns = _atari_main(atari, "--eval-model", "run/dqn_atari.pt", "--capture-video", "--eval-episodes", 1,
                          "--eval-max-frames", 400)
    assert made["made"] == made["closed"] == 3  # the probe for the action count, the game, the video
    assert played["video"] == played["game"]  # in lockstep: the same rewards, lives and frame numbers, step by step
    (video,) = (tmp_path / "videos" / "run-eval").glob("*.mp4")
    again, lengths = atari.evaluate(network, atari.parse_args(["--eval-episodes", "1", "--eval-max-frames", "400"]), "cpu")
    assert again.tolist() == returns.tolist() and 0 < lengths[0] <= 100  # 400 frames = at most 100 agent steps
    assert imageio_ffmpeg.count_frames_and_secs(str(video))[0] == lengths[0] + 1
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    first = np.frombuffer(next(reader), dtype=np.uint8).reshape(meta["size"][1], meta["size"][0], 3)
    assert tuple(meta["size"]) == (160, 210) and np.abs(first[..., 0].astype(int) - first[..., 2]).max() > 30
    reader.close()


def test_atari_nan_loss_stops_the_run_naming_the_step(atari, tmp_path, monkeypatch, capsys):
    made = _atari_wrap_envs(atari, monkeypatch)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        _atari_main(atari, *ATARI_TINY, "--total-timesteps", 1000, "--learning-starts", 700, "--batch-size", 8,
                    "--learning-rate", 1e30)
    assert exit_info.value.code == 1
    assert "global step" in capsys.readouterr().err
    assert read_csv(only_run_dir(tmp_path) / "episodes.csv")  # the log up to the fault is on disk
    assert made == {"made": 1, "closed": 1}


def test_atari_nan_loss_mid_run_stops_at_the_next_train_row_not_at_the_end(atari, tmp_path, monkeypatch, capsys):
    """The finiteness flag stays on the device and is read with each train.csv row (every 1,000 steps): a loss
    that overflows soon after step 700 stops the run at the row of step 1,700, naming 700 as the last finite."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        _atari_main(atari, *ATARI_TINY, "--total-timesteps", 4000, "--learning-starts", 700, "--batch-size", 8,
                    "--buffer-size", 4000, "--learning-rate", 1e30)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: the loss became inf or nan after global step 700; stopping the run")
    train_rows = read_csv(only_run_dir(tmp_path) / "train.csv")
    assert [int(row["global_step"]) for row in train_rows] == [700]  # stopped at 1,700's row, long before 4,000
    assert not (only_run_dir(tmp_path) / "eval.json").exists()


def test_atari_ctrl_c_stops_cleanly_with_logs_and_model(atari, tmp_path, monkeypatch):
    def on_step(training, actions, out):
        on_step.calls += 1
        if on_step.calls == 900:
            raise KeyboardInterrupt
    on_step.calls = 0
    made = _atari_wrap_envs(atari, monkeypatch, on_step)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        _atari_main(atari, *ATARI_TINY)
    assert exit_info.value.code == 130
    run_dir = only_run_dir(tmp_path)
    rows = read_csv(run_dir / "episodes.csv")
    assert rows and all(row["epsilon"] for row in rows)  # complete rows, the file closed cleanly
    assert (run_dir / "dqn_atari.pt").exists() and not (run_dir / "eval.json").exists()
    assert made == {"made": 1, "closed": 1}


def test_atari_ctrl_c_after_an_overflow_saves_no_model_and_names_the_step(atari, tmp_path, monkeypatch, capsys):
    """Ctrl-C looks at the pending finiteness flag before it saves: a loss that overflowed since the last train.csv
    row ends the run as the overflow does (one line, exit 1), with no model file written from those weights."""
    def on_step(training, actions, out):
        on_step.calls += 1
        if on_step.calls == 1500:  # learning starts at 700: the loss has overflowed by now, the next row is 1,700
            raise KeyboardInterrupt
    on_step.calls = 0
    _atari_wrap_envs(atari, monkeypatch, on_step)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        _atari_main(atari, *ATARI_TINY, "--total-timesteps", 4000, "--learning-starts", 700, "--batch-size", 8,
                    "--buffer-size", 4000, "--learning-rate", 1e30)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: the loss became inf or nan after global step 700; stopping the run")
    assert not (only_run_dir(tmp_path) / "dqn_atari.pt").exists()


def test_atari_random_streams_are_independent_and_train_uses_them(atari, tmp_path, monkeypatch):
    """The agent's draws are neither default_rng(seed)'s nor those of the stream the envs are seeded with
    (default_rng(s) is what an env reset with seed s draws from), training envs stay below the evaluation seeds,
    and the real loop acts from random_streams' agent generator and resets the envs with its env seed."""
    for seed, num_envs in [(0, 1), (1, 1), (1, 8), (atari.MAX_SEED, 64)]:
        rng, env_seed, torch_seed = atari.random_streams(seed, num_envs)
        first = rng.random(16)
        assert not np.array_equal(first, np.random.default_rng(seed).random(16))
        assert not np.array_equal(first, np.random.default_rng(env_seed).random(16))
        assert env_seed != seed and 0 <= env_seed and env_seed + num_envs - 1 < atari.eval_seed(0, 0)
        assert torch_seed not in (seed, env_seed)
        again = atari.random_streams(seed, num_envs)
        assert again[1:] == (env_seed, torch_seed) and np.array_equal(again[0].random(16), first)
    assert atari.eval_rng(1, 0).random() != np.random.default_rng([1, 0]).random()

    reset_seeds, actions = [], []

    def on_reset(training, seed, out):
        if training:
            reset_seeds.append(seed)

    def on_step(training, a, out):
        if training:
            actions.append(a.tolist())
    _atari_wrap_envs(atari, monkeypatch, on_step, on_reset)
    monkeypatch.chdir(tmp_path)
    _atari_main(atari, "--seed", 3, "--num-envs", 2, "--total-timesteps", 100, "--learning-starts", 10**6, "--end-e", 1,
                "--buffer-size", 100, "--batch-size", 2, "--eval-episodes", 1, "--eval-max-frames", 40, "--no-save-model")
    rng, env_seed, _ = atari.random_streams(3, 2)
    expected = []
    for _ in range(50):  # epsilon 1 at the start: each iteration draws the random actions, then the explore coins
        expected.append(rng.integers(0, 4, size=2).tolist())
        rng.random(2)
    assert reset_seeds == [env_seed] and actions == expected


def test_atari_a_buffer_that_does_not_fit_in_memory_is_refused_naming_one_that_fits(atari, tmp_path, monkeypatch,
                                                                                   capsys):
    """With 10 GB available (MemAvailable): a 2M-transition buffer (14 GB) is refused in one line naming a
    --buffer-size that fits, which is accepted, and not needlessly small (20% are kept for the rest)."""
    meminfo, real_open = tmp_path / "meminfo", builtins.open
    meminfo.write_text("MemTotal:       99999999 kB\nMemAvailable:    9765625 kB\n")  # 10.0 GB
    monkeypatch.setattr(atari, "open", lambda path, *a, **k: real_open(
        meminfo if path == "/proc/meminfo" else path, *a, **k), raising=False)
    monkeypatch.setattr(atari, "make_envs", lambda *a, **k: pytest.fail("the run started: it was not refused"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        _atari_main(atari, "--buffer-size", 2_000_000)
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: this run needs ") and "of RAM" in line and "10.0 GB is available" in line
    fits = int(re.search(r"pass a smaller --buffer-size \(about ([\d,]+) fits\)$", line).group(1).replace(",", ""))
    atari.check_memory(atari.parse_args(["--buffer-size", str(fits)]))  # it fits
    with pytest.raises(atari.BadInput):  # 2.5 GB more does not
        atari.check_memory(atari.parse_args(["--buffer-size", str(fits + int(2.5e9 / 7061))]))
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name, room", [("train.csv", 100), ("episodes.csv", 100), ("eval.json", 0),
                                        ("args.json", 0)])
def test_atari_a_file_that_cannot_be_written_ends_the_run_in_one_line_leaving_the_rest(atari, name, room, tmp_path,
                                                                                      monkeypatch, capsys):
    """No space left, mid-run or at the end: one `error: cannot write ...: No space left on device` line, exit
    code 1, every env closed, and what was written before is still there, whole."""
    made = _atari_wrap_envs(atari, monkeypatch)
    monkeypatch.setattr(atari, "open", FullDisk(name, room), raising=False)
    monkeypatch.setattr(atari, "QNetwork", _TinyQNetwork)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        _atari_main(atari, *ATARI_TINY, "--total-timesteps", 700, "--learning-starts", 600, "--batch-size", 4,
                    "--train-frequency", 1)
    assert exit_info.value.code == 1
    run_dir = only_run_dir(tmp_path)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: cannot write ") and line.endswith(": No space left on device"), line
    assert made["made"] == made["closed"]
    if name != "args.json":
        assert json.loads((run_dir / "args.json").read_text())["script"] == "dqn_atari.py"
        rows = read_csv(run_dir / "episodes.csv")
        assert all(row["epsilon"] for row in rows) and (rows or name == "episodes.csv")
    if name == "eval.json":  # the model was saved before the evaluation and is whole
        atari.load_model(atari.QNetwork(4), str(run_dir / "dqn_atari.pt"))


def test_atari_a_run_folder_that_cannot_be_made_is_one_line_exit_1(tmp_path):
    (tmp_path / "runs").write_text("a file where the runs folder would be")
    result = run_script("dqn_atari.py", *ATARI_TINY, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert re.fullmatch(r"error: cannot write runs/BreakoutNoFrameskip-v4__dqn_atari__1__\d+: Not a directory", line)
    assert (tmp_path / "runs").read_text() == "a file where the runs folder would be"


def test_atari_runs_started_in_the_same_second_get_folders_of_their_own(atari, tmp_path, monkeypatch):
    monkeypatch.setattr(atari.time, "time", lambda: 1_700_000_000.0)
    monkeypatch.chdir(tmp_path)
    for _ in range(3):
        _atari_main(atari, "--total-timesteps", 40, "--learning-starts", 10**6, "--buffer-size", 64,
                    "--batch-size", 2, "--eval-episodes", 1, "--eval-max-frames", 40)
    names = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(names) == 3 and all(re.fullmatch(r"BreakoutNoFrameskip-v4__dqn_atari__1__\d+", n) for n in names)
    for name in names:  # each run's files in its own folder, none written twice
        run_dir = tmp_path / "runs" / name
        assert json.loads((run_dir / "eval.json").read_text())["step"] == 40
        assert (run_dir / "episodes.csv").read_text().count("global_step") == 1


def _atari_popen(tmp_path, *flags, driver=None):
    """dqn_atari.py (or a driver script that runs its main()) as a user runs it, stdout into a file to poll."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    out = open(tmp_path / "stdout.txt", "a")
    command = [sys.executable, str(driver or ROOT / "dqn_atari.py"), *_pinned(flags)]
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, process, timeout=60):
    start = time.time()
    while not condition():
        assert process.poll() is None, f"the run ended first: {process.returncode}, {process.stderr.read()}"
        assert time.time() - start < timeout, "timed out"
        time.sleep(0.02)


def test_atari_sigterm_stops_cleanly_with_logs_and_model(atari, tmp_path):
    """A real process, SIGTERM mid-run: exit code 143 and one line saying so, with the step it stopped at; the
    logs complete up to that step (every row whole), the model saved and loadable, no evaluation."""
    process = _atari_popen(tmp_path, "--total-timesteps", 20_000, "--learning-starts", 10**6, "--buffer-size", 1000,
                           "--eval-episodes", 1, "--eval-max-frames", 40)
    _wait_for(lambda: "step     2000/" in (tmp_path / "stdout.txt").read_text(), process)
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 143, stderr
    (line,) = stderr.strip().splitlines()
    run_dir = only_run_dir(tmp_path)
    match = re.fullmatch(rf"terminated \(SIGTERM\): logs are complete up to step (\d+), model saved to "
                         rf"runs/{run_dir.name}/dqn_atari.pt, .*", line)
    assert match and 2000 <= int(match.group(1)) < 20_000, line
    rows = read_csv(run_dir / "episodes.csv")
    assert len(rows) >= 10 and all(row["epsilon"] for row in rows)
    assert int(rows[-1]["global_step"]) <= int(match.group(1))
    atari.load_model(atari.QNetwork(4), str(run_dir / "dqn_atari.pt"))
    assert not (run_dir / "eval.json").exists()
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["logs"]["step"] == int(match.group(1))
    assert line.endswith(f", checkpoint written: python dqn_atari.py --resume runs/{run_dir.name} goes on")


_ATARI_DRIVER = """
import hashlib, importlib.util, json, os, signal, sys
import numpy as np, torch
spec = importlib.util.spec_from_file_location("dqn_atari", sys.argv[1])
atari = importlib.util.module_from_spec(spec)
spec.loader.exec_module(atari)


TINY_Q_NETWORK

atari.QNetwork = _TinyQNetwork
real_logs_init = atari.Logs.__init__
atari.Logs.__init__ = lambda self, run_dir, total, saved=None: real_logs_init(self, run_dir, total, saved, 1)


def digest(rb, rng, q, target, optimizer):  # the buffer's arrays, the generators, both networks, Adam
    h = hashlib.blake2b(json.dumps(rng.bit_generator.state).encode() + torch.get_rng_state().numpy().tobytes())
    for key in atari.BUFFER:
        h.update(np.ascontiguousarray(getattr(rb, key)).tobytes())
    for tensor in [*q.state_dict().values(), *target.state_dict().values()]:
        h.update(tensor.numpy().tobytes())
    state = optimizer.state_dict()
    h.update(json.dumps(state["param_groups"]).encode())
    for i in sorted(state["state"]):
        for name in sorted(state["state"][i]):
            h.update(torch.as_tensor(state["state"][i][name]).numpy().tobytes())
    return h.hexdigest()


real_save, real_restore, real_savez = atari.save_checkpoint, atari.restore, np.savez


def save(logs, step, q, target, optimizer, rb, rng, recent):
    open(f"digest-saved-{step}", "w").write(digest(rb, rng, q, target, optimizer))
    real_save(logs, step, q, target, optimizer, rb, rng, recent)


def restore(checkpoint, q, target, optimizer, rb, rng, recent):
    step = real_restore(checkpoint, q, target, optimizer, rb, rng, recent)
    open(f"digest-restored-{step}", "w").write(digest(rb, rng, q, target, optimizer))
    return step


atari.save_checkpoint, atari.restore = save, restore
real_progress = atari.Logs.progress
kill_at, kill_after_writing = int(os.environ.get("ATARI_KILL_AT", 0)), os.environ.get("ATARI_KILL_AFTER_WRITING")


def progress(self, steps_done, *args):  # SIGKILL once this many env steps are done, when the test asks for it
    real_progress(self, steps_done, *args)
    if steps_done == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)


def savez(f, **arrays):  # SIGKILL once a checkpoint's buffer is written, before its checkpoint.pt
    real_savez(f, **arrays)
    if kill_after_writing and f.name.endswith(kill_after_writing):
        os.kill(os.getpid(), signal.SIGKILL)


atari.Logs.progress, np.savez = progress, savez
atari.main(sys.argv[2:])
"""


@pytest.mark.parametrize("kill", [{"ATARI_KILL_AT": "1302"}, {"ATARI_KILL_AFTER_WRITING": "checkpoint-1500.npz.tmp"}])
def test_atari_resume_after_sigkill_goes_on_to_the_budget_with_continuous_logs(atari, kill, tmp_path):
    """A real run (2 envs, a train.csv row for every gradient step, a tiny network) killed with SIGKILL at a step the
    test chooses: 302 steps after its checkpoint at step 1,000, or halfway through writing the one at 1,500 (its
    frames written, not its manifest); then --resume goes on from step 1,000 to the budget. The buffer and the
    agent's generator, torch's, both networks and Adam are back as they were at the checkpoint; the rows up to the
    checkpoint are those the killed run wrote, those after it (dropped) are written again, once: every gradient
    step's row exactly once, in order, each env's first game after the resume marked `resumed` and as long as the
    steps since; epsilon and the annealed learning rate follow their schedules across the resume (by hand)."""
    driver = tmp_path / "driver.py"
    driver.write_text(_ATARI_DRIVER.replace("TINY_Q_NETWORK", inspect.getsource(_TinyQNetwork)))
    total, starts = 4000, 200
    flags = ["--num-envs", 2, "--total-timesteps", total, "--learning-starts", starts, "--buffer-size", 1200,
             "--batch-size", 4, "--checkpoint-frequency", 500, "--anneal-lr", "--exploration-fraction", 0.5,
             "--eval-episodes", 1, "--eval-max-frames", 40]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **kill)
    killed = subprocess.run([sys.executable, str(driver), str(ROOT / "dqn_atari.py"), *_pinned(flags)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = only_run_dir(tmp_path)
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["logs"]["step"] == 1000
    killed_rows = read_csv(run_dir / "episodes.csv")
    assert int(killed_rows[-1]["global_step"]) > 1000  # rows after the checkpoint, to be dropped

    result = run_script(driver, ROOT / "dqn_atari.py", "--resume", f"runs/{run_dir.name}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    resumed_at = int(re.search(r"resumed at step (\d+)", result.stdout).group(1))
    assert resumed_at == 1000
    assert (tmp_path / f"digest-restored-{resumed_at}").read_text() == (tmp_path / f"digest-saved-{resumed_at}").read_text()
    assert json.loads((run_dir / "eval.json").read_text())["step"] == total and f"step {total:>8}/{total}" in result.stdout
    assert not list(run_dir.glob("checkpoint*"))  # a finished run keeps no checkpoint

    train_rows = read_csv(run_dir / "train.csv")
    assert [int(row["global_step"]) for row in train_rows] == list(range(starts, total, 4))
    for row in train_rows:
        assert float(row["learning_rate"]) == pytest.approx(1e-4 * (1 - int(row["global_step"]) / total))
    rows = read_csv(run_dir / "episodes.csv")
    steps = [int(row["global_step"]) for row in rows]
    assert steps == sorted(set(steps))
    assert [row for row in rows if int(row["global_step"]) <= resumed_at] == \
        [row for row in killed_rows if int(row["global_step"]) <= resumed_at]
    first_after = {}
    for row in rows:
        step = int(row["global_step"])
        env = (step - 1) % 2
        vector_step = step - 1 - env
        # by hand: epsilon 1 to 0.01 over the first half of the 4,000 steps
        assert float(row["epsilon"]) == round(max(0.01, 1 - 0.99 * vector_step / 2000), 4)
        if step > resumed_at and env not in first_after:
            first_after[env] = row
            assert row["resumed"] == "1" and int(row["episodic_length"]) == (vector_step - resumed_at) // 2 + 1
        else:
            assert row["resumed"] == "0"
    assert len(first_after) == 2


def _atari_stopped_run(atari, tmp_path, monkeypatch, *flags):
    """An unfinished run, stopped in-process by a real SIGTERM at its 400th training step: exit code 143."""
    def on_step(training, actions, out):
        on_step.calls += training
        if on_step.calls == 400:
            os.kill(os.getpid(), signal.SIGTERM)
    on_step.calls = 0
    made = _atari_wrap_envs(atari, monkeypatch, on_step)
    monkeypatch.setattr(atari, "QNetwork", _TinyQNetwork)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        _atari_main(atari, *ATARI_TINY, "--total-timesteps", 1000, "--learning-starts", 200, "--batch-size", 4,
                    "--buffer-size", 300, "--checkpoint-frequency", 150, *flags)
    assert exit_info.value.code == 143 and made["made"] == made["closed"] == 1
    return only_run_dir(tmp_path), made


@pytest.mark.parametrize("case, message", [
    ("finished", "the run is finished (eval.json is there); there is nothing to resume"),
    ("other script", "a run of dueling_dqn.py, not of dqn_atari.py; resume it with that script"),
    ("no checkpoint", "no checkpoint there"), ("not a run", "not a run folder (no args.json there)"),
    ("frames cut short", "its checkpoint is damaged ("), ("bad manifest", "its checkpoint is damaged"),
    ("a changed flag", "--learning-rate 0.001 would change the run, which started with 0.0001"),
    ("another game", "--env-id ALE/Pong-v5 would change the run, which started with BreakoutNoFrameskip-v4"),
])
def test_atari_resume_refuses_what_it_cannot_go_on_from_in_one_line(atari, case, message, tmp_path, monkeypatch, capsys):
    """Each refusal: exit code 2, one `error:` line saying why, the run's logs untouched, every env closed."""
    run_dir, made = _atari_stopped_run(atari, tmp_path, monkeypatch)
    capsys.readouterr()
    step = torch.load(run_dir / "checkpoint.pt", weights_only=True)["logs"]["step"]
    flags = []
    if case == "finished":
        (run_dir / "eval.json").write_text("{}")
    elif case == "other script":
        (run_dir / "args.json").write_text(json.dumps({**json.loads((run_dir / "args.json").read_text()),
                                                       "script": "dueling_dqn.py"}))
    elif case == "no checkpoint":
        (run_dir / "checkpoint.pt").unlink()
    elif case == "frames cut short":
        with open(run_dir / f"checkpoint-{step}.npz", "r+b") as f:
            f.truncate(1000)
    elif case == "bad manifest":
        (run_dir / "checkpoint.pt").write_text('{"step": ')
    elif case == "a changed flag":
        flags = ["--learning-rate", "0.001"]
    elif case == "another game":
        flags = ["--env-id", "ALE/Pong-v5"]
    logs_before = {name: (run_dir / name).read_bytes() for name in ("episodes.csv", "train.csv")}
    with pytest.raises(SystemExit) as exit_info:
        _atari_main(atari, "--resume", "runs/nowhere" if case == "not a run" else f"runs/{run_dir.name}", *flags)
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --resume runs/") and message in line, line
    assert {name: (run_dir / name).read_bytes() for name in logs_before} == logs_before
    assert made["made"] == made["closed"]


def test_atari_checkpoint_that_cannot_be_written_leaves_the_previous_one_to_resume_from(atari, tmp_path, monkeypatch,
                                                                                       capsys):
    """No space left while the second checkpoint's buffer is written: one `error: cannot write` line, exit 1,
    checkpoint.pt still the first one's, and --resume goes on from it (and leaves no checkpoint file at the end)."""
    real_savez, saves = np.savez, []

    def failing_savez(f, **arrays):
        saves.append(1)
        if len(saves) == 2:
            raise OSError(28, "No space left on device", f.name)
        return real_savez(f, **arrays)
    monkeypatch.setattr(atari.np, "savez", failing_savez)
    monkeypatch.setattr(atari, "QNetwork", _TinyQNetwork)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        _atari_main(atari, *ATARI_TINY, "--total-timesteps", 1000, "--learning-starts", 200, "--batch-size", 4,
                    "--buffer-size", 300, "--checkpoint-frequency", 300)
    assert exit_info.value.code == 1
    run_dir = only_run_dir(tmp_path)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"error: cannot write runs/{run_dir.name}/checkpoint-600.npz.tmp: No space left on device"
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["logs"]["step"] == 300
    assert (run_dir / "checkpoint-300.npz").exists()
    monkeypatch.setattr(atari.np, "savez", real_savez)
    _atari_main(atari, "--resume", f"runs/{run_dir.name}")
    assert "resumed at step 300" in capsys.readouterr().out
    assert json.loads((run_dir / "eval.json").read_text())["step"] == 1000
    assert not list(run_dir.glob("checkpoint*"))


def test_atari_threads_default_to_the_cores_given_and_the_flag_sets_them(atari, monkeypatch, tmp_path, capsys):
    """By default torch (and the emulator threads) use the cores the process is given, as a scheduler gives them:
    OMP_NUM_THREADS when set, else the CPU affinity (taskset, SLURM, a container), never the machine's count."""
    monkeypatch.setattr(atari.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(atari.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert atari.default_threads() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert atari.default_threads() == 3
    made = {}
    with monkeypatch.context() as patch:
        patch.setattr(atari, "AtariVectorEnv", lambda game, num_envs, **kwargs: made.update(kwargs))
        atari.make_envs(atari.parse_args(["--num-envs", "8"]), 8)
    assert made["num_threads"] == 3  # the emulator threads too
    monkeypatch.setattr(atari.os, "sched_getaffinity", lambda pid: {5})
    monkeypatch.setattr(atari, "QNetwork", _TinyQNetwork)
    monkeypatch.setattr(atari, "evaluate", lambda *a, **k: (np.zeros(1), np.zeros(1, dtype=int)))
    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    try:
        for flags, expected in [(["--threads", 3], 3), ([], 1)]:  # one core given: 1
            _atari_main(atari, *ATARI_TINY, "--total-timesteps", 8, "--no-save-model", *flags)
            assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit) as exit_info:
        atari.parse_args(["--threads", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: argument --threads: must be a finite number >= 1, got 0"


def _nature_pair(atari):
    """The Nature network in both layouts with the same weights, and a batch of 8 transitions."""
    torch.manual_seed(0)
    nchw, channels_last = atari.QNetwork(4, channels_last=False), atari.QNetwork(4, channels_last=True)
    channels_last.load_state_dict(nchw.state_dict())
    g = torch.Generator().manual_seed(1)
    batch = [torch.randint(0, 256, (8, 4, 84, 84), generator=g, dtype=torch.uint8), torch.randint(0, 4, (8,), generator=g),
             torch.randint(-1, 2, (8,), generator=g).float(), torch.randint(0, 256, (8, 4, 84, 84), generator=g,
                                                                              dtype=torch.uint8),
             torch.randint(0, 2, (8,), generator=g).float()]
    return nchw, channels_last, batch


def test_atari_channels_last_network_computes_the_same_q_values_and_loss(atari):
    nchw, channels_last, batch = _nature_pair(atari)
    assert channels_last.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert nchw.net[0].weight.is_contiguous()
    obs = batch[0]
    torch.testing.assert_close(channels_last(obs), nchw(obs), rtol=1e-5, atol=1e-6)
    assert channels_last(obs).dtype == torch.float32
    # td_loss is Eq. (3) on the TD target, as written out by hand here
    loss, q_taken = atari.td_loss(nchw, nchw, batch, 0.99, torch.nn.functional.mse_loss)
    with torch.no_grad():
        y = batch[2] + 0.99 * (1 - batch[4]) * nchw(batch[3]).max(dim=1).values
    q = nchw(obs)[torch.arange(8), batch[1]]
    torch.testing.assert_close(q_taken, q, rtol=0, atol=0)
    torch.testing.assert_close(loss, ((q - y) ** 2).mean(), rtol=1e-6, atol=0)
    loss_cl, _ = atari.td_loss(channels_last, channels_last, batch, 0.99, torch.nn.functional.mse_loss)
    torch.testing.assert_close(loss_cl, loss, rtol=1e-5, atol=0)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
                    reason="this CPU has no fast bfloat16")
def test_atari_bf16_runs_the_networks_in_bfloat16_and_keeps_the_target_loss_and_weights_float32(atari):
    nchw, _, batch = _nature_pair(atari)
    conv_dtypes = []
    nchw.net[0].register_forward_hook(lambda module, inputs, output: conv_dtypes.append(output.dtype))
    loss32, _ = atari.td_loss(nchw, nchw, batch, 0.99, torch.nn.functional.mse_loss)
    conv_dtypes.clear()
    targets = []
    def mse_keeping_the_target(q, y):
        targets.append(y)
        return torch.nn.functional.mse_loss(q, y)
    loss, q_taken = atari.td_loss(nchw, nchw, batch, 0.99, mse_keeping_the_target, bf16=True)
    assert conv_dtypes == [torch.float32, torch.bfloat16]  # the target's forward in float32, the online one not
    with torch.no_grad():  # y = r + γ (1 - terminated) max_a' Q(s', a'; θ⁻), all in float32, by hand
        y = batch[2] + 0.99 * (1 - batch[4]) * nchw(batch[3]).max(dim=1).values
    torch.testing.assert_close(targets[0], y, rtol=0, atol=0)
    assert loss.dtype == q_taken.dtype == torch.float32
    assert abs(loss.item() - loss32.item()) < 0.05 * abs(loss32.item())
    loss.backward()
    assert all(p.dtype == p.grad.dtype == torch.float32 for p in nchw.parameters())


def test_atari_bf16_where_the_cpu_lacks_it_is_one_line_and_exit_code_2(atari, monkeypatch, capsys):
    def gone():
        raise AttributeError("another torch: no such private op")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", gone)
    assert atari.bf16_supported(cuda=False) is False  # torch's private probe missing: no bf16, not a traceback
    with pytest.raises(SystemExit) as exit_info:
        atari.parse_args(["--bf16"])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --bf16: this CPU has no fast bfloat16")


