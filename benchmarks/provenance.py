"""Which code each committed result and figure came from, and whether it is still the code here.

    python benchmarks/provenance.py              # what is out of date (exit 1 if anything is), and how to redo it
    python benchmarks/provenance.py --verify KEY # re-run one seed of a summary with the code here; if its episodes
                                                 # come out the same, its runs are stamped with this code
    python benchmarks/run_seeds.py ... --summary-only   # then summarise them again: the summary takes the stamp

A script is named by its git blob hash: the SHA-1 git gives the file (`git hash-object dqn_cartpole.py`), computed
here from the bytes alone, so it works without git. Every run run_seeds.py makes records the hash of the script it
ran (run.json), and each summary in summary.json the hashes of its runs. Every other result (a JSON file, a folder
of CSVs) has an entry in benchmarks/results/sources.json: the scripts it came from and the command that makes it.
Every figure in docs/ has one too: the result files it was drawn from, by their hashes when it was drawn. A result is
out of date when a script it names has changed since; a figure, when one of its results has.
test_scripts.py runs the same check: change a script and the test names every result and figure to redo.

A rewrite that changes no number (checked by benchmarks/same_returns.py, which runs the old and the new script
side by side and records the pair in benchmarks/results/equivalent.json) keeps every result valid.
A change that cannot change a number (a comment, a blank line) still changes the hash. Then --verify re-runs one
seed of each summary that ran the script and compares its episode returns, one by one, with the committed run's:
on CPU a seed gives the same returns run after run, so equal returns show the result is still this code's.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
SOURCES = os.path.join(RESULTS, "sources.json")


def blob(path):
    """git's name for a file's content: SHA-1 of b"blob <size>\\0" + the bytes (what `git hash-object` prints)."""
    with open(path if os.path.isabs(path) else os.path.join(ROOT, path), "rb") as f:
        data = f.read()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def hashes(paths):
    """{path from the repository root: its blob hash} for these scripts (or result files)."""
    return {os.path.relpath(os.path.join(ROOT, p), ROOT): blob(p) for p in paths}


def load(at=None):
    at = at or SOURCES
    if not os.path.exists(at):
        return {}
    with open(at) as f:
        return json.load(f)


def record(key, scripts=None, inputs=None, command=None, note=None, at=None):
    """Stamp one result (scripts: the code it ran) or one figure (inputs: the result files it was drawn from)."""
    at = at or SOURCES
    entries = load(at)
    entry = {"command": command}
    if scripts is not None:
        entry["scripts"] = hashes(scripts) if isinstance(scripts, (list, tuple)) else dict(scripts)
    if inputs is not None:
        entry["inputs"] = hashes(inputs)
    if note:
        entry["note"] = note
    entries[key] = entry
    with open(at, "w") as f:
        json.dump(dict(sorted(entries.items())), f, indent=1)
        f.write("\n")


def summaries():
    with open(os.path.join(RESULTS, "summary.json")) as f:
        return json.load(f)


def summary_key(s):
    return f"summary.json: {s['script']} {s['env_id']} {s['flags_tag']} seeds {s['seeds']}"


def same_code(path):
    """The hashes that count as the script here: its own, and those of older versions that
    benchmarks/same_returns.py ran side by side with it and found giving the same numbers bit for
    bit (benchmarks/results/equivalent.json: new hash -> the old one it was compared with)."""
    equivalent = load(os.path.join(RESULTS, "equivalent.json"))
    names, h = set(), blob(path)
    while h and h not in names:
        names.add(h)
        h = equivalent.get(h, {}).get("same_as")
    return names


def changed(scripts):
    """The scripts among these whose content is not the one recorded (or that are gone)."""
    return [p for p, h in (scripts or {}).items()
            if not os.path.exists(os.path.join(ROOT, p)) or h not in same_code(p)]


def out_of_date():
    """[(what, why)] for every summary, result and figure that no longer matches the code or results here."""
    stale = []
    for s in summaries():
        if not s.get("sources"):
            stale.append((summary_key(s), "records no script hash (made before runs recorded one)"))
        elif changed(s["sources"]):
            stale.append((summary_key(s), f"{', '.join(changed(s['sources']))} changed since"))
    for key, entry in load().items():
        if not os.path.exists(os.path.join(ROOT, key)):
            stale.append((key, "is gone"))
        elif changed(entry.get("scripts")):
            stale.append((key, f"{', '.join(changed(entry['scripts']))} changed since: {entry.get('command')}"))
        elif changed(entry.get("inputs")):
            stale.append((key, f"drawn from {', '.join(changed(entry['inputs']))} before it changed: {entry.get('command')}"))
    return stale


def unrecorded():
    """Committed results and figures with no entry: every docs/*.png and every file in benchmarks/results but
    summary.json (whose summaries carry their own), sources.json itself and the run folders (not committed). A file
    is covered by its own entry or by one for a folder above it (a Breakout run folder)."""
    known = set(load())
    paths = [os.path.join("docs", name) for name in os.listdir(os.path.join(ROOT, "docs")) if name.endswith(".png")]
    for folder, dirs, files in os.walk(RESULTS):
        dirs[:] = [d for d in dirs if d not in ("runs", "slurm") and not d.startswith(".")]
        paths += [os.path.relpath(os.path.join(folder, name), ROOT) for name in files
                  if name not in ("summary.json", "sources.json", "equivalent.json") and not name.startswith(".")]
    covered = lambda path: any(path == key or path.startswith(key.rstrip("/") + "/") for key in known)  # noqa: E731
    return sorted(path for path in paths if not covered(path))


def verify(key):
    """Re-run, with the code here, the first seed of a summary whose run records no script hash, in a folder of its
    own, and compare its episodes with that run's: the same returns, episode by episode, and the same final
    evaluation, and every run of the summary without a hash is stamped with the script here (run.json), as is the
    summary. Returns whether they were the same."""
    import run_seeds  # here, not at the top: run_seeds imports this module
    todo = [s for s in summaries() if summary_key(s) == key]
    if not todo:
        sys.exit(f"error: no summary {key!r} (python benchmarks/provenance.py lists them)")
    s = todo[0]
    run_json = lambda seed: os.path.join(run_seeds.run_dir_of(s["script"], s["env_id"], seed, s["flags"]), "run.json")  # noqa: E731
    unstamped = []
    for entry in s["per_seed"]:
        with open(run_json(entry["seed"])) as f:
            if not json.load(f).get("sources"):
                unstamped.append(entry["seed"])
    if not unstamped:
        print(f"{key}: every run records its script's hash: summarise again (run_seeds.py --summary-only)")
        return True
    seed = unstamped[0]
    old = run_seeds.read_run(s["script"], s["env_id"], seed, s["flags"], RESULTS)
    tmp = tempfile.mkdtemp(prefix="verify-")
    try:
        new_dir = run_seeds.run_dir_of(s["script"], s["env_id"], seed, s["flags"], tmp)
        os.makedirs(new_dir)
        run_seeds.measure(run_seeds.training_command(s["script"], s["env_id"], seed, s["flags"]), new_dir)
        new = run_seeds.read_run(s["script"], s["env_id"], seed, s["flags"], tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    same = new is not None and new["returns"] == old["returns"] and new["final"] == old["final"]
    print(f"{key}: seed {seed} re-run here: {'the same' if same else 'NOT the same'} "
          f"({len(old['returns'])} episodes then, {len(new['returns']) if new else 0} now)", flush=True)
    if same:
        note = f"seed {seed} re-run with this script gave the same {len(old['returns'])} episode returns"
        for other in unstamped:
            with open(run_json(other)) as f:
                info = json.load(f)
            info.update(sources=hashes([s["script"]]), sources_note=note)
            with open(run_json(other), "w") as f:
                json.dump(info, f)
    return same


# Breakout's CPU-sized runs take 45 minutes each: --verify-breakout re-runs each for a few minutes and compares
# every row it wrote (the episodes, and train.csv's loss and mean Q) with the committed run's first rows.
ATARI = ["dqn_atari.py", "--env-id", "BreakoutNoFrameskip-v4", "--seed", "1", "--threads", "1"]
BREAKOUT = {
    "benchmarks/results/breakout/float32": ATARI + ["--total-timesteps", "250000", "--buffer-size", "100000",
                                                    "--learning-starts", "10000", "--exploration-fraction", "0.4"],
    "benchmarks/results/breakout/bfloat16": ATARI + ["--total-timesteps", "250000", "--buffer-size", "100000",
                                                     "--learning-starts", "10000", "--exploration-fraction", "0.4", "--bf16"],
    "benchmarks/results/breakout/random_policy": ATARI + ["--total-timesteps", "100000", "--buffer-size", "1000",
                                                          "--learning-starts", "100000000", "--start-e", "1", "--end-e", "1",
                                                          "--no-save-model"]}


def verify_breakout(seconds):
    import run_seeds  # here, not at the top: run_seeds imports this module
    same_all = True
    for folder, command in BREAKOUT.items():
        tmp = tempfile.mkdtemp(prefix="breakout-")
        try:
            subprocess.run([sys.executable, os.path.join(ROOT, command[0]), *command[1:]], cwd=tmp, timeout=seconds,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1"))
        except subprocess.TimeoutExpired:
            pass
        run = os.path.join(tmp, "runs", os.listdir(os.path.join(tmp, "runs"))[0])
        counts, same = [], True
        for name, columns in (("episodes.csv", ["global_step", "episodic_return", "episodic_length", "epsilon"]),
                              ("train.csv", ["global_step", "loss", "q_values", "learning_rate"])):
            now = [[row[c] for c in columns] for row in run_seeds.read_csv_rows(os.path.join(run, name))]
            then = [[row[c] for c in columns] for row in run_seeds.read_csv_rows(os.path.join(ROOT, folder, name))]
            differ = [(a, b) for a, b in zip(now, then) if a != b]
            if differ or (name == "episodes.csv" and not now):  # no game ended in time: nothing was compared
                same = False
                print(f"  {name}: first rows that differ: {differ[0] if differ else 'none written'}")
            counts.append(f"{len(now)} of {len(then)} {name} rows")
            if name == "episodes.csv":
                last = now[-1][0] if now else 0  # the step of the last game the re-run finished
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"{folder}: {'the same' if same else 'NOT the same'} ({', '.join(counts)}, to step {last})", flush=True)
        same_all &= same
        if same:
            record(folder, scripts=[command[0]], command=" ".join(["python", *command]),
                   note=f"made by an earlier dqn_atari.py; re-run here for {seconds} s with this one, to step {last}: "
                        f"the same {', '.join(counts)} (python benchmarks/provenance.py --verify-breakout {seconds})")
    return same_all


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--verify", metavar="KEY", action="append", default=[],
                   help="a summary's key as this lists it (repeat for several)")
    p.add_argument("--verify-breakout", metavar="SECONDS", type=int,
                   help="re-run each committed Breakout run for this long and compare the rows it wrote")
    a = p.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if a.verify_breakout:
        sys.exit(0 if verify_breakout(a.verify_breakout) else 1)
    if a.verify:
        sys.exit(0 if all([verify(key) for key in a.verify]) else 1)
    problems = out_of_date() + [(path, "has no entry in benchmarks/results/sources.json") for path in unrecorded()]
    for what, why in problems:
        print(f"{what}: {why}")
    print(f"{len(problems)} out of date" if problems else "every result and figure is from the code here")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
