"""Does a script still give the same numbers as an older version of it? Both run side by side, bit for bit.

    python benchmarks/same_returns.py --old HEAD~1                  # every script, every flag set
    python benchmarks/same_returns.py --old main dqn_cartpole.py    # one script
    python benchmarks/same_returns.py --old main --record           # if all are the same, record it
    python benchmarks/same_returns.py --record-returns              # this machine's returns, named

The old script comes from git (`git show OLD:script`) into a folder of its own; both run each flag set below
from an empty folder, one torch thread, and their logs are compared: every episode's return and length,
train.csv's loss, the final evaluation (and FrozenLake's Q-table, bit for bit). On the same machine the same
code and seed give the same bits, so "same" means a rewrite changed no number.

--record-returns runs RECORDED's flag sets and writes benchmarks/recorded_returns.json: what they
computed (a digest of it) and the machine that computed it (CPU, SIMD paths, versions). The test of
benchmarks/test_repository.py compares exactly only on a machine that matches: another CPU takes other
code paths in numpy and oneDNN and gives other bits, so there it checks that two runs repeat each other.

--record writes benchmarks/results/equivalent.json: the new script's git blob hash is the same code, for
every result, as the old one's. benchmarks/provenance.py reads it, so results made by the old script stay
valid for the new one without training anything again.
"""
import argparse
import csv
import platform
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EQUIVALENT = os.path.join(ROOT, "benchmarks", "results", "equivalent.json")

CARTPOLE = [
    ["--seed", "1"],  # the default run
    ["--seed", "3", "--total-timesteps", "4000", "--learning-starts", "300",
     "--target-network-frequency", "40", "--train-frequency", "2",
     "--exploration-fraction", "0.25", "--check-frequency", "1500",
     "--check-episodes", "2", "--eval-episodes", "2", "--tau", "0.5",
     "--anneal-lr", "--probe-states", "20"],
    ["--seed", "2", "--total-timesteps", "3000", "--learning-starts", "200",
     "--loss", "huber", "--gamma", "0.95", "--batch-size", "32",
     "--hidden-dim", "32", "--buffer-size", "1000", "--max-grad-norm", "1",
     "--adam-eps", "1e-5", "--learning-rate", "5e-4", "--anneal-lr",
     "--anneal-lr-start", "0.5", "--check-frequency", "0",
     "--eval-episodes", "3"],
    ["--seed", "4", "--env-id", "Acrobot-v1", "--total-timesteps", "3000",
     "--learning-starts", "500", "--start-e", "0.5", "--end-e", "0.05",
     "--exploration-fraction", "0.5", "--train-frequency", "4",
     "--target-network-frequency", "10", "--check-frequency", "1000",
     "--check-episodes", "2", "--eval-episodes", "2"],
]
FROZENLAKE = [
    ["--seed", "1"],
    ["--seed", "2", "--episodes", "1500", "--eval-episodes", "2000"],
    ["--seed", "4", "--map", "SFFH,FFFF,HFFG", "--no-is-slippery",
     "--episodes", "300", "--eval-episodes", "200"],
    ["--seed", "5", "--map-name", "8x8", "--episodes", "1200",
     "--learning-rate", "0.3", "--no-anneal-lr", "--gamma", "0.95",
     "--start-e", "0.8", "--end-e", "0.05", "--exploration-fraction", "0.3",
     "--eval-episodes", "1000"],
]
ATARI = [
    # a short Breakout run at the defaults but for its length and memory
    ["--seed", "1", "--total-timesteps", "6000", "--learning-starts", "2000",
     "--buffer-size", "6000", "--eval-episodes", "2",
     "--eval-max-frames", "4000", "--threads", "1"],
    ["--seed", "3", "--num-envs", "2", "--total-timesteps", "2400",
     "--learning-starts", "300", "--buffer-size", "800", "--batch-size", "16",
     "--target-network-frequency", "200", "--train-frequency", "4",
     "--tau", "0.5", "--anneal-lr", "--exploration-fraction", "0.4",
     "--end-e", "0.05", "--gamma", "0.95", "--learning-rate", "3e-4",
     "--adam-eps", "1e-5", "--loss", "huber", "--max-grad-norm", "5",
     "--eval-episodes", "2", "--eval-max-frames", "1600", "--threads", "1"],
    ["--seed", "2", "--env-id", "PongNoFrameskip-v4", "--total-timesteps", "3000",
     "--learning-starts", "500", "--buffer-size", "2000", "--batch-size", "8",
     "--bf16", "--sticky-actions", "--eval-episodes", "1",
     "--eval-max-frames", "2000", "--threads", "1"],
    ["--seed", "4", "--num-envs", "4", "--total-timesteps", "3200",
     "--learning-starts", "400", "--buffer-size", "1200", "--batch-size", "8",
     "--start-e", "0.5", "--max-grad-norm", "0", "--eval-episodes", "1",
     "--eval-max-frames", "1200", "--threads", "1"],
]
FLAG_SETS = {"dqn_cartpole.py": CARTPOLE, "double_dqn.py": CARTPOLE,
             "dueling_dqn.py": CARTPOLE, "per_dqn.py": CARTPOLE,
             "q_learning_frozenlake.py": FROZENLAKE, "dqn_atari.py": ATARI}


# one flag set a script, the ones recorded (each runs in seconds)
RECORDED = {"dqn_cartpole.py": CARTPOLE[1], "double_dqn.py": CARTPOLE[1],
            "dueling_dqn.py": CARTPOLE[1], "per_dqn.py": CARTPOLE[1],
            "q_learning_frozenlake.py": FROZENLAKE[3], "dqn_atari.py": ATARI[1]}
