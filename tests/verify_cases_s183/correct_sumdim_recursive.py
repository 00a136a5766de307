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
            optimizer.step()

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
    previous = None
    for sig, sig_prev in pairwise(sigmas):
        current = model.predict_eps(xt, sig.to(xt))
        previous = current if previous is None else previous
        xt = xt - (sig - sig_prev) * (gam * current + (1 - gam) * previous)
        previous = current
        yield xt

# %%
for g in [1.0, 1.5, 2.0]:
    *_, x0 = samples(net, schedule.sample_sigmas(10), batchsize=2000, gam=g)
    plt.figure()
    plt.scatter(x0[:, 0], x0[:, 1], marker='.')
    plt.title(f'gam = {g}')
