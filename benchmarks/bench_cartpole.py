"""Speed and sample efficiency of dqn_cartpole.py beside the lecture's DQN, run one after the other in one command.

    python benchmarks/bench_cartpole.py [--seed 1] [--lecture benchmarks/lecture_dqn.py]

The lecture's DQN is benchmarks/lecture_dqn.py, a reproduction of Lecture 03's code kept in the repository,
so a clone reproduces the comparison. Both run on CartPole-v1 with one torch thread. For each it prints
environment steps per second (SPS) and the steps it took to reach a 100-episode mean training return of 195
and of 475; then the SPS ratio. This machine is noisy, so only the ratio measured within one command means much.
"""
import argparse
import csv
import glob
import importlib.util
import inspect
import os
import random
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def steps_to_reach(returns, lengths, threshold, window=100):
    steps = np.cumsum(lengths)
    for i in range(window - 1, len(returns)):
        if np.mean(returns[i + 1 - window: i + 1]) >= threshold:
            return int(steps[i])
    return None


def run_lecture(path, seed, episodes):
    import torch
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("lecture_dqn", path)
    lecture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lecture)
    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
    start = time.time()
    seeded = "seed" in inspect.signature(lecture.train_dqn).parameters  # benchmarks/lecture_dqn.py seeds its env
    _, returns = lecture.train_dqn(n_episodes=episodes, **({"seed": seed} if seeded else {}))
    seconds = time.time() - start
    return returns, returns, seconds  # a CartPole episode's return is its length


def run_ours(seed):
    with tempfile.TemporaryDirectory() as tmp:
        start = time.time()
        subprocess.run([sys.executable, os.path.join(ROOT, "dqn_cartpole.py"), "--seed", str(seed)], cwd=tmp,
                       check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1"))
        seconds = time.time() - start
        (path,) = glob.glob(os.path.join(tmp, "runs", "*", "episodes.csv"))
        rows = list(csv.DictReader(open(path)))
    return [float(r["episodic_return"]) for r in rows], [int(r["episodic_length"]) for r in rows], seconds


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lecture", default=os.path.join(ROOT, "benchmarks", "lecture_dqn.py"),
                   help="the lecture's DQN: a file defining train_dqn(n_episodes=...) -> (agent, returns) "
                        "(default: benchmarks/lecture_dqn.py, Lecture 03's code)")
    p.add_argument("--lecture-episodes", type=int, default=500)
    a = p.parse_args()
    if not os.path.exists(a.lecture):
        sys.exit(f"error: lecture baseline not found at {a.lecture} (pass --lecture PATH)")
    import contextlib, io
    with contextlib.redirect_stdout(io.StringIO()):
        lecture = run_lecture(a.lecture, a.seed, a.lecture_episodes)
    ours = run_ours(a.seed)
    sps = {}
    for name, (returns, lengths, seconds) in [("lecture_dqn.py", lecture), ("dqn_cartpole.py", ours)]:
        sps[name] = sum(lengths) / seconds  # ours includes process start and the final evaluation
        print(f"{name:16s} {sum(lengths):>7} steps in {seconds:6.1f}s = {sps[name]:6.0f} SPS | steps to a 100-episode "
              f"mean of 195: {steps_to_reach(returns, lengths, 195)}, of 475: {steps_to_reach(returns, lengths, 475)}")
    print(f"SPS ratio dqn_cartpole.py / lecture_dqn.py: {sps['dqn_cartpole.py'] / sps['lecture_dqn.py']:.1f}x")


if __name__ == "__main__":
    main()
