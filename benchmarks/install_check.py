"""Does a fresh install work? For each Python 3.11-3.13 on this machine: a new venv, requirements.txt, the suite.

    python benchmarks/install_check.py                     # every python3.11, 3.12, 3.13 on the PATH
    python benchmarks/install_check.py --pythons python3.12 --install-timeout 1200

Run by hand (it downloads packages; CI installs its own). Each Python gets a virtual environment in a
temporary folder, `pip install -r requirements.txt` there, then `pytest -n 2 test_scripts.py` from a copy
of the repository. It prints one table row per Python: install time, test time, and the suite's last line
(or why it stopped). The exit code is 1 if any Python found failed.
"""
import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHONS = ["python3.11", "python3.12", "python3.13"]


def last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:100] if lines else ""


def check(python, install_timeout, test_timeout):
    """(installed in s, tested in s, what the suite said) for one Python."""
    folder = tempfile.mkdtemp(prefix="install-check-")
    try:
        venv = os.path.join(folder, "venv")
        subprocess.run([python, "-m", "venv", venv], check=True)
        bin_dir = "Scripts" if os.name == "nt" else "bin"
        venv_python = os.path.join(venv, bin_dir, "python")
        start = time.time()
        try:
            done = subprocess.run([venv_python, "-m", "pip", "install", "-q", "-r",
                                   os.path.join(ROOT, "requirements.txt")],
                                  capture_output=True, text=True, timeout=install_timeout)
        except subprocess.TimeoutExpired:
            return time.time() - start, None, f"install: over {install_timeout} s"
        installed = time.time() - start
        if done.returncode != 0:
            return installed, None, "install failed: " + last_line(done.stderr)
        copy = os.path.join(folder, "repo")
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(
            ".git", "runs", "videos", "__pycache__", ".venv"))
        start = time.time()
        try:
            done = subprocess.run([venv_python, "-m", "pytest", "-q", "-n", "2",
                                   "-p", "no:cacheprovider", "test_scripts.py"],
                                  cwd=copy, capture_output=True, text=True, timeout=test_timeout)
        except subprocess.TimeoutExpired:
            return installed, time.time() - start, f"tests: over {test_timeout} s"
        return installed, time.time() - start, last_line(done.stdout)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pythons", nargs="*", default=PYTHONS)
    p.add_argument("--install-timeout", type=int, default=900)
    p.add_argument("--test-timeout", type=int, default=900)
    a = p.parse_args()
    print(f"machine: {platform.system()} {platform.machine()}")
    print("| Python | install | behaviour suite | result |")
    print("|---|---|---|---|")
    failed = False
    for python in a.pythons:
        path = shutil.which(python)
        if path is None:
            print(f"| {python} | not on this machine | | |", flush=True)
            continue
        said = subprocess.run([path, "--version"], capture_output=True, text=True)
        if said.returncode != 0 or not said.stdout.split():  # e.g. a pyenv shim with no version set
            print(f"| {python} | not usable: {last_line(said.stderr)} | | |", flush=True)
            continue
        version = said.stdout.split()[-1]
        installed, tested, said = check(path, a.install_timeout, a.test_timeout)
        ok = "passed" in said and "failed" not in said and "error" not in said
        failed |= not ok
        test_time = f"{tested:.0f} s" if tested is not None else "-"
        print(f"| {version} | {installed:.0f} s | {test_time} | {said} |", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
