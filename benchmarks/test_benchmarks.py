"""Tests of the tools under benchmarks/ (seed sweeps, summaries, plots, the lecture's code, REINFORCE):
`pytest -n 2 benchmarks/test_benchmarks.py`, run by .ci/run. Tiny budgets: they check the tools, not results.
"""
import hashlib
import importlib
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_scripts import (ROOT, assert_one_line_error, load_script, only_run_dir, read_csv,  # noqa: E402
                          run_script)
from test_scripts import atari  # noqa: E402, F401  (a fixture)

RUN_SEEDS = ROOT / "benchmarks" / "run_seeds.py"
PLOT_RESULTS = ROOT / "benchmarks" / "plot_results.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_per_benchmark_runs_on_a_small_setting():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_per.py"), "--size", "3000",
                             "--lecture-size", "1000", "--repeats", "40"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "3,000 transitions" in result.stdout and "ratio lecture / ours" in result.stdout


def test_seed_runner_summarises_over_seeds_and_the_plot_script_draws_from_it(tmp_path):
    flags = ["--total-timesteps", 1000, "--learning-starts", 200, "--buffer-size", 1000, "--batch-size", 32,
             "--check-frequency", 500, "--check-episodes", 2, "--eval-episodes", 3, "--probe-states", 50]
    runner = [sys.executable, str(ROOT / "benchmarks" / "run_seeds.py"), "dqn_cartpole.py", "--seeds", "1-2",
              "--root", str(tmp_path), "--threshold", 10, "--", *flags]
    result = subprocess.run(list(map(str, runner)), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (summary,) = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["script"], summary["env_id"], summary["seeds"], summary["runs"]) == ("dqn_cartpole.py", "CartPole-v1", "1-2", 2)
    assert summary["flags"] == list(map(str, flags)) and summary["budget"] == {"total_timesteps": 1000}
    (tag,) = [path.name for path in (tmp_path / "runs" / "dqn_cartpole" / "CartPole-v1").iterdir()]
    assert tag == summary["flags_tag"] and tag.startswith("total-timesteps=1000_learning-starts=200")
    for model, key in [("kept", "kept_mean"), ("final", "final_mean")]:
        scores = [json.loads(path.read_text())[key] for path in sorted(tmp_path.glob(f"runs/dqn_cartpole/CartPole-v1/{tag}/seed-*/runs/*/eval.json"))]
        m = summary[model]
        assert m["scores"] == scores and m["mean"] == pytest.approx(np.mean(scores))
        assert m["reached"] == sum(score >= 10 for score in scores) and m["iqm"] == pytest.approx(np.mean(scores))  # 2 seeds: no quarter to cut
        assert m["ci95"][0] <= m["mean"] <= m["ci95"][1] and min(scores) <= m["ci95"][0] and m["ci95"][1] <= max(scores)
    assert summary["sps_median"] > 0 and summary["first_check_at_threshold"]["runs"] in (0, 1, 2)
    probe = [read_csv(path) for path in sorted(tmp_path.glob(f"runs/dqn_cartpole/CartPole-v1/{tag}/seed-*/runs/*/train.csv"))]
    peaks = [max(float(row["probe_q_mean"]) for row in rows) for rows in probe]
    assert [entry["peak_mean_q"] for entry in summary["per_seed"]] == peaks
    assert summary["probe_q"]["peak_mean_q_median"] == pytest.approx(np.median(peaks))
    assert summary["probe_q"]["max_q"] == max(float(row["probe_q_max"]) for rows in probe for row in rows)
    again = subprocess.run(list(map(str, runner)), capture_output=True, text=True, timeout=300)
    assert again.stdout.count("skipped") == 2  # resumable: finished runs are not trained again
    curves = read_csv(tmp_path / "curves" / f"dqn_cartpole__CartPole-v1__{tag}.csv")
    assert {row["kind"] for row in curves} == {"check", "episodes", "probe_q"}
    plot = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "plot_results.py"), "--curves", str(tmp_path / "curves"),
                           "--out", str(tmp_path / "figs")], capture_output=True, text=True, timeout=120)
    assert plot.returncode == 0, plot.stderr
    for name in ["cartpole.png", "overestimation.png"]:
        assert (tmp_path / "figs" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_atari_speed_benchmark_counts_the_nature_networks_flops(atari):
    bench = load_script("benchmarks/bench_atari_speed.py")
    # MACs: conv1 20*20*32 outputs x 4*8*8, conv2 9*9*64 x 32*4*4, conv3 7*7*64 x 64*3*3, 3136*512, 512*4
    macs = 20 * 20 * 32 * 256 + 9 * 9 * 64 * 512 + 7 * 7 * 64 * 576 + 3136 * 512 + 512 * 4
    assert bench.network_flops(atari.QNetwork(4), (1, 4, 84, 84)) == 2 * macs == 18_690_048
    # target forward, online forward, weight gradients, and input gradients of all layers but the first
    assert bench.gradient_step_flops(atari.QNetwork(4), 32) == (4 * 2 * macs - 2 * 20 * 20 * 32 * 256) * 32  # 2.18 G




@pytest.fixture(scope="module")
def run_seeds():
    spec = importlib.util.spec_from_file_location("run_seeds", RUN_SEEDS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_run(run_seeds, root, seed, kept, *, script="dqn_cartpole.py", env_id="CartPole-v1", extra=(), final=None,
              returns=(20.0,), elapsed=True, checks=(), cpu_s=2.0, total_timesteps=1000):
    """A finished run as run_seeds.py leaves it: its folder's run.json, and the run folder the script wrote in it
    (args.json, and episodes.csv, checks.csv, train.csv, eval.json as dqn_cartpole.py's Logs writes them;
    q_learning_frozenlake.py's episodes.csv and eval.json for that script). A CartPole return is its length."""
    cwd = Path(run_seeds.run_dir_of(script, env_id, seed, list(extra), str(root)))
    run_dir = cwd / "runs" / f"{env_id}__{script[:-3]}__{seed}__1700000000"
    run_dir.mkdir(parents=True)
    (cwd / "run.json").write_text(json.dumps({"wall_s": cpu_s + 1, "cpu_s": cpu_s, "exit_code": 0}))
    if script == "q_learning_frozenlake.py":
        (run_dir / "args.json").write_text(json.dumps({"episodes": len(returns), "seed": seed, "script": script}))
        rows = ["episode,return,length,epsilon,learning_rate"] + [f"{i + 1},{r},{7 + i % 3},0.5,0.1" for i, r in enumerate(returns)]
        (run_dir / "episodes.csv").write_text("\n".join(rows) + "\n")
        (run_dir / "eval.json").write_text(json.dumps({"success_rate": final, "exact_this_policy": kept, "best_achievable": 0.7442}))
        return run_dir
    (run_dir / "args.json").write_text(json.dumps({"total_timesteps": total_timesteps, "env_id": env_id, "seed": seed,
                                                   "gamma": 0.99, "script": script}))
    steps = np.cumsum(returns).astype(int)
    header = "global_step,episodic_return,episodic_length,epsilon" + (",elapsed_s" if elapsed else "")
    rows = [f"{s},{r},{int(r)},0.1" + (f",{0.5 * (i + 1)}" if elapsed else "") for i, (s, r) in enumerate(zip(steps, returns))]
    (run_dir / "episodes.csv").write_text("\n".join([header, *rows]) + "\n")
    (run_dir / "checks.csv").write_text("\n".join(["global_step,score,kept,elapsed_s",
                                                   *[f"{s},{score},1,{s / 1000}" for s, score in checks]]) + "\n")
    (run_dir / "train.csv").write_text("global_step,loss,q_values,sps,probe_q_mean,probe_q_max\n")
    (run_dir / "eval.json").write_text(json.dumps({"kept_mean": kept, "final_mean": kept if final is None else final,
                                                   "final_returns": [kept]}))
    return run_dir


def _summaries(run_seeds, root, *args, capsys=None):
    """run_seeds.py --summary-only on these arguments (flags after `--` too), in this process: the summaries."""
    args = list(map(str, args))
    own, extra = (args[: args.index("--")], args[args.index("--"):]) if "--" in args else (args, [])
    run_seeds.main([*own, "--root", str(root), "--summary-only", *extra])
    if capsys is not None:
        return json.loads((Path(root) / "summary.json").read_text()), capsys.readouterr().out
    return json.loads((Path(root) / "summary.json").read_text())


def test_true_value_discounted_returns_and_a_pushing_policy_against_hand_values():
    """benchmarks/true_value.py: G_t by hand for three rewards; a network that always pushes left plays a game whose
    length an env of the test's own counts, and its true return from the start is sum of γ^t over that length."""
    spec = importlib.util.spec_from_file_location("true_value", ROOT / "benchmarks" / "true_value.py")
    true_value = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(true_value)
    assert true_value.discounted_returns([1.0, 1.0, 1.0]) == pytest.approx([2.9701, 1.99, 1.0])

    class PushLeft(torch.nn.Module):  # Q(s, left) = 50, Q(s, right) = 0, whatever the state
        def forward(self, obs):
            return torch.tensor([[50.0, 0.0]]).expand(len(obs), 2)

    estimates, truths, lengths = true_value.measure_network(PushLeft(), "CartPole-v1", seed=4, starts=2)
    env = gym.make("CartPole-v1")
    for start, length in enumerate(lengths):
        env.reset(seed=10**13 + 4 * 1_000 + start)
        steps, done = 0, False
        while not done:
            _, _, terminated, truncated, _ = env.step(0)
            steps, done = steps + 1, terminated or truncated
        assert length == steps < 50
    assert truths[0] == pytest.approx(sum(0.99**t for t in range(lengths[0])))
    assert len(estimates) == sum(lengths) and set(estimates) == {50.0}


def test_flags_tag_is_readable_and_tells_apart_any_two_sets_of_flags(run_seeds):
    assert run_seeds.flags_tag([]) == "defaults"
    small, large = run_seeds.flags_tag(["--total-timesteps", "1000"]), run_seeds.flags_tag(["--total-timesteps", "100000"])
    assert small.startswith("total-timesteps=1000_") and large.startswith("total-timesteps=100000_") and small != large
    assert small == run_seeds.flags_tag(["--total-timesteps", "1000"])  # stable: the folder is found again
    long = ["--total-timesteps", "1000", "--learning-starts", "500", "--check-frequency", "1000", "--buffer-size"]
    cut_apart = run_seeds.flags_tag(long + ["1000"]), run_seeds.flags_tag(long + ["2000"])  # differ past the cut
    assert cut_apart[0] != cut_apart[1] and all(len(tag) <= 49 and "__" not in tag for tag in cut_apart)
    assert run_seeds.flags_tag(["--lr", "a/b"]) != run_seeds.flags_tag(["--lr", "a_b"])  # made readable alike
    assert "/" not in run_seeds.flags_tag(["--lr", "a/b"])
    folder = Path(run_seeds.run_dir_of("dqn_cartpole.py", "CartPole-v1", 3, ["--total-timesteps", "1000"], "/r"))
    assert folder == Path("/r/runs/dqn_cartpole/CartPole-v1") / small / "seed-3"
    assert Path(run_seeds.run_dir_of("dqn_cartpole.py", "CartPole-v1", 3, [], "/r")).parent.name == "defaults"


def test_wilson_interval_and_probability_of_improvement_against_hand_computed_values(run_seeds):
    # Wilson, 18 of 20: centre (0.9 + 1.96²/40) / (1 + 1.96²/20) = 0.8356, half-width 0.1366 (worked by hand)
    assert run_seeds.wilson(18, 20) == pytest.approx([0.6990, 0.9721], abs=1e-4)
    assert run_seeds.wilson(0, 10) == pytest.approx([0.0, 0.2775], abs=1e-4)  # no collapse to [0, 0] at a count of 0
    # P(X > Y) + P(X = Y) / 2 over seed pairs: 1 win, 2 ties, 1 loss -> (1 + 1) / 4
    p, (low, high) = run_seeds.prob_improvement([1, 2, 3, 3], [0, 2, 4, 3], np.random.default_rng(0))
    assert p == 0.5 and 0 <= low < 0.5 < high <= 1
    assert run_seeds.prob_improvement([5, 5, 5], [1, 2, 3], np.random.default_rng(0)) == (1.0, [1.0, 1.0])


def test_sweeps_with_other_flags_neither_skip_nor_summarise_each_others_runs(tmp_path):
    base = ["q_learning_frozenlake.py", "--seeds", "1", "--jobs", 1, "--root", tmp_path, "--", "--eval-episodes", 100]
    first = run_script(RUN_SEEDS, *base, "--episodes", 100)
    second = run_script(RUN_SEEDS, *base, "--episodes", 300)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "skipped" not in second.stdout  # the other budget is another run
    assert "skipped" in run_script(RUN_SEEDS, *base, "--episodes", 300).stdout  # the same flags: the same run
    summaries = json.loads((tmp_path / "summary.json").read_text())
    assert [s["budget"] for s in summaries] == [{"episodes": 100}, {"episodes": 300}]
    assert [s["flags"] for s in summaries] == [["--eval-episodes", "100", "--episodes", "100"],
                                               ["--eval-episodes", "100", "--episodes", "300"]]
    assert all(s["runs"] == 1 and s["per_seed"][0]["episodes"] == s["budget"]["episodes"] for s in summaries)
    assert "| --eval-episodes 100 --episodes 300 | 300 episodes |" in second.stdout


def test_summary_shows_its_flags_and_budget_and_keeps_other_flags_apart(run_seeds, tmp_path, capsys):
    for seed, (small, large) in enumerate([(10, 400), (20, 500)], start=1):
        _fake_run(run_seeds, tmp_path, seed, small, extra=["--total-timesteps", "1000"])
        _fake_run(run_seeds, tmp_path, seed, large, extra=["--total-timesteps", "50000"], total_timesteps=50_000)
    _summaries(run_seeds, tmp_path, "dqn_cartpole.py", "--seeds", "1-2", "--", "--total-timesteps", 1000)
    summaries, out = _summaries(run_seeds, tmp_path, "dqn_cartpole.py", "--seeds", "1-2", "--", "--total-timesteps", 50000, capsys=capsys)
    assert [(s["budget"], s["kept"]["scores"]) for s in summaries] == [({"total_timesteps": 1000}, [10, 20]),
                                                                       ({"total_timesteps": 50000}, [400, 500])]
    assert "| dqn_cartpole.py | CartPole-v1 | --total-timesteps 50000 | 50,000 steps | 1-2 |" in out


def test_interquartile_mean_is_the_mean_of_the_middle_half_not_the_mean(run_seeds, tmp_path):
    scores = [10, 500, 20, 30, 40, 50, 60, 70]  # IQM: mean of 30, 40, 50, 60 = 45; the mean is 97.5
    for seed, score in enumerate(scores, start=1):
        _fake_run(run_seeds, tmp_path, seed, score, final=score / 10)
    (summary,) = _summaries(run_seeds, tmp_path, "dqn_cartpole.py", "--seeds", "1-8")
    assert summary["kept"]["iqm"] == 45.0 and summary["kept"]["mean"] == 97.5 and summary["kept"]["reached"] == 1
    assert summary["final"]["iqm"] == pytest.approx(4.5) and summary["kept"]["scores"] == scores
    # the interval, exactly: the documented generator (SHA-256 of script, env, flags, seeds), 10,000 resamples
    key = json.dumps(["dqn_cartpole.py", "CartPole-v1", [], list(range(1, 9))])
    rng = np.random.default_rng(np.random.SeedSequence(int.from_bytes(hashlib.sha256(key.encode()).digest()[:16], "big")))
    means = np.array(scores, dtype=float)[rng.integers(0, 8, size=(10_000, 8))].mean(axis=1)
    assert summary["kept"]["ci95"] == [np.quantile(means, 0.025), np.quantile(means, 0.975)]


def test_bootstrap_interval_is_exact_where_it_can_be(run_seeds, tmp_path):
    for seed in (1, 2, 3):
        _fake_run(run_seeds, tmp_path, seed, 500.0)
    for seed, score in [(11, 100.0), (12, 300.0)]:
        _fake_run(run_seeds, tmp_path, seed, score)
    same, two = _summaries(run_seeds, tmp_path, "dqn_cartpole.py", "--seeds", "1-3,11-12")
    assert same["kept"]["ci95"] == [500.0, 500.0]  # every resample's mean is 500
    assert two["kept"]["ci95"] == [100.0, 300.0]  # a quarter of the resamples are (100, 100), a quarter (300, 300)


def test_a_summarys_interval_is_the_same_alone_and_after_another_group(run_seeds, tmp_path):
    for seed, score in enumerate([30, 480, 500, 120, 500, 310, 75, 500], start=1):
        _fake_run(run_seeds, tmp_path, seed, score)
        _fake_run(run_seeds, tmp_path, 100 + seed, 600 - score)
    (alone,) = _summaries(run_seeds, tmp_path, "dqn_cartpole.py", "--seeds", "101-108")
    after = _summaries(run_seeds, tmp_path, "dqn_cartpole.py", "--seeds", "1-8,101-108")[-1]
    assert after["seeds"] == "101-108" and after["kept"]["ci95"] == alone["kept"]["ci95"]
    assert alone["kept"]["ci95"][0] < alone["kept"]["mean"] < alone["kept"]["ci95"][1]
    first = _summaries(run_seeds, tmp_path, "dqn_cartpole.py", "--seeds", "1-8")[-1]
    assert first["kept"]["ci95"] != after["kept"]["ci95"]


def test_episodes_to_the_lectures_criterion_use_the_last_100_returns(run_seeds):
    returns = [100.0] * 100 + [500.0] * 100  # mean of episodes k-99..k = 100 + 4 (k - 100): >= 195 from k = 124
    assert run_seeds.episodes_to_mean(returns) == 124
    brute = next(k for k in range(100, 201) if np.mean(returns[k - 100:k]) >= 195)
    assert brute == 124
    early = [200.0] + [100.0] * 150
    assert run_seeds.episodes_to_mean(early) is None and run_seeds.episodes_to_mean(early, partial=True) == 1
    assert run_seeds.episodes_to_mean([500.0] * 99) is None  # fewer than 100 episodes: not yet
    assert run_seeds.episodes_to_mean([500.0] * 100) == 100
    assert run_seeds.episodes_to_mean([195.0] * 99 + [194.0]) is None
    assert run_seeds.episodes_to_mean([19500.0] + [0.0] * 150) == 100  # episodes 1..100, not 2..100
    assert run_seeds.episodes_to_mean([0.0] * 100 + [19500.0] + [0.0] * 50) == 101  # episodes 2..101, not 1..101


def test_summary_reports_the_lectures_criterion_per_seed_and_group(run_seeds, tmp_path, capsys):
    met_early = [100.0] * 100 + [500.0] * 100  # meets at episode 124: within 200
    met_late = [100.0] * 226 + [500.0] * 30  # 100 + 4 (k - 226) >= 195 at k = 250: not within 200
    never = [150.0] * 300
    _fake_run(run_seeds, tmp_path, 1, 500.0, returns=met_early, checks=[(1000, 500.0), (2000, 949.0), (3000, 960.0)])
    _fake_run(run_seeds, tmp_path, 2, 480.0, returns=met_late, elapsed=False)  # no elapsed_s column: no wall time
    _fake_run(run_seeds, tmp_path, 3, 300.0, returns=never)
    (summary,), out = _summaries(run_seeds, tmp_path, "dqn_cartpole.py", "--seeds", "1-3", capsys=capsys)
    per_seed = summary["per_seed"]
    assert [s["episodes_to_195"] for s in per_seed] == [124, 250, None]
    assert [s["within_200"] for s in per_seed] == [True, False, False]
    assert per_seed[0]["step_at_195"] == int(sum(met_early[:124])) and per_seed[0]["wall_s_at_195"] == 62.0
    assert per_seed[1]["step_at_195"] == int(sum(met_late[:250])) and per_seed[1]["wall_s_at_195"] is None
    assert [s["kept"] for s in per_seed] == [500.0, 480.0, 300.0]
    # a check plays 1,000 steps on CartPole: the bar is 950, so 500 and 949 do not count
    assert per_seed[0]["first_check_at_threshold"] == {"step": 3000, "wall_s": 3.0}
    assert summary["first_check_at_threshold"]["runs"] == 1 and summary["first_check_at_threshold"]["median_steps"] == 3000
    criterion = summary["lecture_criterion"]
    assert (criterion["met"], criterion["within_200"]) == (2, 1)
    assert criterion["median_episodes"] == 250  # of 124, 250 and never: never ranks last
    assert criterion["ci95_median_episodes"] == [124, None]  # P(median 124) = P(median never) = 7/27
    assert "| 1/3; 250 [124, not met] |" in out


def test_the_median_episodes_is_not_met_when_half_the_seeds_never_meet_it(run_seeds):
    rng = np.random.default_rng(0)
    assert run_seeds.median_with_never([124, 130, None, None], rng)[0] is None
    assert run_seeds.median_with_never([124, 130, 140, None], rng)[0] == 135


def test_frozenlake_speed_counts_env_steps_per_cpu_second_and_says_so(run_seeds, tmp_path, capsys):
    returns = [0, 1] * 50  # 100 episodes of 7, 8 or 9 steps: 797 steps
    for seed in (1, 2):
        _fake_run(run_seeds, tmp_path, seed, 0.74, final=0.7, script="q_learning_frozenlake.py", env_id="FrozenLake-v1",
                  returns=returns, cpu_s=2.0)
    (summary,), out = _summaries(run_seeds, tmp_path, "q_learning_frozenlake.py", "--seeds", "1-2", capsys=capsys)
    steps = sum(7 + i % 3 for i in range(100))
    assert summary["sps_median"] == steps / 2 and summary["episodes_per_cpu_s_median"] == 50.0
    assert summary["budget"] == {"episodes": 100} and "lecture_criterion" not in summary
    assert f"| {steps / 2:,.0f} (50 episodes/s) |" in out and "SPS (env steps per CPU second)" in out
    figs = run_script(PLOT_RESULTS, "--curves", tmp_path / "curves", "--out", tmp_path / "figs")
    assert figs.returncode == 0, figs.stderr
    assert (tmp_path / "figs" / "frozenlake.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("args", [["dqn_cartpole.py", "--seeds", "abc"], ["dqn_cartpole.py", "--seeds", "5-3"],
                                  ["no_such_script.py"], ["dqn_cartpole.py", "--", "--seed", "3"],
                                  ["dqn_cartpole.py", "--", "--env-id=Acrobot-v1"],
                                  ["dqn_cartpole.py", "--print-commands", "--slurm"],
                                  ["dqn_cartpole.py", "--slurm", "--max-running", "0"],
                                  ["dqn_cartpole.py", "--time", "00:10:00"], ["dqn_cartpole.py", "--jobs", "x"]])
def test_run_seeds_bad_input_is_one_error_line(tmp_path, args):
    assert_one_line_error(run_script(RUN_SEEDS, "--root", tmp_path, *args))  # --root first: never after a `--`
    assert not (tmp_path / "runs").exists()


def test_printed_commands_run_anywhere_then_the_summary_reports_them(tmp_path):
    sweep = ["q_learning_frozenlake.py", "--seeds", "1-2", "--root", tmp_path / "results"]
    flags = ["--", "--episodes", 200, "--eval-episodes", 100]
    printed = run_script(RUN_SEEDS, *sweep, "--print-commands", *flags)
    lines = printed.stdout.splitlines()
    assert printed.returncode == 0 and len(lines) == 2 and "2 of 2 runs to do" in printed.stderr
    assert all(line.startswith(f"mkdir -p {tmp_path / 'results'}/runs/q_learning_frozenlake/FrozenLake-v1/")
               and "OMP_NUM_THREADS=1" in line and str(ROOT / "q_learning_frozenlake.py") in line for line in lines)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ran = subprocess.run(["xargs", "-d", "\n", "-P", "2", "-I{}", "sh", "-c", "{}"], input=printed.stdout, cwd=elsewhere,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert not list(elsewhere.iterdir())  # each line went to its own run folder
    summary = run_script(RUN_SEEDS, *sweep, "--summary-only", *flags)
    assert summary.returncode == 0, summary.stderr
    (s,) = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert s["runs"] == 2 and s["budget"] == {"episodes": 200} and s["cpu_s_median"] is not None
    assert "| 1-2 | 0/2," in summary.stdout or "| 1-2 | 1/2," in summary.stdout or "| 1-2 | 2/2," in summary.stdout
    again = run_script(RUN_SEEDS, *sweep, "--print-commands", *flags)
    assert again.stdout == "" and "0 of 2 runs to do (2 finished)" in again.stderr


def test_the_slurm_array_script_runs_each_run_in_its_folder(run_seeds, tmp_path):
    sweep = ["q_learning_frozenlake.py", "--seeds", "1-4", "--root", tmp_path]
    flags = ["--", "--episodes", 100, "--eval-episodes", 50]
    written = run_script(RUN_SEEDS, *sweep, "--slurm", "--max-running", 3, "--time", "00:10:00", "--partition", "debug", *flags)
    assert written.returncode == 0, written.stderr
    path = Path(re.search(r"wrote (\S+\.sbatch)", written.stdout)[1])
    text = path.read_text()
    for line in ["#SBATCH --array=0-3%3", "#SBATCH --cpus-per-task=1", "#SBATCH --time=00:10:00", "#SBATCH --partition=debug"]:
        assert line in text.splitlines()
    assert "--summary-only" in written.stdout.splitlines()[-1]
    seed_3 = Path(run_seeds.run_dir_of("q_learning_frozenlake.py", "FrozenLake-v1", 3, list(map(str, flags[1:])), str(tmp_path)))
    assert f"mkdir -p {seed_3} && cd {seed_3} && rm -rf runs && " in text
    stale = seed_3 / "runs" / "stopped"
    stale.mkdir(parents=True)  # what a stopped run left: the run starts again from nothing
    task = subprocess.run(["bash", str(path)], env=dict(os.environ, SLURM_ARRAY_TASK_ID="2"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # array task 2 is seed 3
    assert task.returncode == 0, task.stderr
    assert not stale.exists()
    assert [p.parent.parent.parent.name for p in tmp_path.glob("runs/*/*/*/seed-*/runs/*/eval.json")] == ["seed-3"]
    rest = run_script(RUN_SEEDS, *sweep, "--slurm", *flags)
    assert "#SBATCH --array=0-2\n" in Path(re.search(r"wrote (\S+\.sbatch)", rest.stdout)[1]).read_text()
    no_sbatch = run_script(RUN_SEEDS, *sweep, "--submit", *flags, env={"PATH": os.path.dirname(sys.executable)})
    assert_one_line_error(no_sbatch)
    assert "sbatch not found" in no_sbatch.stderr


def test_lecture_dqn_writes_a_run_folder_that_run_seeds_summarises(tmp_path):
    result = run_script(RUN_SEEDS, "benchmarks/lecture_dqn.py", "--seeds", 1, "--root", tmp_path, "--",
                   "--episodes", 12, "--eval-episodes", 2, timeout=300)
    assert result.returncode == 0, result.stderr
    (summary,) = json.loads((tmp_path / "summary.json").read_text())
    assert summary["script"] == "benchmarks/lecture_dqn.py" and summary["budget"] == {"episodes": 12}
    (run_dir,) = tmp_path.glob("runs/lecture_dqn/CartPole-v1/*/seed-1/runs/CartPole-v1__lecture_dqn__1__*")
    rows = read_csv(run_dir / "episodes.csv")
    assert list(rows[0]) == ["global_step", "episodic_return", "episodic_length", "epsilon", "elapsed_s"]
    assert len(rows) == 12 and int(rows[-1]["global_step"]) == sum(float(row["episodic_return"]) for row in rows)
    assert [float(row["epsilon"]) for row in rows[:3]] == [1.0, 0.995, 0.99]
    assert all(float(a["elapsed_s"]) <= float(b["elapsed_s"]) for a, b in zip(rows, rows[1:]))
    saved = json.loads((run_dir / "eval.json").read_text())
    assert summary["kept"]["scores"] == [saved["mean"]] and len(saved["returns"]) == 2
    seed = summary["per_seed"][0]
    assert seed["episodes"] == 12 and seed["episodes_to_195"] is None and seed["within_200"] is False
    plot = run_script(PLOT_RESULTS, run_dir)
    assert plot.returncode == 0 and plot.stdout == f"wrote {run_dir / 'plot.png'}\n", plot.stderr


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("plotted")
    result = run_script("dqn_cartpole.py", "--total-timesteps", 2000, "--learning-starts", 500, "--check-frequency", 1000,
                        "--eval-episodes", 2, "--check-episodes", 2, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return only_run_dir(cwd)


def _assert_png(path, min_bytes=20_000, min_width=1000):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > min_bytes
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # the IHDR chunk
    assert width >= min_width and height > 300


def test_plot_of_one_run_and_of_two_overlaid(cartpole_run, tmp_path):
    one = run_script(PLOT_RESULTS, cartpole_run, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert one.stdout == f"wrote {cartpole_run / 'plot.png'}\n"
    _assert_png(cartpole_run / "plot.png")
    # a second run still going: no eval.json, checks.csv a header alone, episodes.csv cut in the middle of a row
    going = tmp_path / "CartPole-v1__dqn_cartpole__2__1700000000"
    going.mkdir()
    args = json.loads((cartpole_run / "args.json").read_text())
    (going / "args.json").write_text(json.dumps({**args, "seed": 2}))
    text = (cartpole_run / "episodes.csv").read_text()
    (going / "episodes.csv").write_text(text[: len(text) // 2 + 3])
    (going / "checks.csv").write_text("global_step,score,kept,elapsed_s\n")
    (going / "train.csv").write_text((cartpole_run / "train.csv").read_text()[:200])
    two = run_script(PLOT_RESULTS, cartpole_run, going, "--png", tmp_path / "two.png", cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    assert two.stdout == f"wrote {tmp_path / 'two.png'}\n"
    _assert_png(tmp_path / "two.png")
    default = run_script(PLOT_RESULTS, cartpole_run, going, cwd=tmp_path)
    assert default.returncode == 0 and default.stdout == "wrote plot_runs.png\n"
    _assert_png(tmp_path / "plot_runs.png")


def test_plot_of_a_frozenlake_run_and_bad_folders(cartpole_run, tmp_path):
    assert run_script("q_learning_frozenlake.py", *["--episodes", "300", "--eval-episodes", "100"], cwd=tmp_path).returncode == 0
    run_dir = only_run_dir(tmp_path)
    plot = run_script(PLOT_RESULTS, run_dir, "--png", tmp_path / "fl.png")
    assert plot.returncode == 0, plot.stderr
    _assert_png(tmp_path / "fl.png", min_bytes=10_000, min_width=800)
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "args.json").write_text("{not json")
    (tmp_path / "broken" / "episodes.csv").write_text("global_step,episodic_return\n")
    (tmp_path / "args_only").mkdir()  # an args.json alone is not a run: what a script writes has episodes.csv too
    (tmp_path / "args_only" / "args.json").write_text((cartpole_run / "args.json").read_text())
    for bad in [[tmp_path / "empty"], [tmp_path / "nowhere"], [tmp_path / "broken"], [tmp_path / "args_only"], [cartpole_run, tmp_path / "empty"],
                [cartpole_run, run_dir], [cartpole_run, "--out", tmp_path], ["--png", tmp_path / "x.png"]]:
        result = run_script(PLOT_RESULTS, *bad)
        assert_one_line_error(result)
    assert not (tmp_path / "empty" / "plot.png").exists()


def test_measure_runs_a_command_where_it_is_and_records_its_time(tmp_path):
    (tmp_path / "runs" / "mine").mkdir(parents=True)  # --measure alone never removes anything
    result = run_script(RUN_SEEDS, "--measure", sys.executable, "-c", "print('hello'); raise SystemExit(3)", cwd=tmp_path)
    assert result.returncode == 3 and (tmp_path / "runs" / "mine").is_dir()
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["exit_code"] == 3 and info["cpu_s"] >= 0 and info["command"][0] == sys.executable
    assert (tmp_path / "stdout.txt").read_text() == "hello\n"


@pytest.mark.parametrize("flags", [["--episodes", "0"], ["--eval-episodes", "-1"], ["--seed", "x"], ["--bogus"],
                                   ["--fix", "bogus"], ["--fix", "truncation,nope"]])
def test_lecture_dqn_bad_input_is_one_error_line(tmp_path, flags):
    assert_one_line_error(run_script(ROOT / "benchmarks" / "lecture_dqn.py", *flags, cwd=tmp_path))
    assert not (tmp_path / "runs").exists()


def test_lecture_dqn_same_seed_same_returns_and_args_record_the_fixes(tmp_path):
    flags = {"again": [], "twice": [], "some": ["--fix", "epsilon,batch", "--fix", "truncation"], "all": ["--fix", "all"]}
    runs = {}
    for name, fix in flags.items():
        (tmp_path / name).mkdir()
        episodes = 15 if name in ("again", "twice", "some") else 2
        result = run_script(ROOT / "benchmarks" / "lecture_dqn.py", "--seed", 3, "--episodes", episodes, "--eval-episodes", 1,
                       *fix, cwd=tmp_path / name, timeout=300)
        assert result.returncode == 0, result.stderr
        runs[name] = only_run_dir(tmp_path / name)
    rows = {name: read_csv(run_dir / "episodes.csv") for name, run_dir in runs.items()}
    # the env's first reset is seeded: the same --seed, the same episodes, step for step
    assert [(r["global_step"], r["episodic_return"]) for r in rows["again"]] == [
        (r["global_step"], r["episodic_return"]) for r in rows["twice"]]
    fixes = {name: json.loads((run_dir / "args.json").read_text())["fix"] for name, run_dir in runs.items()}
    assert fixes == {"again": [], "twice": [], "some": ["truncation", "epsilon", "batch"],
                     "all": ["truncation", "target-period", "epsilon", "learning-starts", "batch", "width", "adam-eps"]}
    # --fix epsilon: the column is the linear schedule at each episode's last step
    assert [float(r["epsilon"]) for r in rows["some"]] == [
        round(max(0.01, 1.0 - 0.99 * (int(r["global_step"]) - 1) / 5000), 4) for r in rows["some"]]


@pytest.fixture(scope="module")
def lecture_dqn():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as its __main__ does: on a busy machine two threads make each small step many times slower
    yield load_script("benchmarks/lecture_dqn.py")
    torch.set_num_threads(threads)


def _lecture_train(module, fixes, episodes, env_name="CartPole-v1", seed=0):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return module.train_dqn(env_name=env_name, n_episodes=episodes, seed=seed, fixes=fixes)


def test_lecture_dqn_fix_truncation_stores_done_0_at_the_time_limit(lecture_dqn):
    gym.register("LectureFiveSteps-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
                 max_episode_steps=5)  # every episode ends at the time limit: the pole cannot fall in 5 steps
    for fixes, at_limit in [((), True), (("truncation",), False)]:
        agent, rewards = _lecture_train(lecture_dqn, fixes, 3, "LectureFiveSteps-v0")
        assert rewards == [5.0] * 3  # the loop still ends each episode at the limit
        assert [bool(e.done) for e in agent.replay_buffer.buffer] == [False] * 4 + [at_limit] + [False] * 4 + [
            at_limit] + [False] * 4 + [at_limit]


def test_lecture_dqn_fix_target_period_copies_every_100_gradient_steps(lecture_dqn, monkeypatch):
    copies, load = [], lecture_dqn.SimpleDQN.load_state_dict
    monkeypatch.setattr(lecture_dqn.SimpleDQN, "load_state_dict", lambda self, *a, **k: copies.append(1) or load(self, *a, **k))
    update = lecture_dqn.DQNAgent.update

    def spied(self):
        before = len(copies)
        loss = update(self)
        if len(copies) > before:
            copied_at.append(self.steps)
        return loss

    monkeypatch.setattr(lecture_dqn.DQNAgent, "update", spied)
    for fixes, period in [((), 1000), (("target-period",), 100)]:
        copied_at = []
        agent, _ = _lecture_train(lecture_dqn, fixes, 25)
        assert 250 < agent.steps < 1000 and copied_at == list(range(period, agent.steps + 1, period))


def test_lecture_dqn_fix_epsilon_is_linear_over_env_steps(lecture_dqn, monkeypatch):
    select = lecture_dqn.DQNAgent.select_action

    def spied(self, state, training=True):
        if training:
            seen.append(self.epsilon)
        return select(self, state, training)

    monkeypatch.setattr(lecture_dqn.DQNAgent, "select_action", spied)
    seen = []
    _, rewards = _lecture_train(lecture_dqn, (), 5)  # the lecture's: x0.995 after each episode
    assert seen == pytest.approx([0.995 ** k for k, r in enumerate(rewards) for _ in range(int(r))])
    seen = []
    _, rewards = _lecture_train(lecture_dqn, ("epsilon",), 5)  # one value per env step, whatever the episodes
    assert len(seen) == sum(rewards) and seen == pytest.approx([1.0 - 0.99 * t / 5000 for t in range(len(seen))])
    assert lecture_dqn.linear_epsilon(2500) == pytest.approx(0.505) and lecture_dqn.linear_epsilon(5000) == pytest.approx(0.01)
    assert lecture_dqn.linear_epsilon(10**6) == 0.01


def test_lecture_dqn_fix_learning_starts_and_batch(lecture_dqn, monkeypatch):
    update, sample = lecture_dqn.DQNAgent.update, lecture_dqn.ReplayBuffer.sample
    monkeypatch.setattr(lecture_dqn.DQNAgent, "update", lambda self: trained.append(len(self.replay_buffer)) if update(
        self) is not None else None)
    monkeypatch.setattr(lecture_dqn.ReplayBuffer, "sample", lambda self, n: sizes.add(n) or sample(self, n))
    for fixes, episodes, first, batch in [((), 6, 64, 64), (("learning-starts",), 30, 501, 64), (("batch",), 9, 128, 128)]:
        trained, sizes = [], set()
        _lecture_train(lecture_dqn, fixes, episodes)
        assert trained[0] == first and sizes == {batch}


def test_lecture_dqn_fix_width_and_adam_eps(lecture_dqn):
    for fixes, width, eps in [((), 128, 1e-8), (("width",), 64, 1e-8), (("adam-eps",), 128, 1e-4)]:
        agent = lecture_dqn.DQNAgent(4, 2, fixes=fixes)
        assert agent.q_network.net[0].out_features == agent.target_network.net[2].in_features == width
        assert agent.optimizer.param_groups[0]["eps"] == eps


def test_reinforce_writes_a_run_folder_that_run_seeds_summarises(tmp_path):
    flags = ["--baseline", "none", "--episodes", 12, "--eval-episodes", 2]
    result = run_script(RUN_SEEDS, "benchmarks/reinforce_cartpole.py", "--seeds", 1, "--jobs", 1, "--root", tmp_path, "--",
                   *flags, timeout=120)
    assert result.returncode == 0, result.stderr
    (summary,) = json.loads((tmp_path / "summary.json").read_text())
    assert summary["script"] == "benchmarks/reinforce_cartpole.py" and summary["budget"] == {"episodes": 12}
    (run_dir,) = tmp_path.glob("runs/reinforce_cartpole/CartPole-v1/*/seed-1/runs/CartPole-v1__reinforce__1__*")
    rows = read_csv(run_dir / "episodes.csv")
    assert list(rows[0]) == ["global_step", "episodic_return", "episodic_length", "epsilon", "elapsed_s"]
    assert len(rows) == 12 and all(float(row["episodic_return"]) == int(row["episodic_length"]) for row in rows)
    assert [int(row["global_step"]) for row in rows] == list(np.cumsum([int(row["episodic_length"]) for row in rows]))
    assert all(row["epsilon"] == "0" for row in rows)  # no epsilon; not empty: run_seeds drops rows with a blank
    assert json.loads((run_dir / "args.json").read_text())["baseline"] == "none"
    saved = json.loads((run_dir / "eval.json").read_text())
    assert summary["kept"]["scores"] == summary["final"]["scores"] == [saved["mean"]] and len(saved["returns"]) == 2
    assert len(saved["sampled_returns"]) == 2
    seed = summary["per_seed"][0]
    assert seed["episodes"] == 12 and seed["episodes_to_195"] is None and seed["within_200"] is False
    assert summary["cpu_s_median"] > 0
    (tmp_path / "again").mkdir()
    again = run_script("benchmarks/reinforce_cartpole.py", "--seed", 1, *flags, cwd=tmp_path / "again")  # same returns
    assert again.returncode == 0 and again.stdout.startswith("RESULT seed=1 episodes=12 "), again.stderr
    columns = lambda path: [(r["global_step"], r["episodic_return"]) for r in read_csv(path)]  # noqa: E731
    assert columns(only_run_dir(tmp_path / "again") / "episodes.csv") == columns(run_dir / "episodes.csv")


@pytest.mark.parametrize("baseline", [False, True])
def test_reinforce_loss_gradient_is_the_textbook_one(baseline):
    """On a 3-step episode with a linear softmax policy of fixed weights (and a linear V), the loss's gradient is
    -sum_t A_t grad log pi(a_t|s_t), A_t = G_t or G_t - V(s_t), with grad log pi worked out by hand:
    d log softmax(W s + b)[a] / dW = (onehot(a) - pi) s^T, / db = onehot(a) - pi."""
    rf = load_script("benchmarks/reinforce_cartpole.py")
    W, b = np.array([[0.5, -1.0, 0.3, 2.0], [-0.2, 0.4, 1.5, -0.7]]), np.array([0.1, -0.3])
    w_v, b_v = np.array([1.0, 2.0, -0.5, 0.25]), 0.7
    states = np.array([[0.1, -0.2, 0.03, 0.4], [0.0, 0.5, -0.1, -0.3], [-0.4, 0.2, 0.2, 0.1]])
    actions, rewards, gamma = [1, 0, 1], [1.0, 1.0, 1.0], 0.9
    G = np.array([1 + 0.9 + 0.81, 1 + 0.9, 1.0])
    assert np.allclose(rf.returns_to_go(rewards, gamma).numpy(), G)
    A = G - (states @ w_v + b_v) if baseline else G
    expected_W, expected_b = np.zeros_like(W), np.zeros_like(b)
    for s, a, adv in zip(states, actions, A):
        pi = np.exp(W @ s + b) / np.exp(W @ s + b).sum()
        expected_W -= adv * np.outer(np.eye(2)[a] - pi, s)
        expected_b -= adv * (np.eye(2)[a] - pi)

    policy, value = torch.nn.Linear(4, 2).double(), torch.nn.Linear(4, 1).double()
    with torch.no_grad():
        policy.weight.copy_(torch.from_numpy(W)), policy.bias.copy_(torch.from_numpy(b))
        value.weight.copy_(torch.from_numpy(w_v[None])), value.bias.fill_(b_v)
    loss, value_loss = rf.reinforce_loss(policy, torch.from_numpy(states), torch.tensor(actions),
                                         torch.from_numpy(G), value if baseline else None)
    loss.backward()
    assert np.allclose(policy.weight.grad.numpy(), expected_W) and np.allclose(policy.bias.grad.numpy(), expected_b)
    if baseline:  # the baseline weighs the steps and moves no weight of V; V learns by MSE towards G_t alone
        assert value.weight.grad is None
        value_loss.backward()
        residual = states @ w_v + b_v - G
        assert np.allclose(value.weight.grad.numpy(), [2 * residual @ states / 3])
        assert np.isclose(value.bias.grad.item(), 2 * residual.mean())
    else:
        assert value_loss is None



# ---- Sutton & Barto's Example 6.7: Q-learning's and Double Q-learning's updates, and a tiny run of the script ----

@pytest.fixture(scope="module")
def maxbias():
    return load_script("benchmarks/maximization_bias.py")


def test_q_learning_update_on_the_maximization_bias_mdp_against_hand_values(maxbias):
    qa = np.array([[0.5, 0.0]])  # one run: Q(A, left) = 0.5, Q(A, right) = 0
    qb = np.array([[1.0, 3.0, 2.0]])  # Q(B, .)
    maxbias.q_learning_update(qa, np.array([0]), maxbias.LEFT, 0.0, next_q=qb, alpha=0.1, gamma=1.0)
    assert qa[0] == pytest.approx([0.5 + 0.1 * (0.0 + 3.0 - 0.5), 0.0])  # target r + max_b Q(B, b) = 3
    maxbias.q_learning_update(qb, np.array([0]), 1, -1.0, alpha=0.1)  # from B: terminal, the target is r alone
    assert qb[0] == pytest.approx([1.0, 3.0 + 0.1 * (-1.0 - 3.0), 2.0])


def test_double_q_update_changes_one_table_and_values_its_argmax_with_the_other(maxbias):
    rng = np.random.default_rng(0)
    qb = np.array([[[1.0, 3.0, 2.0]],    # table 0's Q(B, .): argmax 1
                   [[5.0, -1.0, 0.0]]])  # table 1's Q(B, .): argmax 0
    for first, changed, expected in [(True, 0, 0.5 + 0.1 * (-1.0 - 0.5)),   # table 0 picks b = 1, table 1 says -1
                                     (False, 1, 0.2 + 0.1 * (1.0 - 0.2))]:   # table 1 picks b = 0, table 0 says 1
        qa = np.array([[[0.5, 0.0]], [[0.2, 0.0]]])  # [table, run, action]
        before = qa.copy()
        maxbias.double_q_update(qa, np.array([0]), maxbias.LEFT, 0.0, np.array([first]), next_q=qb, rng=rng,
                                alpha=0.1, gamma=1.0)
        assert qa[changed, 0, maxbias.LEFT] == pytest.approx(expected)
        assert np.array_equal(qa[1 - changed], before[1 - changed]) and qa[changed, 0, maxbias.RIGHT] == 0.0
    # a terminal step (from B): the target is the reward; only the coin's table moves
    qb2 = qb.copy()
    maxbias.double_q_update(qb2, np.array([0]), 2, 1.0, np.array([False]), alpha=0.1)
    assert qb2[1, 0] == pytest.approx([5.0, -1.0, 0.1]) and np.array_equal(qb2[0], qb[0])
    # several runs at once, each with its own coin
    qa = np.zeros((2, 2, 2))
    two = np.array([[[1.0, 3.0, 2.0], [0.0, 0.0, 4.0]], [[5.0, -1.0, 0.0], [7.0, 8.0, 9.0]]])
    maxbias.double_q_update(qa, np.array([0, 1]), maxbias.LEFT, 0.0, np.array([True, False]), next_q=two, rng=rng,
                            alpha=0.1, gamma=1.0)
    assert qa[0, 0, 0] == pytest.approx(-0.1) and qa[1, 1, 0] == pytest.approx(0.1 * 4.0)  # run 1: table 1 picks 2, table 0 says 4
    assert qa[1, 0, 0] == 0.0 and qa[0, 1, 0] == 0.0


def test_greedy_breaks_ties_at_random_among_the_best_only(maxbias):
    rng = np.random.default_rng(0)
    picks = maxbias.greedy(np.tile([0.0, 1.0, 1.0, -1.0], (4000, 1)), rng)
    assert set(picks.tolist()) == {1, 2} and abs((picks == 1).mean() - 0.5) < 0.05


def test_maximization_bias_tiny_run_writes_its_json_and_figure_into_a_folder(tmp_path):
    sources = (ROOT / "benchmarks" / "results" / "sources.json").read_bytes()
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "maximization_bias.py"), "--runs", "50",
                             "--episodes", "20", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "maximization_bias.json").read_text())
    assert (data["runs"], data["episodes"]) == (50, 20)
    for method in ("q", "double"):
        assert len(data["percent_left"][method]) == 20 and all(0 <= x <= 100 for x in data["percent_left"][method])
    v = data["verdict"]
    assert v["n"] == 50 and v["double_fewer"] + v["ties"] + v["double_more"] == 50
    assert v["win_rate"] == pytest.approx((v["double_fewer"] + v["ties"] / 2) / 50) and v["wilson"][0] < v["wilson"][1]
    assert (tmp_path / "maximization_bias.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "P(Double Q-learning goes left fewer times" in result.stdout
    assert (ROOT / "benchmarks" / "results" / "sources.json").read_bytes() == sources  # --out records nothing


# ---- Lecture 03's tabular code: the exact evaluator and each --fix arm on a tiny budget ----

@pytest.fixture(scope="module")
def lecture_q():
    return load_script("benchmarks/lecture_q_learning.py")


def test_exact_success_on_a_map_without_slipping_is_one_or_zero(lecture_q):
    env = gym.make("FrozenLake-v1", desc=["SF", "HG"], is_slippery=False)  # S at 0, goal at 3, hole at 2
    LEFT, DOWN, RIGHT, UP = 0, 1, 2, 3
    one_hot = lambda actions: np.eye(4)[actions]  # noqa: E731
    assert lecture_q.exact_success(env, one_hot([RIGHT, DOWN, 0, 0])) == 1.0   # right, then down: the goal
    assert lecture_q.exact_success(env, one_hot([DOWN, DOWN, 0, 0])) == 0.0    # down: the hole
    assert lecture_q.exact_success(env, one_hot([LEFT, DOWN, 0, 0])) == 0.0    # into the wall until the time limit
    assert lecture_q.exact_success(env, np.array([[0, 0.5, 0.5, 0]] + [[0, 1, 0, 0]] * 3)) == 0.5  # a coin at S
    short = gym.make("FrozenLake-v1", desc=["SF", "HG"], is_slippery=False, max_episode_steps=1)
    assert lecture_q.exact_success(short, one_hot([RIGHT, DOWN, 0, 0])) == 0.0  # the goal is 2 steps away


def test_exact_success_of_the_gamma_optimal_policy_on_4x4_slippery(lecture_q):
    policy = np.array([0, 3, 3, 3, 0, 0, 0, 0, 3, 1, 0, 0, 0, 2, 1, 0])  # the gamma = 0.99 optimal policy
    assert lecture_q.exact_success(gym.make("FrozenLake-v1"), np.eye(4)[policy]) == pytest.approx(0.7402, abs=5e-5)
    ties = lecture_q.greedy_policy(np.array([[0.0, 1.0, 1.0, 0.5]]), ties_at_random=True)
    assert np.array_equal(ties, [[0.0, 0.5, 0.5, 0.0]])
    assert np.array_equal(lecture_q.greedy_policy(np.array([[0.0, 1.0, 1.0, 0.5]])), [[0.0, 1.0, 0.0, 0.0]])


@pytest.mark.parametrize("fix", ["none", "ties", "truncation", "schedules", "all"])
def test_lecture_q_learning_each_fix_on_a_tiny_budget(fix):
    command = [sys.executable, str(ROOT / "benchmarks" / "lecture_q_learning.py"), "--seed", "3", "--episodes", "30",
               "--eval-episodes", "20"]
    result = subprocess.run(command + ([] if fix == "none" else ["--fix", fix]), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    expected = "ties,truncation,schedules" if fix == "all" else fix
    assert line.startswith("RESULT seed=3 ") and f"fixes={expected} " in line
    assert 0.0 <= float(re.search(r"exact_success=([0-9.]+)", line).group(1)) <= 1.0
    again = subprocess.run(command + ([] if fix == "none" else ["--fix", fix]), capture_output=True, text=True, timeout=120)
    assert re.sub(r"train_time=\S+", "", again.stdout) == re.sub(r"train_time=\S+", "", result.stdout)  # seeded


def test_lecture_q_learning_schedules_follow_q_learning_frozenlakes_defaults(lecture_q, monkeypatch):
    seen = []
    update = lecture_q.QLearningAgent.update
    def spy(self, *args):
        seen.append((self.epsilon, self.lr))
        return update(self, *args)
    monkeypatch.setattr(lecture_q.QLearningAgent, "update", spy)
    np.random.seed(0)
    lecture_q.train_q_learning(n_episodes=10, seed=0, fixes=("schedules",))
    ours = load_script("q_learning_frozenlake.py")
    expected = {(ours.linear_schedule(1.0, 0.1, 0.5 * 10, e), ours.annealed_learning_rate(0.1, e, 10, True)) for e in range(10)}
    assert {(round(e, 12), round(a, 12)) for e, a in seen} == {(round(e, 12), round(a, 12)) for e, a in expected}


def test_lecture_q_fixes_tiny_sweep_writes_every_arm_and_its_verdict(tmp_path):
    out = tmp_path / "lecture_q.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "lecture_q_fixes.py"), "--seeds", "1-2",
                             "--episodes", "20", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert list(data["per_seed"]) == ["lecture", "ties", "truncation", "schedules", "all"]
    assert all(len(values) == 2 for values in data["per_seed"].values()) and data["seeds"] == [1, 2]
    rows = {row["arm"]: row for row in data["table"]}
    assert "verdict" not in rows["lecture"]
    for arm in ("ties", "truncation", "schedules", "all"):
        assert rows[arm]["win_rate_wilson"][0] < rows[arm]["win_rate_wilson"][1]
        assert rows[arm]["verdict"] in (f"{arm} better", f"{arm} worse", "undecided with 2 seeds")
    assert "| lecture | " in result.stdout
