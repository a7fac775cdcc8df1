"""Time one environment step of training: the lecture's Q-learning against q_learning_frozenlake.py.

Both train for 10,000 episodes on the same env stack (gym.make("FrozenLake-v1") plus a step counter),
alternately, a few rounds each; the best round of each is compared, as the machine may be shared.

    python benchmarks/bench_q_learning.py [--baseline benchmarks/lecture_q_learning.py] [--rounds 3]

The lecture's side is benchmarks/lecture_q_learning.py, a reproduction of Lecture 03's code kept in the
repository, so a clone reproduces the comparison.

Prints microseconds per step for each and the ratio ours / lecture (below 1: ours is cheaper per step).
"""
import argparse
import importlib.util
import os
import random
import time
import types

import gymnasium as gym
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class StepCounter(gym.Wrapper):
    """Counts env.step calls; wraps both sides the same way, so it adds the same cost to both."""

    def __init__(self, env):
        super().__init__(env)
        self.steps = 0

    def step(self, action):
        self.steps += 1
        return self.env.step(action)


def time_lecture(lecture, episodes, seed):
    envs = []

    def make(env_id):  # the lecture's train_q_learning calls gym.make itself: hand it a counted env
        envs.append(StepCounter(gym.make(env_id)))
        return envs[-1]

    lecture.gym = types.SimpleNamespace(make=make)
    np.random.seed(seed)
    random.seed(seed)
    start = time.perf_counter()
    lecture.train_q_learning(n_episodes=episodes)
    return time.perf_counter() - start, envs[0].steps


def time_ours(ours, episodes, seed):
    env = StepCounter(gym.make("FrozenLake-v1"))
    start = time.perf_counter()
    ours.train(env, episodes, seed=seed)
    return time.perf_counter() - start, env.steps


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default=os.path.join(REPO, "benchmarks", "lecture_q_learning.py"),
                        help="the lecture's Q-learning: a file defining train_q_learning(n_episodes=...) that makes "
                             "its env with the module-level gym.make (default: benchmarks/lecture_q_learning.py, "
                             "Lecture 03's code)")
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    lecture = load_module("lecture_q_learning", args.baseline)
    ours = load_module("q_learning_frozenlake", os.path.join(REPO, "q_learning_frozenlake.py"))

    per_step = {"lecture": [], "ours": []}
    for round_ in range(args.rounds):
        for name, timer, module in (("lecture", time_lecture, lecture), ("ours", time_ours, ours)):
            seconds, steps = timer(module, args.episodes, seed=round_ + 1)
            per_step[name].append(seconds / steps * 1e6)
            print(f"round {round_ + 1} {name:8s} {steps:7d} steps in {seconds:5.2f} s = {per_step[name][-1]:5.2f} us/step",
                  flush=True)
    lecture_us, ours_us = min(per_step["lecture"]), min(per_step["ours"])
    print(f"RESULT lecture {lecture_us:.2f} us/step, ours {ours_us:.2f} us/step, ratio ours/lecture {ours_us / lecture_us:.2f}")
