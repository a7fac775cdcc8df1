"""Cost of one prioritized-replay step: sample a batch of 64 and update its priorities.

    python benchmarks/bench_per.py [--size 1000000] [--lecture-size 100000] [--batch-size 64]

per_dqn.py's PrioritizedReplayBuffer (a numpy sum tree) on a full buffer of 1,000,000 transitions, beside
Lecture 03's PrioritizedReplayBuffer (priorities in a Python list) on 100,000, one after the other in one
command, one thread. Priorities are random (|TD error| drawn from an exponential), so the tree is not uniform.
Prints the median time of a step for each and their ratio; this machine is shared, so only the ratio measured
within one command means much.
"""
import argparse
import importlib.util
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LecturePrioritizedReplayBuffer:
    """Lecture 03, Part 6, verbatim: priorities in a list, O(n) per sample, a TD error needed at insertion."""

    def __init__(self, capacity, alpha=0.6):
        self.buffer = []
        self.priorities = []
        self.capacity = capacity
        self.alpha = alpha  # How much to prioritize
        self.pos = 0

    def push(self, experience, td_error):
        priority = (abs(td_error) + 1e-5) ** self.alpha

        if len(self.buffer) < self.capacity:
            self.buffer.append(experience)
            self.priorities.append(priority)
        else:
            self.buffer[self.pos] = experience
            self.priorities[self.pos] = priority

        self.pos = (self.pos + 1) % self.capacity

    def sample(self, batch_size, beta=0.4):
        # Sample proportional to priority
        probs = np.array(self.priorities) / sum(self.priorities)
        indices = np.random.choice(len(self.buffer), batch_size, p=probs)

        # Compute importance sampling weights
        weights = (len(self.buffer) * probs[indices]) ** (-beta)
        weights /= weights.max()  # Normalize

        batch = [self.buffer[i] for i in indices]
        return batch, weights, indices

    def update_priorities(self, indices, td_errors):
        for idx, error in zip(indices, td_errors):
            self.priorities[idx] = (abs(error) + 1e-5) ** self.alpha


def time_steps(step, repeats):
    """Median seconds of `step()` over `repeats` calls, after a few warm-up calls."""
    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_ours(size, batch_size, rng, repeats):
    spec = importlib.util.spec_from_file_location("per_dqn", os.path.join(ROOT, "per_dqn.py"))
    per = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(per)
    rb = per.PrioritizedReplayBuffer(size, 4, rng, alpha=0.6, eps=1e-6)
    # fill the ring's arrays at once (add() stores one transition at a time), then give every row a random priority
    rb.obs[:] = rb.next_obs[:] = rng.standard_normal((size, 4)).astype(np.float32)
    rb.actions[:], rb.rewards[:], rb.size = rng.integers(0, 2, size), 1.0, size
    rb.update_priorities(np.arange(size), rng.exponential(1.0, size))

    def step():
        *batch, rows, is_weights = rb.sample(batch_size, "cpu", beta=0.4)
        rb.update_priorities(rows, rng.exponential(1.0, batch_size))
    return time_steps(step, repeats)


def bench_lecture(size, batch_size, rng, repeats):
    np.random.seed(0)
    rb = LecturePrioritizedReplayBuffer(size, alpha=0.6)
    for _ in range(size):
        obs = rng.standard_normal(4).astype(np.float32)
        rb.push((obs, 0, 1.0, obs, False), rng.exponential(1.0))

    def step():
        batch, weights, indices = rb.sample(batch_size, beta=0.4)
        rb.update_priorities(indices, rng.exponential(1.0, batch_size))
    return time_steps(step, repeats)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=1_000_000, help="transitions in per_dqn.py's buffer (full)")
    p.add_argument("--lecture-size", type=int, default=100_000, help="transitions in the lecture's buffer (full)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2000, help="timed steps of ours (the lecture's gets 1/20)")
    args = p.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    ours = bench_ours(args.size, args.batch_size, rng, args.repeats)
    lecture = bench_lecture(args.lecture_size, args.batch_size, rng, max(5, args.repeats // 20))
    print(f"sample {args.batch_size} + update their priorities, median of repeated steps:")
    print(f"  per_dqn.py sum tree,    {args.size:>9,} transitions: {ours * 1e3:8.3f} ms")
    print(f"  lecture's list buffer,  {args.lecture_size:>9,} transitions: {lecture * 1e3:8.3f} ms")
    print(f"  ratio lecture / ours: {lecture / ours:.0f}x (with {args.size / args.lecture_size:g}x the transitions)")


if __name__ == "__main__":
    main()
