"""Draw the home page's figure, docs/assets/home_trajectories.png (run from the repository root).

    python docs/assets/make_home_figure.py

Reverse-SDE trajectories of the two-point law 0.5 delta(y - 1) + 0.5 delta(y + 1) under the OU
process, sampled with the exact score and recorded inside the sampling loop, with the
critical times of the score (t_c^S) and of the reverse-SDE drift (t_c^D) marked: the paths
commit to a class around t_c.
"""

from pathlib import Path

import jax
import numpy as np

import gltheory as gl
from gltheory import plotting

OUT = Path(__file__).resolve().parent / "home_trajectories.png"
N_TRAJ, N_STEPS = 24, 512


def main() -> None:
    process = gl.OU(T=4.0)
    data = gl.TwoPoint(1.0)
    ts = gl.time_grid(process, N_STEPS, kind="log_snr")
    save_at = np.arange(0, N_STEPS + 1, 2)
    sol = gl.sample(
        lambda x, t: gl.score(data, process, x, t),
        process,
        jax.random.key(7),
        (N_TRAJ, 1),
        ts=ts,
        solver=gl.EulerMaruyama(),
        observe=lambda x, t: x[:, 0],
        save_at=save_at,
    )
    tc = gl.critical_times(data, process)
    t = np.asarray(sol.saved_ts)
    centres = np.exp(-t)  # a_t * mu with mu = 1 (OU: a_t = e^{-t})
    fig = plotting.trajectories_figure(
        t,
        np.asarray(sol.observables),
        t_marks={"t_c^S": float(tc.t_score), "t_c^D": float(tc.t_sde)},
        centres=centres,
        t_max=2.5,
    )
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
