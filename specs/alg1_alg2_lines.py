"""Algorithms 1 and 2 line by line, cited against the code that runs it [Ho20 alg. 1, alg. 2, eq. 14].

Each line is cited against the code that runs it, and its formula is checked.

Algorithm 1 (training): x_0 ~ q(x_0); t ~ Uniform{1..T}; eps ~ N(0, I); a gradient step on
||eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t)||^2. The argument of eps_theta is a
draw of q(x_t | x_0) (claim eq04) and the loss is eq. 12's term with its weight dropped (eq. 14,
claim eq12). Algorithm 2 (sampling): x_T ~ N(0, I) (claim ex31); for t = T..1, z ~ N(0, I) if t > 1
else 0, x_{t-1} = (x_t - (1 - alpha_t) / sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) / sqrt(alpha_t) + sigma_t z:
a draw of N(mu_theta, sigma_t^2) with mu_theta of eq. 11 (claims eq07, eq12) and sigma_t^2 of §3.2
(claim sec32). Bindings: ``ddpm.beta.sampler.sample`` replayed with the same noise, and ``ddpm.beta.losses.l_simple``.
"""

from __future__ import annotations

import importlib

import numpy as np
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm.beta.losses import l_simple
from ddpm.beta.sampler import noise_draws, sample
from ddpm.beta.schedule import reverse_variance
from ddpm.specs._bind import alpha_bar as alpha_bar_at
from ddpm.specs._bind import assert_close, examples, reference, schedules, vectors
from ddpm.specs._sym import Derivation, alpha, alpha_bar, alpha_bar_prev, beta, equal, x0, xt
from ddpm.specs.eq04_marginal import MEAN, VAR, a_bar
from ddpm.specs.eq12_eps_weight import MU_FROM_EPS, WEIGHT, eps, eps_theta, sigma2

z = sp.Symbol("z", real=True)

# (algorithm, line, the paper's text, the code that runs it, the claim that checks its formula)
LINES = [
    (1, 2, "x_0 ~ q(x_0)", "ddpm.train:train", "data"),
    (1, 3, "t ~ Uniform({1, ..., T})", "ddpm.train:train", "-"),
    (1, 4, "eps ~ N(0, I)", "ddpm.train:train", "-"),
    (
        1,
        5,
        "grad_theta ||eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t)||^2",
        "ddpm.beta.losses:l_simple",
        "eq04, eq12",
    ),
    (2, 1, "x_T ~ N(0, I)", "ddpm.beta.sampler:sample", "ex31"),
    (2, 3, "z ~ N(0, I) if t > 1, else z = 0", "ddpm.beta.sampler:sample", "-"),
    (
        2,
        4,
        "x_{t-1} = 1/sqrt(alpha_t) (x_t - (1 - alpha_t)/sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) + sigma_t z",
        "ddpm.beta.sampler:sample",
        "eq07, eq12, sec32",
    ),
    (2, 6, "return x_0", "ddpm.beta.sampler:sample", "-"),
]

# The algorithms' formulas as printed [Ho20 alg. 1 line 5, alg. 2 line 4, eq. 14].
ALG1_INPUT = sp.sqrt(alpha_bar) * x0 + sp.sqrt(1 - alpha_bar) * eps
ALG2_STEP = (xt - (1 - alpha) / sp.sqrt(1 - alpha_bar) * eps_theta) / sp.sqrt(alpha) + sp.sqrt(sigma2) * z
L_SIMPLE = (eps - eps_theta) ** 2


def derivation(
    alg1_input: sp.Expr = ALG1_INPUT, alg2_step: sp.Expr = ALG2_STEP, l_simple_: sp.Expr = L_SIMPLE
) -> Derivation:
    """Each algorithm line with a formula, checked through claims eq04, eq07/eq12 and sec32."""
    d = Derivation("Algorithms 1 and 2, line by line [Ho20 alg. 1, alg. 2, eq. 14]")
    d.step(
        "Where each line runs",
        *(f"alg. {a} line {ln}: {text}\n    -> {code}  (checked by: {claim})" for a, ln, text, code, claim in LINES),
    )
    d.step(
        "Alg. 1 line 5: eps_theta's input is a draw of q(x_t | x_0) (eq. 4, claim eq04)",
        equal(alg1_input, (MEAN + sp.sqrt(VAR) * eps).subs(a_bar, alpha_bar), "alg. 1 line 5 vs eq. 4"),
    )
    d.step(
        "and the loss is eq. 12's term without its weight (eq. 14, claim eq12)",
        equal(
            l_simple_,
            (MU_FROM_EPS - MU_FROM_EPS.subs(eps, eps_theta)) ** 2 / (2 * sigma2) / WEIGHT,
            "eq. 14 vs eq. 12 / weight",
        ),
    )
    d.step(
        "Alg. 2 line 4: the mean of x_{t-1} is mu_theta of eq. 11 (claims eq07, eq12), 1 - alpha_t = beta_t",
        equal(alg2_step.subs(z, 0), MU_FROM_EPS.subs(eps, eps_theta), "alg. 2 line 4 mean vs eq. 11"),
    )
    d.step(
        "and its variance sigma_t^2 (z ~ N(0, 1)): x_{t-1} ~ N(mu_theta, sigma_t^2), sigma_t^2 from §3.2 (claim sec32)",
        equal(sp.diff(alg2_step, z) ** 2, sigma2, "alg. 2 line 4 variance"),
    )
    return d


