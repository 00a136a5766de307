"""How far ``ddpm conform``'s step spec sits from its tolerance on the installed diffusers' grid.

    python scripts/conform_margins.py

For every probed step of every DDPM / DDIM configuration of the grid: max over (a, b, s) of
|observed - closed form| / tolerance. Prints the largest ratio among steps within tolerance (how near a
correct step comes to a false alarm) and, per failing configuration, its worst step's ratio (how clearly
it fails). The last step of a ``set_alpha_to_one=False`` configuration is a documented departure, left out.
"""

from __future__ import annotations

from ddpm.conform import beta as B
from ddpm.conform.grid import DIFFUSERS_GRID
from ddpm.conform.targets import factory_of, load


def main() -> None:
    passing: list[tuple[float, str]] = []
    worst: dict[str, float] = {}
    for name in ("DDPMScheduler", "DDIMScheduler"):
        for cfg in DIFFUSERS_GRID[name]:
            factory = factory_of(load(f"diffusers:{name}"), cfg, name)
            sched = B.Scheduler(factory.make(), factory)
            eta, ab = B._eta(sched), sched.alpha_bar
            for r in B.read_steps(sched, B.DEFAULT_STEPS):
                c, last = r.coef, r.t_next is None
                if c.problem or c.s is None or (last and cfg.get("set_alpha_to_one") is False):
                    continue
                ab_s = 1.0 if r.t_next is None else float(ab[r.t_next])
                exp, tol = B._tolerances(sched.config, eta, float(ab[r.t]), ab_s, last)
                ratio = max(abs(g - e) / t for g, e, t in zip((c.a, c.b, c.s), exp, tol))
                where = f"{factory.label} n = {r.n} t = {r.t}"
                if ratio <= 1:
                    passing.append((ratio, where))
                else:
                    worst[factory.label] = max(worst.get(factory.label, 0.0), ratio)
    ratio, where = max(passing)
    print(f"{len(passing)} steps within tolerance; the nearest to it: {ratio:.3g} of it ({where})")
    for label, times in sorted(worst.items(), key=lambda kv: kv[1]):
        print(f"failing: {label}: worst step {times:.3g} times its tolerance")


if __name__ == "__main__":
    main()
