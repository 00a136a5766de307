# %% [markdown]
# # Diffusion on a 2D spiral
# My answers to questions 1-3.

# %%
!pip install -q torch accelerate smalldiffusion tqdm

# %%
import numpy as np
import torch
import matplotlib.pyplot as plt
from itertools import pairwise
from typing import Optional
from accelerate import Accelerator
from torch.nn.functional import mse_loss
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from smalldiffusion import ScheduleLogLinear, Swissroll, TimeInputMLP, Schedule, training_loop, samples

# %%
%matplotlib inline
spiral = Swissroll(np.pi / 2, 5 * np.pi, 200)
loader = DataLoader(spiral, batch_size=2000)
schedule = ScheduleLogLinear(N=200, sigma_min=0.005, sigma_max=10)
plt.plot(schedule.sigmas)
plt.yscale('log')

# %%
net = TimeInputMLP(hidden_dims=(16, 128, 128, 128, 128, 16))
print(net)

# %% [markdown]
# ## Question 1: the loss

# %%
def training_loop(loader, model, schedule, epochs=10000, lr=1e-3):
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
            opt.step()

# %%
%%time
losses = list(training_loop(loader, net, schedule, epochs=20000))

# %% [markdown]
# ## Question 3: the accelerated sampler

# %%
@torch.no_grad()
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
        yield xt

# %%
for g in [1.0, 1.5, 2.0]:
    *_, x0 = samples(net, schedule.sample_sigmas(10), batchsize=2000, gam=g)
    plt.figure()
    plt.scatter(x0[:, 0], x0[:, 1], marker='.')
    plt.title(f'gam = {g}')
