"""Size and time of a dqn_atari.py checkpoint with a full replay buffer, and of loading it back (--resume).

    python benchmarks/bench_atari_checkpoint.py --dir /some/disk/folder       # 1M transitions: 7.1 GB on disk, ~15 GB RAM
    python benchmarks/bench_atari_checkpoint.py --dir /tmp/ckpt --buffer-size 100000

The buffer is filled with synthetic frames (random bytes: np.savez does not compress, so the bytes written are the
same as a real game's), every slot written; the networks and Adam have taken one gradient step. It times
save_checkpoint() (checkpoint-<step>.npz and checkpoint.pt, each written aside and renamed), then load_checkpoint()
and restore() into a fresh buffer, and deletes the run folder at the end. With --drop-caches (root on Linux) the page cache is
emptied before the load, as on a machine that starts the resumed run cold.
"""
import argparse
import importlib.util
import os
import shutil
import subprocess
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeLogs:
    def __init__(self, run_dir):
        self.run_dir = run_dir

    def state(self, step):
        return {"step": step, "train_log": 0, "print": 0, "episodes": 0, "train": 0}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True, help="an empty folder to write the checkpoint into (deleted after)")
    p.add_argument("--buffer-size", type=int, default=1_000_000)
    p.add_argument("--drop-caches", action="store_true", help="empty the page cache before loading (root, Linux)")
    a = p.parse_args()
    spec = importlib.util.spec_from_file_location("dqn_atari", os.path.join(ROOT, "dqn_atari.py"))
    dqn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dqn)
    torch = dqn.torch
    torch.set_num_threads(1)
    run_dir = os.path.join(a.dir, "run")
    os.makedirs(run_dir)
    for name in ("episodes.csv", "train.csv"):
        open(os.path.join(run_dir, name), "w").close()
    print(subprocess.run(["df", "-h", a.dir], capture_output=True, text=True).stdout.strip())

    rng = np.random.default_rng(0)
    rb = dqn.ReplayBuffer(a.buffer_size, 1, rng)
    for start in range(0, rb.slots, 10_000):  # synthetic frames, every slot written
        rb.frames[0, start:start + 10_000] = rng.integers(0, 256, size=rb.frames[0, start:start + 10_000].shape, dtype=np.uint8)
    rb.valid[:] = True
    rb.size[:], rb.pos[:] = rb.slots, 0
    q_network, target_network = dqn.QNetwork(4), dqn.QNetwork(4)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=1e-4)
    obs, actions, rewards, next_obs, terminated = rb.sample(32, "cpu")
    loss = (q_network(obs).gather(1, actions[:, None]).squeeze(1) - rewards).pow(2).mean()
    loss.backward()
    optimizer.step()

    start = time.time()
    dqn.save_checkpoint(FakeLogs(run_dir), a.buffer_size, q_network, target_network, optimizer, rb, rng, [1.0])
    write_s = time.time() - start
    files = ["checkpoint.pt", f"checkpoint-{a.buffer_size}.npz"]
    size = sum(os.path.getsize(os.path.join(run_dir, f)) for f in files)
    print(f"checkpoint: {size / 1e9:.2f} GB ({size:,} bytes) for {a.buffer_size:,} transitions, written in {write_s:.1f} s "
          f"({size / 1e9 / write_s:.2f} GB/s)")
    del rb
    if a.drop_caches:
        subprocess.run(["sync"])
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    start = time.time()
    checkpoint = dqn.load_checkpoint(run_dir)
    fresh = dqn.ReplayBuffer(a.buffer_size, 1, np.random.default_rng(1))
    q2, t2 = dqn.QNetwork(4), dqn.QNetwork(4)
    step = dqn.restore(checkpoint, q2, t2, torch.optim.Adam(q2.parameters(), lr=1e-4), fresh, np.random.default_rng(1), [])
    load_s = time.time() - start
    print(f"load and restore: {load_s:.1f} s ({'page cache emptied first' if a.drop_caches else 'page cache warm'}), "
          f"step {step}, {int(fresh.size.sum()):,} slots back")
    shutil.rmtree(run_dir)


if __name__ == "__main__":
    main()
