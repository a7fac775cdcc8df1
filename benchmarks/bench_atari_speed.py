"""Training speed of dqn_atari.py, split into acting, sampling and the gradient step.

    python benchmarks/bench_atari_speed.py            # CPU, the torch threads dqn_atari.py picks (--threads)
    python benchmarks/bench_atari_speed.py --bf16     # the gradient step as dqn_atari.py --bf16 runs it
    python benchmarks/bench_atari_speed.py --cuda     # a GPU, when there is one

Fills a 20,000-transition buffer by random Breakout play, then times each part of a training iteration
alone, many times: the env step (AtariVectorEnv, C++ preprocessing), the greedy forward pass on the
current stack, storing the transition, sampling a batch of 32 (rebuilding the 4-frame stacks of s and s')
and one gradient step (target forward, online forward and backward, Adam). With one gradient step every
--train-frequency env steps, it prints the resulting steps per second (SPS) and each part's share; then
it runs the script itself for a few thousand steps and prints the SPS its progress line reports.

Achieved FLOP/s. The gradient step's floating-point work is counted analytically from the layer shapes
(network_flops): a conv or linear layer's forward pass is 2 FLOPs per multiply-accumulate, MACs =
output elements x (input channels x kernel height x kernel width) for a conv, inputs x outputs for a linear
layer (ReLU, bias, Adam and the loss are left out: under 1%). A gradient step is the target network's
forward (1x) plus the online network's forward (1x) and backward (about 2x: the gradients of the inputs and of
the weights, one product each), except that the first layer's input is the observation, whose gradient
is never computed: 4 forwards less the first conv's 3.28M MACs, 2 x (4 x 9.35M - 3.28M) MACs = 68.2 MFLOP a
transition, 2.18 GFLOP at batch 32 (Breakout's 4 actions). Divided by the step's measured time that is its achieved GFLOP/s, printed
beside the machine's own peak measured in the same command: a 2048 x 2048 matrix product in float32 (and in
bfloat16 where the CPU has it) on the same thread count, so the fraction of peak is a ratio of two numbers
measured side by side.

    python benchmarks/bench_atari_speed.py --compare --compare-threads 1 2 --end-to-end-steps 0

    python benchmarks/bench_atari_speed.py --against 964976d^      # end to end, beside the script at a git revision

--against trains dqn_atari.py as it is and as it was at a git revision (taken with `git show` into a temporary
folder, so a clone reproduces it) in turns at their defaults, and prints each one's SPS over the training steps
it times (see against()).

--compare times the gradient step (and acting on one stack) in each variant, float32 or --bf16, NCHW or
channels_last weights, at each thread count, in alternating rounds in one process, and prints each variant's
median time and its ratio to the first (the script as it was: float32, NCHW, 1 thread): other jobs on the
machine slow every variant alike, not one of them.
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


def layer_flops(network, input_shape):
    """Forward FLOPs of one transition through each conv and linear layer of `network`, in order: 2 x MACs
    (shapes from a forward pass on a zero stack, counted with hooks)."""
    macs = []

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            macs.append(output[0].numel() * module.in_channels // module.groups * kh * kw)
        elif isinstance(module, torch.nn.Linear):
            macs.append(module.in_features * module.out_features)
    hooks = [m.register_forward_hook(count) for m in network.modules()]
    with torch.no_grad():
        network(torch.zeros(input_shape, dtype=torch.uint8))
    for hook in hooks:
        hook.remove()
    return [2 * m for m in macs]


def network_flops(network, input_shape):
    """Forward FLOPs of one transition through `network`."""
    return sum(layer_flops(network, input_shape))


def gradient_step_flops(network, batch_size):
    """Per transition: the target forward (1x), the online forward (1x) and its backward: the weights' gradients
    (1x) and the inputs' gradients of every layer but the first, whose input is the observation (no gradient)."""
    layers = layer_flops(network, (1, 4, 84, 84))
    return (4 * sum(layers) - layers[0]) * batch_size


