"""Training speed of dqn_atari.py, split into acting, sampling and the gradient step.

    python benchmarks/bench_atari_speed.py            # CPU, one torch thread (as the script runs there)
    python benchmarks/bench_atari_speed.py --cuda     # a GPU, when there is one

Fills a 20,000-transition buffer by random Breakout play, then times each part of a training iteration
alone, many times: the env step (AtariVectorEnv, C++ preprocessing), the greedy forward pass on the
current stack, storing the transition, sampling a batch of 32 (rebuilding the 4-frame stacks of s and s')
and one gradient step (target forward, online forward and backward, Adam). With one gradient step every
--train-frequency env steps, it prints the resulting steps per second (SPS) and each part's share; then
it runs the script itself for a few thousand steps and prints the SPS its progress line reports.
"""
import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(fn, repeats, sync):
    fn()  # warm-up
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cuda", action="store_true", help="time on a GPU (falls back to the CPU with a note)")
    p.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--train-frequency", type=int, default=4)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--end-to-end-steps", type=int, default=6_000, help="0 to skip running the script")
    a = p.parse_args()
    spec = importlib.util.spec_from_file_location("dqn_atari", os.path.join(ROOT, "dqn_atari.py"))
    dqn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dqn)
    args = dqn.parse_args(["--env-id", a.env_id, "--batch-size", str(a.batch_size)])
    if a.cuda and not torch.cuda.is_available():
        print("note: --cuda given but no GPU is available; timing the CPU", file=sys.stderr)
    device = torch.device("cuda" if a.cuda and torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    envs = dqn.make_envs(args, 1)
    n_actions = envs.single_action_space.n
    rng = np.random.default_rng(0)
    rb = dqn.ReplayBuffer(20_000, 1, rng)
    obs, info = envs.reset(seed=0)
    state = {"obs": obs, "lives": info["lives"], "start": np.ones(1, dtype=bool)}

    def env_step_and_store(store=True):
        actions = rng.integers(0, n_actions, size=1)
        next_obs, rewards, terminations, truncations, info = envs.step(actions)
        new_game = dqn.game_over(terminations, truncations, info["lives"], state["lives"])
        real_next_obs = next_obs.copy()
        if new_game[0]:
            real_next_obs[0] = info["final_obs"][0]
        if store:
            rb.add(state["obs"], actions, np.sign(rewards), real_next_obs, terminations, state["start"])
        state.update(obs=next_obs, lives=info["lives"], start=new_game)

    for _ in range(20_000):
        env_step_and_store()

    q_network = dqn.QNetwork(n_actions).to(device)
    target_network = dqn.QNetwork(n_actions).to(device)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=1e-4)
    batch = rb.sample(a.batch_size, device)

    def act():
        with torch.inference_mode():
            return q_network(torch.from_numpy(state["obs"]).to(device)).argmax(dim=1).cpu().numpy()

    def gradient_step():
        obs_b, actions_b, rewards_b, next_obs_b, terminated_b = batch
        td_target = dqn.compute_td_target(target_network, rewards_b, next_obs_b, terminated_b, 0.99)
        q_taken = q_network(obs_b).gather(1, actions_b.unsqueeze(1)).squeeze(1)
        loss = torch.nn.functional.mse_loss(q_taken, td_target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    total_step = timed(env_step_and_store, a.repeats * 4, sync)
    env_only = timed(lambda: env_step_and_store(store=False), a.repeats * 4, sync)
    parts = {
        "env step (C++ preprocessing)": env_only,
        "store the transition": max(total_step - env_only, 0.0),
        "acting: forward pass": timed(act, a.repeats, sync),
        f"sampling a batch of {a.batch_size}": timed(lambda: rb.sample(a.batch_size, device), a.repeats, sync) / a.train_frequency,
        "gradient step": timed(gradient_step, a.repeats // 2, sync) / a.train_frequency,
    }
    per_step = sum(parts.values())
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} torch thread"
    print(f"{a.env_id}, {name}, batch {a.batch_size}, one gradient step every {a.train_frequency} env steps:")
    for part, seconds in parts.items():
        raw = seconds * (a.train_frequency if part.startswith(("sampling", "gradient")) else 1)
        print(f"  {part:30s} {raw * 1e3:7.2f} ms per call | {seconds * 1e3:6.2f} ms per env step | {seconds / per_step:5.1%}")
    print(f"  composed: {per_step * 1e3:.2f} ms per env step = {1 / per_step:.0f} SPS while training")
    envs.close()

    if a.end_to_end_steps:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, os.path.join(ROOT, "dqn_atari.py"), "--env-id", a.env_id, "--total-timesteps",
                   str(a.end_to_end_steps), "--learning-starts", "0", "--buffer-size", "10000", "--eval-episodes", "1",
                   "--batch-size", str(a.batch_size), "--train-frequency", str(a.train_frequency), "--no-save-model",
                   "--eval-max-frames", "400"] + (["--cuda"] if a.cuda else [])
            out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
            lines = [line for line in out.stdout.splitlines() if "SPS" in line]
            sps = re.search(r"\|\s+(\d+) SPS", lines[-1]).group(1) if lines else "?"
            print(f"  end to end, dqn_atari.py --learning-starts 0 for {a.end_to_end_steps} steps: {sps} SPS")


if __name__ == "__main__":
    main()
