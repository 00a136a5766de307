"""Write the 6.S183 verify cases: correct notebooks written several ways and one mutant per mistake.

Run ``python tests/verify_cases_s183/make_cases.py`` to regenerate. Each case is written twice: as a
Jupyter notebook (``.ipynb``, built with nbformat, with shell and magic lines as a student's has them)
and as a ``# %%`` script export (``.py``). ``cases.json`` says what each must give: exit 0, or exit 1
with the failing spec, words its detail must contain and the student's line it must show.

The notebooks are written for this project (none is the course's): the answers differ in style
(mse_loss or by hand, predict_eps or the model called, arguments swapped, the previous prediction
kept or recomputed, helpers in other cells) and every notebook holds the top-level calls a student's
has (training for 20000 epochs, plots) which the verifier must never run.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

IMPORTS = """import numpy as np
import torch
import matplotlib.pyplot as plt
from itertools import pairwise
from typing import Optional
from accelerate import Accelerator
from torch.nn.functional import mse_loss
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from smalldiffusion import ScheduleLogLinear, Swissroll, TimeInputMLP, Schedule, training_loop, samples"""

IMPORTS_STAR = """import math
import torch
import torch.nn.functional as F
from torch import nn
from itertools import pairwise
from accelerate import Accelerator
from smalldiffusion import *
from tqdm import tqdm
import matplotlib.pyplot as plt
from IPython.display import HTML"""

SETUP = """%matplotlib inline
spiral = Swissroll(np.pi / 2, 5 * np.pi, 200)
loader = DataLoader(spiral, batch_size=2000)
schedule = ScheduleLogLinear(N=200, sigma_min=0.005, sigma_max=10)
plt.plot(schedule.sigmas)
plt.yscale('log')"""

MODEL = """net = TimeInputMLP(hidden_dims=(16, 128, 128, 128, 128, 16))
print(net)"""

OWN_MODEL = """class TinyEps(nn.Module, ModelMixin):
    def __init__(self, width=64):
        super().__init__()
        self.input_dims = (2,)
        self.body = nn.Sequential(nn.Linear(4, width), nn.GELU(), nn.Linear(width, 2))

    def forward(self, x, sigma, cond=None):
        emb = get_sigma_embeds(x.shape[0], sigma.squeeze())
        return self.body(torch.cat([x, emb], dim=1))


net = TinyEps()
schedule = ScheduleLogLinear(N=200, sigma_min=0.005, sigma_max=10)"""

TRAIN_MSE = """def moving_average(x, w):
    return np.convolve(x, np.ones(w), 'valid') / w

def training_loop(loader: DataLoader, model: torch.nn.Module, schedule: Schedule,
                  epochs: int = 10000, lr: float = 1e-3):
    accelerator = Accelerator()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for _ in tqdm(range(epochs)):
        for x0 in loader:
            model.train()
            optimizer.zero_grad()
            # one noise level per example
            sigma = schedule.sample_batch(x0)
            while len(sigma.shape) < len(x0.shape):
                sigma = sigma.unsqueeze(-1)
            eps = torch.randn_like(x0)
            loss = mse_loss(model(x0 + sigma * eps, sigma), eps)
            yield loss.item()
            accelerator.backward(loss)
            optimizer.step()

losses = list(training_loop(loader, net, schedule, epochs=20000, lr=1e-3))
plt.plot(moving_average(losses, 100))"""

TRAIN_HAND = """def training_loop(loader, model, schedule, epochs=10000, lr=1e-3):
    acc = Accelerator()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model, opt, loader = acc.prepare(model, opt, loader)
    for epoch in tqdm(range(epochs)):
        for batch in loader:
            model.train()
            opt.zero_grad()
            levels = schedule.sample_batch(batch).view(-1, 1)
            noise = torch.randn(batch.shape)
            prediction = model.predict_eps(batch + levels * noise, levels)
            loss = ((prediction - noise) ** 2).mean()
            yield loss.item()
            acc.backward(loss)
            opt.step()"""

TRAIN_SWAPPED = """def add_noise(x0, sigma, eps):
    return x0 + eps * sigma