def matmul_peak(dtype, device, sync, n=2048, seconds=1.0):
    """GFLOP/s of an n x n matrix product (2 n^3 FLOPs) in `dtype`, best of a few timed runs."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        sync()
        start = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cuda", action="store_true", help="time on a GPU (falls back to the CPU with a note)")
    p.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--train-frequency", type=int, default=4)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--end-to-end-steps", type=int, default=6_000, help="0 to skip running the script")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: as dqn_atari.py picks them)")
    p.add_argument("--bf16", action="store_true", help="the gradient step as dqn_atari.py --bf16 runs it")
    p.add_argument("--compare", action="store_true", help="time the variants side by side (see the docstring)")
    p.add_argument("--compare-threads", type=int, nargs="+", default=None, help="thread counts for --compare")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds of --compare")
    p.add_argument("--against", metavar="REV", default=None,
                   help="train dqn_atari.py as it is and as it was at git revision REV in turns, at their defaults "
                        "(see the docstring), and print each one's training SPS and the ratio")
    p.add_argument("--against-steps", type=int, default=9_000, help="training steps timed in each --against run")
    p.add_argument("--against-rounds", type=int, default=2, help="runs of each script in --against, in turns")
    a = p.parse_args()
    if a.against:
        return against(a)
    spec = importlib.util.spec_from_file_location("dqn_atari", os.path.join(ROOT, "dqn_atari.py"))
    dqn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dqn)
    args = dqn.parse_args(["--env-id", a.env_id, "--batch-size", str(a.batch_size)] + (["--bf16"] if a.bf16 else []))
    if a.cuda and not torch.cuda.is_available():
        print("note: --cuda given but no GPU is available; timing the CPU", file=sys.stderr)
    device = torch.device("cuda" if a.cuda and torch.cuda.is_available() else "cpu")
    threads = a.threads or dqn.default_threads()
    torch.set_num_threads(threads)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    bf16_here = dqn.bf16_supported(device.type == "cuda")

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

    batch = rb.sample(a.batch_size, device)

    def learner(channels_last=True, bf16=False, fused=True):
        """The script's acting and gradient step (dqn.td_loss, Adam) on fresh networks of one variant."""
        q_network = dqn.QNetwork(n_actions, channels_last=channels_last).to(device)
        target_network = dqn.QNetwork(n_actions, channels_last=channels_last).to(device)
        optimizer = torch.optim.Adam(q_network.parameters(), lr=1e-4, fused=fused)  # fused: as dqn_atari.py

        def act():
            with torch.inference_mode():
                return q_network(torch.from_numpy(state["obs"]).to(device)).argmax(dim=1).cpu().numpy()

        def gradient_step():
            loss, _ = dqn.td_loss(q_network, target_network, batch, 0.99, torch.nn.functional.mse_loss, bf16)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return act, gradient_step, q_network

    flops = gradient_step_flops(dqn.QNetwork(n_actions).to(device), a.batch_size)

    def peaks():
        """float32 and (where fast) bfloat16 matrix-product GFLOP/s at the current thread count."""
        return {"float32": matmul_peak(torch.float32, device, sync),
                "bfloat16": matmul_peak(torch.bfloat16, device, sync) if bf16_here else None}

    if a.compare:
        compare(a, learner, peaks, flops, sync, bf16_here, threads)
        envs.close()
        return
    act, gradient_step, _ = learner(bf16=a.bf16)

    total_step = timed(env_step_and_store, a.repeats * 4, sync)
    env_only = timed(lambda: env_step_and_store(store=False), a.repeats * 4, sync)
    parts = {
        "env step (C++ preprocessing)": env_only,
        "store the transition": max(total_step - env_only, 0.0),
        "acting: forward pass": timed(act, a.repeats, sync),
        f"sampling a batch of {a.batch_size}": timed(lambda: rb.sample(a.batch_size, device), a.repeats, sync) / a.train_frequency,
        "gradient step": timed(gradient_step, a.repeats // 2, sync) / a.train_frequency,
    }
    peak = peaks()
    per_step = sum(parts.values())
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} torch thread(s)"
    precision = "bfloat16 autocast" if a.bf16 else "float32"
    print(f"{a.env_id}, {name}, batch {a.batch_size}, {precision}, one gradient step every {a.train_frequency} env steps:")
    for part, seconds in parts.items():
        raw = seconds * (a.train_frequency if part.startswith(("sampling", "gradient")) else 1)
        print(f"  {part:30s} {raw * 1e3:7.2f} ms per call | {seconds * 1e3:6.2f} ms per env step | {seconds / per_step:5.1%}")
    step_gflops = flops / (parts["gradient step"] * a.train_frequency) / 1e9
    print(f"  gradient step: {flops / 1e9:.2f} GFLOP (counted) -> {step_gflops:.1f} GFLOP/s = "
          + peak_fractions(step_gflops, peak))
    print(f"  composed: {per_step * 1e3:.2f} ms per env step = {1 / per_step:.0f} SPS while training")
    envs.close()

    if a.end_to_end_steps:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, os.path.join(ROOT, "dqn_atari.py"), "--env-id", a.env_id, "--total-timesteps",
                   str(a.end_to_end_steps), "--learning-starts", "0", "--buffer-size", "10000", "--eval-episodes", "1",
                   "--batch-size", str(a.batch_size), "--train-frequency", str(a.train_frequency), "--no-save-model",
                   "--eval-max-frames", "400", "--threads", str(threads)] + (["--cuda"] if a.cuda else []) \
                + (["--bf16"] if a.bf16 else [])
            out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
            lines = [line for line in out.stdout.splitlines() if "SPS" in line]
            sps = re.search(r"\|\s+(\d+) SPS", lines[-1]).group(1) if lines else "?"
            print(f"  end to end, dqn_atari.py --learning-starts 0 for {a.end_to_end_steps} steps: {sps} SPS")