RECORD = os.path.join(ROOT, "benchmarks", "recorded_returns.json")


def machine():
    """What decides the bits: the CPU, the SIMD paths numpy and torch take, their versions."""
    import numpy as np
    import torch
    from numpy._core._multiarray_umath import __cpu_features__, __cpu_dispatch__
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f
                     if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {"cpu": cpu, "arch": platform.machine(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "numpy_simd": [k for k in __cpu_dispatch__ if __cpu_features__.get(k)],
            "torch": torch.__version__, "numpy": np.__version__}


def fingerprint(script, flags):
    """Episodes, their returns' sum and a digest of every number a run computed."""
    got = run(os.path.join(ROOT, script), flags)
    if "error" in got:
        raise RuntimeError(f"{script} failed: {got['error']}")
    returns = [float(row[0]) for row in got["episodes"]]
    digest = hashlib.sha256(json.dumps(got, sort_keys=True).encode())
    return {"episodes": len(returns), "return_sum": sum(returns),
            "digest": digest.hexdigest()[:16]}


def record_returns():
    runs = {}
    for script, flags in RECORDED.items():
        runs[script] = {"flags": flags, **fingerprint(script, flags)}
        print(script, runs[script], flush=True)
    with open(RECORD, "w") as f:
        json.dump({"machine": machine(), "runs": runs}, f, indent=1)
        f.write("\n")


def blob(data):
    """git's name for a file's content (what `git hash-object` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def numbers(cwd):
    """What a run computed, read back from its run folder (not its timings)."""
    (run,) = os.listdir(os.path.join(cwd, "runs"))
    run = os.path.join(cwd, "runs", run)
    out = {}
    with open(os.path.join(run, "episodes.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    keep = ("episodic_return", "episodic_length", "return", "length")
    out["episodes"] = [[r[k] for k in keep if k in r] for r in rows]
    if os.path.exists(os.path.join(run, "train.csv")):
        with open(os.path.join(run, "train.csv"), newline="") as f:
            out["losses"] = [r["loss"] for r in csv.DictReader(f)]
    with open(os.path.join(run, "eval.json")) as f:
        result = json.load(f)
    out["eval"] = {k: v for k, v in result.items()
                   if "return" in k or "success" in k or "exact" in k}
    table = os.path.join(run, "q_table.npy")
    if os.path.exists(table):
        with open(table, "rb") as f:
            out["q_table"] = hashlib.sha256(f.read()).hexdigest()
    return out


def run(path, flags):
    with tempfile.TemporaryDirectory(prefix="same-") as cwd:
        env = dict(os.environ, OMP_NUM_THREADS="1")
        done = subprocess.run([sys.executable, path, *flags], cwd=cwd, env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            return {"error": done.stderr.strip()[-300:]}
        return numbers(cwd)


def compare(script, old_ref):
    """Runs each flag set with the old and the new script, two at a time."""
    old_source = subprocess.run(["git", "show", f"{old_ref}:{script}"], cwd=ROOT,
                                capture_output=True, check=True).stdout
    with open(os.path.join(ROOT, script), "rb") as f:
        new_source = f.read()
    with tempfile.TemporaryDirectory(prefix="old-") as folder:
        # beside a copy of benchmarks/ so that printed paths resolve alike
        old_path = os.path.join(folder, script)
        with open(old_path, "wb") as f:
            f.write(old_source)
        same_all = True
        for flags in FLAG_SETS[script]:
            with ThreadPoolExecutor(2) as pool:
                old, new = pool.map(run, [old_path, os.path.join(ROOT, script)],
                                    [flags, flags])
            same = old == new and "error" not in new
            same_all &= same
            count = len(new.get("episodes", []))
            what = "the same" if same else "NOT the same"
            print(f"{script} {' '.join(flags)}: {what} ({count} episodes)",
                  flush=True)
            if not same:
                for key in sorted(set(old) | set(new)):
                    if old.get(key) != new.get(key):
                        print(f"  {key}: old {str(old.get(key))[:150]}")
                        print(f"  {key}: new {str(new.get(key))[:150]}")
    return same_all, blob(old_source), blob(new_source)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("scripts", nargs="*", default=list(FLAG_SETS))
    p.add_argument("--old", help="a git ref holding the old scripts")
    p.add_argument("--record-returns", action="store_true",
                   help="record this machine's returns for the test of them")
    p.add_argument("--record", action="store_true",
                   help="record new = old in benchmarks/results/equivalent.json")
    a = p.parse_args()
    if a.record_returns:
        return record_returns()
    if not a.old:
        p.error("--old is needed to compare")
    unknown = [s for s in a.scripts if s not in FLAG_SETS]
    if unknown:
        p.error(f"no flag sets for {', '.join(unknown)}")
    results = {s: compare(s, a.old) for s in a.scripts}
    if a.record:
        table = {}
        if os.path.exists(EQUIVALENT):
            with open(EQUIVALENT) as f:
                table = json.load(f)
        for script, (same, old, new) in results.items():
            if same and old != new:
                table[new] = {"script": script, "same_as": old,
                              "command": f"python benchmarks/same_returns.py "
                                         f"--old {a.old} {script}"}
        with open(EQUIVALENT, "w") as f:
            json.dump(table, f, indent=1)
            f.write("\n")
    different = [s for s, (same, _, _) in results.items() if not same]
    print("every script gives the same numbers" if not different else
          f"NOT the same: {', '.join(different)}")
    sys.exit(1 if different else 0)


if __name__ == "__main__":
    main()
