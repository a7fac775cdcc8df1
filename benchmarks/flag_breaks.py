"""Break each algorithm flag on purpose and check that a test notices: the suite's own test of its tests.

    python benchmarks/flag_breaks.py              # every break, one after the other (about 3 minutes)
    python benchmarks/flag_breaks.py --list       # what each break changes, and the tests expected to fail
    python benchmarks/flag_breaks.py tau gamma    # only these

Each break is one textual change to a copy of the repository (the flag's value replaced by its default, a line
that uses it made a no-op): the copy is made in a temporary folder from `git ls-files`, the change applied to
the named script, and the named tests run there with pytest. A break passes when those tests FAIL on the broken
copy (and the change was found in the script, so a rewrite of the line does not silently skip it). The exit
code is 1 if any break went unnoticed.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS_TEST = "every_algorithm_flag and dqn_cartpole"
FL_FLAGS_TEST = "fl_every_algorithm_flag"
ATARI_FLAGS_TEST = "atari_every_algorithm_flag_reaches"
# name: (script, the text as it is, the text broken, the pytest -k expression of the tests that must fail)
BREAKS = {
    "env-id": ("dqn_cartpole.py", "env = gym.make(env_id)", 'env = gym.make("CartPole-v1")',
               "loop_stores_terminated"),
    "total-timesteps": ("dqn_cartpole.py", "for global_step in range(args.total_timesteps):",
                        "for global_step in range(1000):", FLAGS_TEST),
    "learning-rate": ("dqn_cartpole.py", "lr=args.learning_rate,", "lr=1e-3,", FLAGS_TEST),
    "anneal-lr": ("dqn_cartpole.py", "            if args.anneal_lr:\n", "            if False:\n",
                  "learning_rate_in_the_loop"),
    "anneal-lr-start": ("dqn_cartpole.py", "decay_start = args.anneal_lr_start * args.total_timesteps",
                        "decay_start = 0", "learning_rate_in_the_loop"),
    "adam-eps": ("dqn_cartpole.py", "eps=args.adam_eps", "eps=1e-4", FLAGS_TEST),
    "buffer-size": ("dqn_cartpole.py", "rb = ReplayBuffer(args.buffer_size,", "rb = ReplayBuffer(100_000,", FLAGS_TEST),
    "batch-size": ("dqn_cartpole.py", "rb.sample(args.batch_size, device)", "rb.sample(128, device)", FLAGS_TEST),
    "gamma": ("dqn_cartpole.py", "terminated_b, args.gamma)", "terminated_b, 0.99)", FLAGS_TEST),
    "tau": ("dqn_cartpole.py", "update_target_network(target_network, q_network, args.tau)",
            "update_target_network(target_network, q_network, 1.0)", FLAGS_TEST),
    "target-network-frequency": ("dqn_cartpole.py", "global_step % args.target_network_frequency == 0",
                                 "global_step % 50 == 0", "gradient_steps_and_target_updates"),
    "train-frequency": ("dqn_cartpole.py", "global_step % args.train_frequency == 0", "global_step % 2 == 0",
                        "gradient_steps_and_target_updates"),
    "learning-starts": ("dqn_cartpole.py", "learning = global_step >= args.learning_starts",
                        "learning = global_step >= 500", "gradient_steps_and_target_updates"),
    "start-e": ("dqn_cartpole.py", "linear_schedule(args.start_e, args.end_e", "linear_schedule(1.0, args.end_e",
                "epsilon_and_learning_rate_in_the_loop"),
    "end-e": ("dqn_cartpole.py", "linear_schedule(args.start_e, args.end_e", "linear_schedule(args.start_e, 0.01",
              "epsilon_and_learning_rate_in_the_loop"),
    "exploration-fraction": ("dqn_cartpole.py", "exploration_steps = args.exploration_fraction * args.total_timesteps",
                             "exploration_steps = 0.1 * args.total_timesteps", "epsilon_and_learning_rate_in_the_loop"),
    "hidden-dim": ("dqn_cartpole.py", "args.hidden_dim).to(device)", "64).to(device)", FLAGS_TEST),
    "loss": ("dqn_cartpole.py", 'loss_fn = F.mse_loss if args.loss == "mse" else F.smooth_l1_loss',
             "loss_fn = F.mse_loss", FLAGS_TEST),
    "max-grad-norm": ("dqn_cartpole.py", "q_network.parameters(), args.max_grad_norm)",
                      "q_network.parameters(), 10.0)", FLAGS_TEST),
    # ... and inside the functions they reach (values away from the defaults in the unit tests)
    "gamma in compute_td_target": ("dqn_cartpole.py", "return rewards + gamma * (1 - terminated) * next_q_max",
                                   "return rewards + 0.99 * (1 - terminated) * next_q_max", "td_target_bootstraps"),
    "tau in update_target_network": ("dqn_cartpole.py", "copy_(tau * param.data + (1 - tau) * target_param.data)",
                                     "copy_(param.data + 0 * target_param.data)", "tau_of_the_way"),
    "hidden-dim in QNetwork": ("dqn_cartpole.py", "nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),",
                               "nn.Linear(hidden_dim, 64), nn.ReLU(), nn.Linear(64, hidden_dim), nn.ReLU(),",
                               "width_and_outputs"),
    "batch-size in ReplayBuffer.sample": ("dqn_cartpole.py", "self.rng.integers(0, self.size, size=batch_size)",
                                          "self.rng.integers(0, self.size, size=128)", "batch_of_the_size"),
    "buffer-size in ReplayBuffer.add": ("dqn_cartpole.py", "self.pos = (self.pos + 1) % self.capacity",
                                        "self.pos = (self.pos + 1) % 100_000", "replay_buffer_wraps"),
    "start-e in linear_schedule": ("dqn_cartpole.py", "return max(end_e, start_e + (end_e - start_e) * t / duration)",
                                   "return max(end_e, 1.0 + (end_e - 1.0) * t / duration)", "schedules_against_hand"),
    "end-e in linear_schedule": ("dqn_cartpole.py", "return max(end_e, start_e + (end_e - start_e) * t / duration)",
                                 "return max(0.01, start_e + (0.01 - start_e) * t / duration)",
                                 "schedules_against_hand"),
    "exploration-fraction in linear_schedule": (
        "dqn_cartpole.py", "return max(end_e, start_e + (end_e - start_e) * t / duration)",
        "return max(end_e, start_e + (end_e - start_e) * t / 5000)", "schedules_against_hand"),
    "learning-rate in learning_rate_at": ("dqn_cartpole.py", "    return args.learning_rate * (1 - (global_step",
                                          "    return 1e-3 * (1 - (global_step", "schedules_against_hand"),
    "anneal-lr-start in learning_rate_at": ("dqn_cartpole.py", "if global_step < decay_start:",
                                            "if False:", "schedules_against_hand"),
    "total-timesteps in learning_rate_at": ("dqn_cartpole.py", "decay_steps = args.total_timesteps - decay_start",
                                            "decay_steps = 50_000 - decay_start", "schedules_against_hand"),
    "prioritized-replay-alpha in update_priorities": ("per_dqn.py", "+ self.eps) ** self.alpha",
                                                      "+ self.eps) ** 0.6", "per_loop or per_new_transition"),
    "prioritized-replay-eps in update_priorities": ("per_dqn.py", "(np.abs(td_errors) + self.eps)",
                                                    "(np.abs(td_errors) + 1e-6)", "per_loop or per_new_transition"),
    "prioritized-replay-beta in sample": ("per_dqn.py", "weights = (self.size * probs) ** -beta",
                                          "weights = (self.size * probs) ** -0.4", "per_importance_sampling"),
    "gamma in the Double DQN target": ("double_dqn.py", "return rewards + gamma * (1 - terminated) * next_q",
                                       "return rewards + 0.99 * (1 - terminated) * next_q", "double_target"),
    "hidden-dim in the dueling streams": ("dueling_dqn.py", "nn.Linear(hidden_dim, 1))",
                                          "nn.Linear(hidden_dim, 64), nn.ReLU(), nn.Linear(64, 1))",
                                          "width_and_outputs and dueling"),
    "double: online argmax": ("double_dqn.py", "q_network(next_obs).argmax(dim=1, keepdim=True)",
                              "target_network(next_obs).argmax(dim=1, keepdim=True)", "double_target"),
    "dueling: mean advantage": ("dueling_dqn.py", "value + advantages - advantages.mean(dim=1, keepdim=True)",
                                "value + advantages", "dueling"),
    "prioritized-replay-alpha": ("per_dqn.py", "args.prioritized_replay_alpha, args.prioritized_replay_eps)",
                                 "0.6, args.prioritized_replay_eps)", "per_loop"),
    "prioritized-replay-beta": ("per_dqn.py", "(1 - args.prioritized_replay_beta)", "(1 - 0.4)", "per_loop"),
    "prioritized-replay-eps": ("per_dqn.py", "args.prioritized_replay_alpha, args.prioritized_replay_eps)",
                               "args.prioritized_replay_alpha, 1e-6)", "per_loop"),
    # q_learning_frozenlake.py
    "fl: episodes": ("q_learning_frozenlake.py", "env, args.episodes,", "env, 10_000,", FL_FLAGS_TEST),
    "fl: learning-rate": ("q_learning_frozenlake.py", "args.episodes, args.learning_rate,", "args.episodes, 0.1,",
                          FL_FLAGS_TEST),
    "fl: anneal-lr": ("q_learning_frozenlake.py", "args.learning_rate, args.anneal_lr,", "args.learning_rate, True,",
                      FL_FLAGS_TEST),
    "fl: gamma": ("q_learning_frozenlake.py", "args.anneal_lr, args.gamma,", "args.anneal_lr, 0.99,", FL_FLAGS_TEST),
    "fl: start-e": ("q_learning_frozenlake.py", "args.start_e, args.end_e,", "1.0, args.end_e,", FL_FLAGS_TEST),
    "fl: end-e": ("q_learning_frozenlake.py", "args.end_e, args.exploration_fraction,",
                  "0.1, args.exploration_fraction,", FL_FLAGS_TEST),
    "fl: exploration-fraction": ("q_learning_frozenlake.py", "args.exploration_fraction, args.seed,", "0.5, args.seed,",
                                 FL_FLAGS_TEST),
    "fl: map-name": ("q_learning_frozenlake.py",
                     'make_env(args.map_name, args.map and args.map.split(","), args.is_slippery)\n',
                     'make_env("4x4", args.map and args.map.split(","), args.is_slippery)\n', FL_FLAGS_TEST),
    "fl: map": ("q_learning_frozenlake.py", 'args.map and args.map.split(","), args.is_slippery)\n',
                "None, args.is_slippery)\n", FL_FLAGS_TEST),
    "fl: is-slippery": ("q_learning_frozenlake.py", 'args.map.split(","), args.is_slippery)\n',
                        'args.map.split(","), True)\n', FL_FLAGS_TEST),
    # ... and inside the functions they reach
    "fl: learning-rate in td_update": ("q_learning_frozenlake.py", "q_table[obs][action] += learning_rate * td_error",
                                       "q_table[obs][action] += 0.1 * td_error", "fl_td_update"),
    "fl: gamma in td_update": ("q_learning_frozenlake.py", "reward + gamma * max(q_table[next_obs])",
                               "reward + 0.99 * max(q_table[next_obs])", "fl_td_update"),
    "fl: anneal-lr in annealed_learning_rate": ("q_learning_frozenlake.py", "if anneal_lr else learning_rate",
                                                "if True else learning_rate", "fl_schedules"),
    "fl: episodes in annealed_learning_rate": ("q_learning_frozenlake.py", "(1.0 - episode / episodes)",
                                               "(1.0 - episode / 10_000)", "fl_schedules"),
    "fl: start-e in linear_schedule": ("q_learning_frozenlake.py", "return start + fraction_done * (end - start)",
                                       "return 1.0 + fraction_done * (end - 1.0)", "fl_schedules"),
    "fl: end-e in linear_schedule": ("q_learning_frozenlake.py", "return start + fraction_done * (end - start)",
                                     "return start + fraction_done * (0.1 - start)", "fl_schedules"),
    "fl: exploration-fraction in linear_schedule": ("q_learning_frozenlake.py", "min(t / duration, 1.0)",
                                                    "min(t / 5000, 1.0)", "fl_schedules"),
    "fl: map-name in make_env": ("q_learning_frozenlake.py", 'big = map_name == "8x8" and custom_map is None',
                                 "big = False", "fl_schedules"),
    "fl: map in make_env": ("q_learning_frozenlake.py", "desc=custom_map,", "desc=None,", "fl_schedules"),
    "fl: is-slippery in make_env": ("q_learning_frozenlake.py", "is_slippery=is_slippery, max_episode_steps",
                                    "is_slippery=True, max_episode_steps", "fl_schedules"),
    # dqn_atari.py
    "atari: env-id": ("dqn_atari.py", "AtariVectorEnv(atari_game(args.env_id),",
                      'AtariVectorEnv(atari_game("BreakoutNoFrameskip-v4"),', ATARI_FLAGS_TEST),
    "atari: total-timesteps": ("dqn_atari.py", "num_iterations = args.total_timesteps // args.num_envs",
                               "num_iterations = 1_000 // args.num_envs", ATARI_FLAGS_TEST),
    "atari: num-envs": ("dqn_atari.py", "make_envs(args, args.num_envs)) as envs", "make_envs(args, 1)) as envs",
                        ATARI_FLAGS_TEST),
    "atari: sticky-actions": ("dqn_atari.py", "repeat_action_probability=0.25 if args.sticky_actions else 0.0",
                              "repeat_action_probability=0.0", ATARI_FLAGS_TEST),
    "atari: learning-rate": ("dqn_atari.py", "lr=args.learning_rate, eps", "lr=1e-4, eps", ATARI_FLAGS_TEST),
    "atari: anneal-lr": ("dqn_atari.py", "                if args.anneal_lr:\n", "                if False:\n",
                         ATARI_FLAGS_TEST),
    "atari: adam-eps": ("dqn_atari.py", "eps=args.adam_eps", "eps=1e-8", ATARI_FLAGS_TEST),
    "atari: buffer-size": ("dqn_atari.py", "rb = ReplayBuffer(args.buffer_size,", "rb = ReplayBuffer(1_000_000,",
                           ATARI_FLAGS_TEST),
    "atari: batch-size": ("dqn_atari.py", "rb.sample(args.batch_size, device)", "rb.sample(32, device)",
                          ATARI_FLAGS_TEST),
    "atari: gamma": ("dqn_atari.py", "batch, args.gamma, loss_fn", "batch, 0.99, loss_fn", ATARI_FLAGS_TEST),
    "atari: tau": ("dqn_atari.py", "update_target_network(target_network, q_network, args.tau)",
                   "update_target_network(target_network, q_network, 1.0)", ATARI_FLAGS_TEST),
    "atari: target-network-frequency": ("dqn_atari.py", "args.num_envs, args.target_network_frequency)",
                                        "args.num_envs, 1_000)", "atari_gradient_steps"),
    "atari: train-frequency": ("dqn_atari.py", "due(global_step, args.num_envs, args.train_frequency)",
                               "due(global_step, args.num_envs, 4)", "atari_gradient_steps"),
    "atari: learning-starts": ("dqn_atari.py", "if global_step >= args.learning_starts:",
                               "if global_step >= 80_000:", f"atari_gradient_steps or {ATARI_FLAGS_TEST}"),
    "atari: start-e": ("dqn_atari.py", "linear_schedule(args.start_e, args.end_e, decay_steps",
                       "linear_schedule(1.0, args.end_e, decay_steps", ATARI_FLAGS_TEST),
    "atari: end-e": ("dqn_atari.py", "linear_schedule(args.start_e, args.end_e, decay_steps",
                     "linear_schedule(args.start_e, 0.01, decay_steps", ATARI_FLAGS_TEST),
    "atari: exploration-fraction": ("dqn_atari.py", "decay_steps = args.exploration_fraction * args.total_timesteps",
                                    "decay_steps = 0.1 * args.total_timesteps", ATARI_FLAGS_TEST),
    "atari: loss": ("dqn_atari.py", 'loss_fn = F.mse_loss if args.loss == "mse" else F.smooth_l1_loss',
                    "loss_fn = F.mse_loss", ATARI_FLAGS_TEST),
    "atari: max-grad-norm": ("dqn_atari.py", "if args.max_grad_norm > 0:", "if False:", ATARI_FLAGS_TEST),
    "atari: bf16": ("dqn_atari.py", "loss_fn, args.bf16)", "loss_fn, False)", ATARI_FLAGS_TEST),
    # dqn_atari.py's Atari protocol (docs/dqn_atari.md)
    "atari: protocol: no-op starts": ("dqn_atari.py", "noop_max=30", "noop_max=0", "atari_protocol"),
    "atari: protocol: frame skip 4": ("dqn_atari.py", "frameskip=4", "frameskip=1", "atari_protocol"),
    "atari: protocol: no sticky actions unless asked": ("dqn_atari.py", "0.25 if args.sticky_actions else 0.0",
                                                        "0.25 if args.sticky_actions else 0.25", "atari_protocol"),
    "atari: protocol: a lost life is not a game over": (
        "dqn_atari.py", "return truncations | (terminations & (lives >= prev_lives))",
        "return truncations | terminations", "atari_a_game_ends"),
    "atari: protocol: Pong (no lives) ends at its game over": (
        "dqn_atari.py", "(lives >= prev_lives)", "(lives > prev_lives)", "atari_a_game_ends and Pong"),
    "atari: protocol: a lost life is terminal for learning": ("dqn_atari.py", "life_loss_info=training",
                                                              "life_loss_info=False", "atari_a_game_ends"),
    "atari: protocol: rewards clipped for learning": ("dqn_atari.py", "rb.add(obs, actions, np.sign(rewards),",
                                                      "rb.add(obs, actions, rewards,", "atari_logs_the_real_game"),
    "atari: protocol: the real score in the logs": ("dqn_atari.py", "episode_returns += rewards",
                                                    "episode_returns += np.sign(rewards)",
                                                    "atari_logs_the_real_game_score"),
    "atari: protocol: a truncation is not terminal": ("dqn_atari.py", "real_next_obs, terminations, episode_start)",
                                                      "real_next_obs, terminations | truncations, episode_start)",
                                                      "atari_buffer_samples_exactly"),
    "atari: protocol: the true last observation of a game": ("dqn_atari.py", 'real_next_obs[i] = infos["final_obs"][i]',
                                                             "real_next_obs[i] = next_obs[i]",
                                                             "atari_buffer_samples_exactly"),
}


def run_break(name, keep=False):
    script, text, broken, tests = BREAKS[name]
    folder = tempfile.mkdtemp(prefix="flag-break-")
    try:
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        for path in files:
            os.makedirs(os.path.join(folder, os.path.dirname(path)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, path), os.path.join(folder, path))
        with open(os.path.join(folder, script)) as f:
            source = f.read()
        if source.count(text) != 1:
            return f"NOT APPLIED: {script} holds {source.count(text)} copies of the text to break"
        with open(os.path.join(folder, script), "w") as f:
            f.write(source.replace(text, broken))
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "test_scripts.py",
                                 "-k", tests], cwd=folder, capture_output=True, text=True,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr.strip()[-200:]
        if "failed" in last:
            return f"caught ({last})"
        return f"NOT CAUGHT ({last})"
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="*", help="breaks to run (default: all)")
    p.add_argument("--list", action="store_true")
    a = p.parse_args()
    names = a.names or list(BREAKS)
    unknown = [name for name in names if name not in BREAKS]
    if unknown:
        sys.exit(f"error: no break named {', '.join(unknown)}; --list shows them")
    if a.list:
        for name in names:
            script, text, broken, tests = BREAKS[name]
            print(f"{name}: in {script}, `{text.strip()}` -> `{broken.strip()}`; must fail: -k '{tests}'")
        return
    missed = 0
    for name in names:
        verdict = run_break(name)
        missed += not verdict.startswith("caught")
        print(f"{name:28s} {verdict}", flush=True)
    print(f"{len(names) - missed} of {len(names)} breaks caught")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