def training_sps(script, flags, learning_starts, cwd):
    """Env steps per second between the first progress line at or after learning starts and the last one, timed
    here as the lines arrive (the same for any version of the script: it needs only the `step N/` lines)."""
    proc = subprocess.Popen([sys.executable, script, *flags], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    marks = []
    for line in proc.stdout:
        found = re.match(r"step\s+(\d+)/", line)
        if found and int(found.group(1)) >= learning_starts:
            marks.append((int(found.group(1)), time.perf_counter()))
    if proc.wait() != 0 or len(marks) < 2:
        sys.exit(f"error: {script} {' '.join(flags)} failed or printed too few progress lines")
    (first_step, first_time), (last_step, last_time) = marks[0], marks[-1]
    return (last_step - first_step) / (last_time - first_time)


def against(a):
    """dqn_atari.py now and at git revision a.against, trained in turns at their defaults but for the budget:
    --total-timesteps = the default --learning-starts (80,000 env steps of random play) + a.against_steps, so the
    timed steps are training steps at the end of the exploration schedule (epsilon 0.01: a forward pass on every
    step, as in 95% of a default run), with the default 1M buffer (holding the 80,000 transitions played) and
    the default threads of each version. Only the evaluation is cut (1 game of at most 400 frames), after the
    timing."""
    with tempfile.TemporaryDirectory() as tmp:
        old = os.path.join(tmp, "dqn_atari_at_rev.py")
        with open(old, "w") as f:
            f.write(subprocess.run(["git", "show", f"{a.against}:dqn_atari.py"], cwd=ROOT, check=True,
                                   capture_output=True, text=True).stdout)
        learning_starts = 80_000
        flags = ["--env-id", a.env_id, "--total-timesteps", str(learning_starts + a.against_steps), "--eval-episodes",
                 "1", "--eval-max-frames", "400", "--no-save-model"] + (["--cuda"] if a.cuda else [])
        scripts = {f"dqn_atari.py at {a.against}": old, "dqn_atari.py now": os.path.join(ROOT, "dqn_atari.py")}
        sps = {name: [] for name in scripts}
        for r in range(a.against_rounds):
            for name, script in (scripts.items() if r % 2 == 0 else list(scripts.items())[::-1]):
                sps[name].append(training_sps(script, flags, learning_starts, tmp))
                print(f"  round {r + 1}: {name}: {sps[name][-1]:.1f} SPS while training", flush=True)
    (old_name, old_sps), (new_name, new_sps) = [(k, float(np.median(v))) for k, v in sps.items()]
    print(f"end to end, defaults but --total-timesteps {learning_starts + a.against_steps} (SPS over the last "
          f"{a.against_steps:,} steps, training), {a.against_rounds} runs each in turns, medians: {old_name} "
          f"{old_sps:.1f} SPS, {new_name} {new_sps:.1f} SPS: x{new_sps / old_sps:.2f}")


def peak_fractions(gflops, peak):
    text = f"{gflops / peak['float32']:.1%} of the float32 matmul peak ({peak['float32']:.0f} GFLOP/s)"
    if peak["bfloat16"]:
        text += f", {gflops / peak['bfloat16']:.1%} of the bfloat16 one ({peak['bfloat16']:.0f})"
    return text


def compare(a, learner, peaks, flops, sync, bf16_here, threads):
    """Each variant's gradient step and acting, timed in alternating rounds; medians and ratios to the first.

    The variants, (threads, channels_last, bf16, fused Adam): the script before (1 thread, NCHW, float32, Adam's
    per-parameter loop), then each change added to the one before: channels_last, fused Adam, every thread count
    of --compare-threads (default: 1 and dqn_atari.py's default), and --bf16 last."""
    counts = sorted(set(a.compare_threads or [1, threads]))
    variants = [(1, False, False, False), (1, True, False, False), (1, True, False, True)]
    variants += [(t, True, False, True) for t in counts if t != 1]
    variants += [(t, True, True, True) for t in counts] if bf16_here else []
    learners = {v: learner(channels_last=v[1], bf16=v[2], fused=v[3]) for v in variants}
    steps, acts, peak = {v: [] for v in variants}, {v: [] for v in variants}, {}
    for r in range(a.rounds):
        for v in variants if r % 2 == 0 else variants[::-1]:  # alternate the order too
            torch.set_num_threads(v[0])
            act, gradient_step, _ = learners[v]
            steps[v].append(timed(gradient_step, max(a.repeats // 20, 2), sync))
            acts[v].append(timed(act, max(a.repeats // 4, 2), sync))
        for t in counts:
            torch.set_num_threads(t)
            peak.setdefault(t, []).append(peaks())
    base = variants[0]
    median = lambda xs: float(np.median(xs))  # noqa: E731
    print(f"side by side, {a.rounds} alternating rounds, batch {a.batch_size}, {flops / 1e9:.2f} GFLOP a gradient step; "
          f"ratio = the baseline's median time / this variant's (above 1: faster)")
    for v in variants:
        t, cl, bf, fused = v
        best = {k: max(p[k] or 0 for p in peak[t]) or None for k in ("float32", "bfloat16")}
        step = median(steps[v])
        print(f"  {t} thread(s), {'bfloat16' if bf else 'float32 '}, {'channels_last' if cl else 'NCHW         '}, "
              f"Adam {'fused' if fused else 'loop '}: "
              f"gradient step {step * 1e3:6.1f} ms (x{median(steps[base]) / step:.2f}; "
              f"x{median(steps[variants[max(variants.index(v) - 1, 0)]]) / step:.2f} on the line above), "
              f"{flops / step / 1e9:5.1f} GFLOP/s = {peak_fractions(flops / step / 1e9, best)}; "
              f"acting {median(acts[v]) * 1e3:.2f} ms (x{median(acts[base]) / median(acts[v]):.2f})")


if __name__ == "__main__":
    main()