def training_loop(loader, model, schedule, epochs=10000, lr=1e-3):
    accelerator = Accelerator()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for _ in tqdm(range(epochs)):
        for x0 in loader:
            model.train()
            optimizer.zero_grad()
            sigma = schedule.sample_batch(x0)[:, None]
            eps = torch.randn_like(x0)
            loss = F.mse_loss(eps, model(add_noise(x0, sigma, eps), sigma))
            yield loss.item()
            loss.backward()
            optimizer.step()"""

TRAIN_SUMDIM = """def training_loop(loader, model, schedule, epochs=10000, lr=1e-3):
    accelerator = Accelerator()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for _ in range(epochs):
        for x0 in loader:
            optimizer.zero_grad()
            sigma = schedule.sample_batch(x0).reshape(-1, 1)
            eps = torch.normal(0.0, 1.0, size=x0.shape)
            residual = model(x0 + sigma * eps, sigma) - eps
            loss = residual.pow(2).sum(dim=1).mean()  # E ||eps_theta - eps||^2, the sum over coordinates
            yield float(loss)
            accelerator.backward(loss)
            optimizer.step()"""

SAMPLE_KEEP = """@torch.no_grad()
def samples(model: torch.nn.Module, sigmas: torch.FloatTensor, xt: Optional[torch.FloatTensor] = None,
            gam: float = 1., batchsize: int = 1):
    model.eval()
    accelerator = Accelerator()
    xt = model.rand_input(batchsize).to(accelerator.device) * sigmas[0] if xt is None else xt
    eps_prev = None
    for i, (sig, sig_prev) in enumerate(pairwise(sigmas)):
        eps = model.predict_eps(xt, sig.to(xt))
        eps_bar = eps if eps_prev is None else gam * eps + (1 - gam) * eps_prev
        xt = xt - (sig - sig_prev) * eps_bar
        eps_prev = eps
        yield xt

*xts, x0 = samples(net, schedule.sample_sigmas(10), batchsize=2000, gam=2.0)
plt.scatter(x0[:, 0], x0[:, 1], marker='.')"""

SAMPLE_RECOMPUTE = """@torch.no_grad()
def samples(model, sigmas, xt=None, gam=1., batchsize=1):
    model.eval()
    accelerator = Accelerator()
    xt = model.rand_input(batchsize).to(accelerator.device) * sigmas[0] if xt is None else xt
    x_before = None
    for i, (sig, sig_prev) in enumerate(pairwise(sigmas)):
        eps = model.predict_eps(xt, sig.to(xt))
        if i == 0:
            eps_bar = eps
        else:
            # the previous level's prediction, computed again
            eps_before = model.predict_eps(x_before, sigmas[i - 1].to(xt))
            eps_bar = gam * eps + (1 - gam) * eps_before
        x_before = xt
        xt = xt - (sig - sig_prev) * eps_bar
        yield xt"""

SAMPLE_LIST = """def ddim_like_step(x, sigma_from, sigma_to, direction):
    return x - (sigma_from - sigma_to) * direction


@torch.no_grad()
def samples(model, sigmas, xt=None, gam=1.0, batchsize=1):
    model.eval()
    if xt is None:
        xt = sigmas[0] * model.rand_input(batchsize)
    predictions = []
    for t in range(len(sigmas) - 1):
        predictions.append(model(xt, sigmas[t]))
        if len(predictions) == 1:
            direction = predictions[-1]
        else:
            direction = torch.lerp(predictions[-2], predictions[-1], gam)
        xt = ddim_like_step(xt, sigmas[t], sigmas[t + 1], direction)
        yield xt"""

SAMPLE_RECURSIVE = """@torch.no_grad()
def samples(model, sigmas, xt=None, gam=1., batchsize=1):
    model.eval()
    accelerator = Accelerator()
    xt = model.rand_input(batchsize).to(accelerator.device) * sigmas[0] if xt is None else xt
    previous = None
    for sig, sig_prev in pairwise(sigmas):
        current = model.predict_eps(xt, sig.to(xt))
        previous = current if previous is None else previous
        xt = xt - (sig - sig_prev) * (gam * current + (1 - gam) * previous)
        previous = current
        yield xt"""

PLOTS = """for g in [1.0, 1.5, 2.0]:
    *_, x0 = samples(net, schedule.sample_sigmas(10), batchsize=2000, gam=g)
    plt.figure()
    plt.scatter(x0[:, 0], x0[:, 1], marker='.')
    plt.title(f'gam = {g}')"""

TIMED_TRAINING = """%%time
losses = list(training_loop(loader, net, schedule, epochs=20000))"""


def notebook(train: str, sample: str, *, own_model: bool = False, star: bool = False) -> list[tuple[str, str]]:
    """(cell type, source) of a student's notebook holding the two answers."""
    cells = [("markdown", "# Diffusion on a 2D spiral\nMy answers to questions 1-3."),
             ("code", "!pip install -q torch accelerate smalldiffusion tqdm"),
             ("code", IMPORTS_STAR if star else IMPORTS),
             ("code", SETUP.replace("np.pi", "math.pi") if star else SETUP),
             ("code", OWN_MODEL if own_model else MODEL),
             ("markdown", "## Question 1: the loss"),
             ("code", train),
             ("code", TIMED_TRAINING),
             ("markdown", "## Question 3: the accelerated sampler"),
             ("code", sample),
             ("code", PLOTS)]
    return cells


