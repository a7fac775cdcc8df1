"""Resident memory of dqn_atari.py's replay buffer filled with 1,000,000 transitions, beside whole-stack storage.

    python benchmarks/bench_atari_memory.py                  # 1M transitions: needs about 7.5 GB free
    python benchmarks/bench_atari_memory.py --buffer-size 100000
    python benchmarks/bench_atari_memory.py --per-unit --probe-batch 512   # one env and one batch row (check_memory)

It records a few thousand real Breakout transitions (random play, life losses and game overs included), then
writes them round and round through ReplayBuffer.add until the ring is full, so every page is touched,
and prints the process's resident memory (VmRSS) before and after. The whole-stack figure is computed the
same way as ours from array sizes: a layout storing the 4x84x84 stack of each obs (next obs from the
following slot, as CleanRL's optimize_memory_usage does) or of obs and next_obs (CleanRL's default).
"""
import argparse
import importlib.util
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_bytes(field="VmRSS"):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--buffer-size", type=int, default=1_000_000)
    p.add_argument("--record-steps", type=int, default=2_000, help="real transitions recorded, then repeated")
    p.add_argument("--per-unit", action="store_true",
                   help="measure the memory of one env (1 and 16 side by side) and of one batch row, and exit")
    p.add_argument("--probe-batch", type=int, default=512, help="the batch --per-unit measures (one per process: a peak)")
    a = p.parse_args()
    spec = importlib.util.spec_from_file_location("dqn_atari", os.path.join(ROOT, "dqn_atari.py"))
    dqn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dqn)
    if a.per_unit:
        return per_unit(dqn, a.probe_batch)
    args = dqn.parse_args(["--num-envs", "1", "--buffer-size", str(a.buffer_size)])
    dqn.check_memory(args)

    envs = dqn.make_envs(args, 1)
    rng = np.random.default_rng(0)
    obs, info = envs.reset(seed=0)
    prev_lives, episode_start, recorded = info["lives"], np.ones(1, dtype=bool), []
    for _ in range(a.record_steps):
        actions = rng.integers(0, envs.single_action_space.n, size=1)
        next_obs, rewards, terminations, truncations, info = envs.step(actions)
        new_game = dqn.game_over(terminations, truncations, info["lives"], prev_lives)
        real_next_obs = next_obs.copy()
        if new_game[0]:
            real_next_obs[0] = info["final_obs"][0]
        recorded.append((obs, actions, np.sign(rewards), real_next_obs, terminations, episode_start))
        obs, prev_lives, episode_start = next_obs, info["lives"], new_game
    envs.close()

    before = rss_bytes()
    start = time.time()
    rb = dqn.ReplayBuffer(a.buffer_size, 1, rng)
    i = 0
    while rb.size[0] < rb.slots:
        rb.add(*recorded[i % len(recorded)])
        i += 1
    fill_seconds = time.time() - start
    after = rss_bytes()
    start = time.time()
    for _ in range(100):
        rb.sample(32, "cpu")
    sample_ms = (time.time() - start) * 10

    ours = sum(x.nbytes for x in (rb.frames, rb.actions, rb.rewards, rb.terminated, rb.first, rb.valid))
    small = ours - rb.frames.nbytes
    stack = 4 * 84 * 84 * a.buffer_size  # np.zeros((N, 4, 84, 84), np.uint8).nbytes, without allocating it
    gb = 1e9
    print(f"replay buffer, {a.buffer_size:,} transitions ({i:,} adds, {fill_seconds:.0f} s to fill):")
    print(f"  measured resident memory: {after / gb:.2f} GB for the whole process "
          f"({before / gb:.2f} GB before the buffer: python, torch, ale-py, the recorded steps), "
          f"buffer {(after - before) / gb:.2f} GB = {(after - before) / a.buffer_size / 1e3:.2f} KB a transition; "
          f"peak {rss_bytes('VmHWM') / gb:.2f} GB")
    print(f"  array sizes, computed: frame once {ours / gb:.2f} GB | whole stacks of obs {(stack + small) / gb:.2f} GB | "
          f"whole stacks of obs and next_obs {(2 * stack + small) / gb:.2f} GB")
    print(f"  sampling a batch of 32 (both stacks rebuilt): {sample_ms:.2f} ms")
    if after > 8e9:
        sys.exit("error: over the 8 GB target")


def per_unit(dqn, batch_size):
    """Resident memory of AtariVectorEnv per env (after 50 steps), and the peak (VmHWM) a gradient step of the
    Nature network at `batch_size` adds per batch row (after a warm-up step at batch 8)."""
    torch = dqn.torch
    torch.set_num_threads(1)
    args = dqn.parse_args([])
    for n in (1, 16):
        before = rss_bytes()
        envs = dqn.make_envs(args, n)
        envs.reset(seed=0)
        for _ in range(50):
            envs.step(np.zeros(n, dtype=np.int64))
        print(f"{n:>2} envs: {(rss_bytes() - before) / n / 1e6:.1f} MB each")
        envs.close()
    q_network, target_network = dqn.QNetwork(4), dqn.QNetwork(4)
    optimizer = torch.optim.Adam(q_network.parameters())

    def gradient_step(rb, batch_size):
        obs, actions, rewards, next_obs, terminated = rb.sample(batch_size, "cpu")
        td_target = dqn.compute_td_target(target_network, rewards, next_obs, terminated, 0.99)
        loss = (q_network(obs).gather(1, actions[:, None]).squeeze(1) - td_target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    rb = dqn.ReplayBuffer(2 * batch_size, 1, np.random.default_rng(0))
    rb.frames[:], rb.valid[:], rb.size[:] = 7, True, rb.slots
    gradient_step(rb, 8)
    before = rss_bytes("VmHWM")
    gradient_step(rb, batch_size)
    print(f"batch {batch_size}: {(rss_bytes('VmHWM') - before) / batch_size / 1e3:.0f} KB a row at the peak")


if __name__ == "__main__":
    main()
