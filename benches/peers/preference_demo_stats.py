"""Statistics of the OFFICIAL preference-gridworld generator (smonsays/modular-hyperteacher,
unmodified: metax/data/envs/preference.py) over many environment seeds, for the comparison with
hypermod's generator in tests/preference.rs (`demonstration_statistics_match_the_official_generator`):
per seed, 200 demonstrations of training tasks, and for each the mean over its unmasked rows of
½‖Q‖², its length (unmasked rows) and the mean |Q|; then the mean over seeds.

usage: python preference_demo_stats.py   (expects the reference checkout at /tmp/ref)
"""
import sys, os
sys.path.insert(0, "/tmp/ref"); os.chdir("/tmp/ref")
import jax, jax.numpy as jnp, numpy as np
from metax.data.envs.preference import CompositionalPreference
out = []
for seed in range(3000, 3024):
    env = CompositionalPreference(num_preferences=8, num_features=8, num_objects=4, num_hot=3,
        continuous_combinations=True, discount=0.9, frac_ood=0.25, timelimit=8, task_support="random", seed=seed)
    rng = jax.random.PRNGKey(seed + 7)
    def one(rng):
        r1, r2, r3 = jax.random.split(rng, 3)
        goal, _ = env.reset_goal(r1, mode="train")
        st, _ = env.reset(r2, goal=goal)
        traj, q = env.demonstrate(r3, st)
        return q, ~traj.done
    qs, masks = jax.vmap(one)(jax.random.split(rng, 200))
    qs, masks = np.array(qs), np.array(masks)
    half = 0.5 * (qs ** 2).sum(-1)
    per_demo = (half * masks).sum(-1) / masks.sum(-1)
    out.append((seed, float(per_demo.mean()), float(masks.sum(-1).mean()), float(np.abs(qs[masks]).mean())))
    print(out[-1], flush=True)
print("mean over seeds: half|Q|^2 %.3f, length %.2f, |Q| %.3f" % tuple(np.mean([o[1:] for o in out], axis=0)))