def check_cited_code(lines=LINES) -> None:
    """Every cited function exists and its docstring cites the algorithm or equation it implements."""
    for algorithm, line, _, path, _ in lines:
        module, name = path.split(":")
        obj = getattr(importlib.import_module(module), name)
        doc = obj.__doc__ or ""
        if f"alg. {algorithm}" not in doc and "eq. 14" not in doc:
            raise AssertionError(
                f"{path}, cited for alg. {algorithm} line {line}, does not cite [Ho20 alg. {algorithm}]"
            )


def check_sampler(impl=sample) -> None:
    """``impl`` (Algorithm 2) replayed step by step with the derived line 4 and the same noise.

    In float64.
    """
    symbols = [beta, alpha_bar_prev, xt, eps_theta, sigma2, z]

    @examples(15)
    @given(schedules(max_T=8), st.floats(-1, 1), st.sampled_from(["beta", "beta_tilde"]), st.integers(0, 2**31))
    def run(schedule, gain, choice, seed):
        # eps_theta depends on t, so that a step that passes the network the wrong t is caught
        eps_model = lambda x, t: gain * x + t[:, None].to(x.dtype) / 10  # noqa: E731
        x0_, xs = impl(
            eps_model,
            schedule,
            (3, 2),
            sigma2=choice,
            generator=torch.Generator().manual_seed(seed),
            dtype=torch.float64,
            return_trajectory=True,
        )
        draws = noise_draws((3, 2), schedule.T, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        x = next(draws).numpy()  # line 1, the documented order
        assert_close("x_T", xs[schedule.T], x)
        var = reverse_variance(schedule, choice)
        for tt in range(schedule.T, 0, -1):
            zz = next(draws).numpy() if tt > 1 else np.zeros((3, 2))
            args = (float(schedule.betas[tt - 1]), alpha_bar_at(schedule, tt - 1))
            new = reference(ALG2_STEP, symbols, *args, x, gain * x + tt / 10, float(var[tt]), zz)
            # the step's terms: (|x_t| + |eps_theta|) / sqrt(alpha_t) + sigma |z|, eps_coef <= 1
            scale = (np.abs(x) * (1 + abs(gain)) + tt / 10) / np.sqrt(1 - args[0]) + np.abs(zz)
            assert_close(f"x_{tt - 1}", xs[tt - 1], new, scale)
            x = xs[tt - 1].numpy()  # continue from ddpm's state so that errors do not compound
        assert_close("x_0 returned", x0_, xs[0].numpy())

    run()


def check_l_simple(impl=l_simple) -> None:
    """``impl`` is Algorithm 1's loss at the derived line 5 input, in float64."""

    @examples(30)
    @given(schedules(), st.data(), vectors(3, 1.0), vectors(3), st.floats(-1, 1))
    def run(schedule, data, x0_, eps_, gain):
        t = data.draw(st.integers(1, schedule.T), label="t")
        args = (float(schedule.betas[t - 1]), alpha_bar_at(schedule, t - 1))
        x_in = reference(ALG1_INPUT, [beta, alpha_bar_prev, x0, eps], *args, x0_, eps_)
        want = reference(L_SIMPLE, [eps, eps_theta], eps_, gain * x_in).sum()
        got = impl(
            lambda x, s: gain * x,
            schedule,
            torch.from_numpy(x0_)[None],
            torch.tensor([t]),
            torch.from_numpy(eps_)[None],
        )
        assert_close(f"L_simple at t={t}", got[0], want, float(((np.abs(eps_) + np.abs(gain * x_in)) ** 2).sum()))

    run()