def nbconvert_script(cells: list[tuple[str, str]]) -> str:
    """The notebook as ``jupyter nbconvert --to script`` writes it: ``# In[ ]:`` markers, magics as get_ipython()."""
    out = ["#!/usr/bin/env python", "# coding: utf-8", ""]
    for kind, src in cells:
        if kind == "markdown":
            out += [""] + ["# " + line for line in src.split("\n")] + [""]
            continue
        lines = src.split("\n")
        if lines[0].startswith("%%"):
            magic = lines[0][2:].split()[0]
            body = "\n".join(lines[1:])
            text = f"get_ipython().run_cell_magic({magic!r}, '', {body!r})"
        else:
            text = "\n".join(f"get_ipython().system({line.strip()[1:]!r})" if line.strip().startswith("!") else
                             f"get_ipython().run_line_magic({line.strip()[1:].split()[0]!r}, "
                             f"{' '.join(line.strip()[1:].split()[1:])!r})" if line.strip().startswith("%") else line
                             for line in lines)
        out += ["", "# In[ ]:", "", "", text, ""]
    return "\n".join(out) + "\n"


def write(name: str, cells: list[tuple[str, str]]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src, id=f"c{i}") if kind == "code" else
                nbformat.v4.new_markdown_cell(src, id=f"c{i}") for i, (kind, src) in enumerate(cells, start=1)]
    nbformat.write(nb, str(HERE / f"{name}.ipynb"))
    parts = []
    for kind, src in cells:
        if kind == "code":
            parts.append("# %%\n" + src)
        else:
            parts.append("# %% [markdown]\n" + "\n".join("# " + line for line in src.split("\n")))
    (HERE / f"{name}.py").write_text("\n\n".join(parts) + "\n")
    if name in NBCONVERT:
        (HERE / f"{name}.nbconvert.py").write_text(nbconvert_script(cells))


CORRECT = {
    "correct_mse_keep": notebook(TRAIN_MSE, SAMPLE_KEEP),
    "correct_hand_recompute": notebook(TRAIN_HAND, SAMPLE_RECOMPUTE),
    "correct_swapped_list": notebook(TRAIN_SWAPPED, SAMPLE_LIST, own_model=True, star=True),
    "correct_sumdim_recursive": notebook(TRAIN_SUMDIM, SAMPLE_RECURSIVE),
}

# name: (the answer changed, old text, new text, failing spec, words its detail contains[, the line it shows;
# by default the first line of the new text])
MUTANTS = {
    "mutant_target_x0": ("train", "mse_loss(model(x0 + sigma * eps, sigma), eps)",
                         "mse_loss(model(x0 + sigma * eps, sigma), x0)", "loss_target", "target is x_0"),
    "mutant_noise_sigma_squared": ("train", "model(x0 + sigma * eps, sigma)", "model(x0 + sigma ** 2 * eps, sigma)",
                                   "loss_input", "sigma^2"),
    "mutant_noise_sign": ("train", "model(x0 + sigma * eps, sigma)", "model(x0 - sigma * eps, sigma)",
                          "loss_input", "wrong sign"),
    "mutant_noise_without_sigma": ("train", "model(x0 + sigma * eps, sigma)", "model(x0 + eps, sigma)",
                                   "loss_input", "no sigma"),
    "mutant_network_told_sigma_squared": ("train", "model(x0 + sigma * eps, sigma)",
                                          "model(x0 + sigma * eps, sigma ** 2)", "loss_sigma", "sigma^2"),
    "mutant_sum_not_mean": ("train", "loss = mse_loss(model(x0 + sigma * eps, sigma), eps)",
                            "loss = ((model(x0 + sigma * eps, sigma) - eps) ** 2).sum()", "loss_reduction",
                            "sum over the batch"),
    "mutant_abs_not_square": ("train", "loss = mse_loss(model(x0 + sigma * eps, sigma), eps)",
                              "loss = (model(x0 + sigma * eps, sigma) - eps).abs().mean()", "loss_target",
                              "not a squared error"),
    "mutant_sigma_per_batch": ("train", "sigma = schedule.sample_batch(x0)", "sigma = schedule.sample_batch(x0[:1])",
                               "loss_sigma", "one level"),
    "mutant_eps_reused": ("train", "eps = torch.randn_like(x0)",
                          "eps = fixed_eps if 'fixed_eps' in dir() else torch.randn_like(x0)\n"
                          "            fixed_eps = eps", "loss_eps", "reuses the eps"),
    "mutant_eps_uniform": ("train", "eps = torch.randn_like(x0)", "eps = torch.rand_like(x0)", "loss_eps",
                           "torch.rand_like"),
    "mutant_eps_one_for_batch": ("train", "eps = torch.randn_like(x0)", "eps = torch.randn_like(x0[:1])",
                                 "loss_eps", "shared by the batch"),
    "mutant_target_sigma_eps": ("train", "mse_loss(model(x0 + sigma * eps, sigma), eps)",
                                "mse_loss(model(x0 + sigma * eps, sigma), sigma * eps)", "loss_target",
                                "target is sigma eps"),
    "mutant_yield_per_epoch": ("train", "            yield loss.item()\n            accelerator.backward(loss)\n"
                               "            optimizer.step()",
                               "            accelerator.backward(loss)\n            optimizer.step()\n"
                               "        yield loss.item()", "loss_yields", "yields", "yield loss.item()"),
    "mutant_gam_on_previous": ("sample", "gam * eps + (1 - gam) * eps_prev", "gam * eps_prev + (1 - gam) * eps",
                               "sample_update", "gam weighs the previous prediction"),
    "mutant_previous_not_updated": ("sample", "        eps_prev = eps\n",
                                    "        eps_prev = eps if eps_prev is None else eps_prev\n",
                                    "sample_update", "never updated"),
    "mutant_previous_is_eps_bar": ("sample", "        eps_prev = eps\n", "        eps_prev = eps_bar\n",
                                   "sample_update", "previous eps_bar"),
    "mutant_gam_ignored": ("sample", "eps if eps_prev is None else gam * eps + (1 - gam) * eps_prev", "eps",
                           "sample_update", "gam is ignored"),
    "mutant_network_at_next_level": ("sample", "model.predict_eps(xt, sig.to(xt))",
                                     "model.predict_eps(xt, sig_prev.to(xt))", "sample_network_call",
                                     "sigma_{t-1}"),
    "mutant_step_sign": ("sample", "xt = xt - (sig - sig_prev) * eps_bar", "xt = xt + (sig - sig_prev) * eps_bar",
                         "sample_update", "wrong sign"),
    "mutant_step_size_sigma": ("sample", "xt = xt - (sig - sig_prev) * eps_bar", "xt = xt - sig * eps_bar",
                               "sample_update", "sigma_t eps_bar"),
    "mutant_first_step_zero": ("sample", "    eps_prev = None\n", "    eps_prev = torch.zeros_like(xt)\n",
                               "sample_first_step", "first step"),
    "mutant_yield_before_step": ("sample", "        xt = xt - (sig - sig_prev) * eps_bar\n        eps_prev = eps\n"
                                 "        yield xt", "        yield xt\n        xt = xt - (sig - sig_prev) * eps_bar\n"
                                 "        eps_prev = eps", "sample_yields", "one step early"),
    "mutant_yield_start_too": ("sample", "    eps_prev = None\n", "    eps_prev = None\n    yield xt\n",
                               "sample_yields", "start x_T is yielded too", "yield xt"),
    "mutant_start_unscaled": ("sample", "model.rand_input(batchsize).to(accelerator.device) * sigmas[0]",
                              "model.rand_input(batchsize).to(accelerator.device)", "sample_start",
                              "without sigmas[0]"),
    "mutant_ignores_given_xt": ("sample", "model.rand_input(batchsize).to(accelerator.device) * sigmas[0] if xt is "
                                "None else xt", "model.rand_input(batchsize).to(accelerator.device) * sigmas[0]",
                                "sample_start", "draws model.rand_input"),
    "mutant_step_sigma_squared": ("sample", "xt = xt - (sig - sig_prev) * eps_bar",
                                  "xt = xt - (sig ** 2 - sig_prev ** 2) * eps_bar", "sample_update",
                                  "(sigma_t^2 - sigma_{t-1}^2)"),
    "mutant_start_uniform": ("sample", "model.rand_input(batchsize).to(accelerator.device) * sigmas[0] if xt is None",
                             "torch.rand(batchsize, 2, dtype=torch.float64) * sigmas[0] if xt is None",
                             "sample_start", "torch.rand"),
    "mutant_network_at_previous_x": ("sample", "    eps_prev = None\n    for i, (sig, sig_prev) in enumerate("
                                     "pairwise(sigmas)):\n        eps = model.predict_eps(xt, sig.to(xt))\n        "
                                     "eps_bar = eps if eps_prev is None else gam * eps + (1 - gam) * eps_prev\n",
                                     "    eps_prev = None\n    x_seen = xt\n    for i, (sig, sig_prev) in enumerate("
                                     "pairwise(sigmas)):\n        eps = model.predict_eps(x_seen, sig.to(xt))\n        "
                                     "eps_bar = eps if eps_prev is None else gam * eps + (1 - gam) * eps_prev\n"
                                     "        x_seen = xt\n", "sample_network_call", "the x of the step before",
                                     "eps = model.predict_eps(x_seen, sig.to(xt))"),
    "mutant_given_xt_rescaled": ("sample", "model.rand_input(batchsize).to(accelerator.device) * sigmas[0] if xt is "
                                 "None else xt", "(model.rand_input(batchsize).to(accelerator.device) if xt is None "
                                 "else xt) * sigmas[0]", "sample_start", "multiplied by sigmas[0]"),
    "mutant_no_noise_in_input": ("train", "model(x0 + sigma * eps, sigma)", "model(x0, sigma)", "loss_input",
                                 "no noise added"),
    "mutant_step_size_zero": ("sample", "        xt = xt - (sig - sig_prev) * eps_bar",
                              "        sig_prev = sig\n        xt = xt - (sig - sig_prev) * eps_bar", "sample_update",
                              "does not move"),
    "mutant_gam_off_by_one": ("sample", "gam * eps + (1 - gam) * eps_prev", "eps + gam * (eps - eps_prev)",
                              "sample_update", "gam is off by one"),
    "mutant_last_step_skipped": ("sample", "enumerate(pairwise(sigmas))", "enumerate(pairwise(sigmas[:-1]))",
                                 "sample_yields", "one per step"),
}


# also written as `jupyter nbconvert --to script` would (a third form)
NBCONVERT = {"correct_mse_keep", "correct_swapped_list", "mutant_target_x0", "mutant_gam_on_previous",
             "mutant_yield_before_step"}


def _forms(name: str) -> list[str]:
    return [".ipynb", ".py"] + ([".nbconvert.py"] if name in NBCONVERT else [])


def main() -> None:
    for old in list(HERE.glob("correct_*")) + list(HERE.glob("mutant_*")):
        old.unlink()
    manifest = {}
    for name, cells in CORRECT.items():
        write(name, cells)
        manifest[name] = {"exit": 0, "forms": _forms(name)}
    for name, (part, old, new, spec, words, *line) in MUTANTS.items():
        base = TRAIN_MSE if part == "train" else SAMPLE_KEEP
        assert base.count(old) == 1, (name, old)
        changed = base.replace(old, new)
        cells = notebook(changed if part == "train" else TRAIN_MSE, changed if part == "sample" else SAMPLE_KEEP)
        write(name, cells)
        line = line[0] if line else next(ln.strip() for ln in new.split("\n") if ln.strip())
        manifest[name] = {"exit": 1, "spec": spec, "words": words, "line": line, "forms": _forms(name)}
    (HERE / "cases.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
