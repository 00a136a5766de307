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
def moving_average(x, w):
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
            eps = torch.rand_like(x0)
            loss = mse_loss(model(x0 + sigma * eps, sigma), eps)
            yield loss.item()
            accelerator.backward(loss)
            optimizer.step()

losses = list(training_loop(loader, net, schedule, epochs=20000, lr=1e-3))
plt.plot(moving_average(losses, 100))

# %%
%%time
losses = list(training_loop(loader, net, schedule, epochs=20000))

# %% [markdown]
# ## Question 3: the accelerated sampler

# %%
@torch.no_grad()
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
plt.scatter(x0[:, 0], x0[:, 1], marker='.')

# %%
for g in [1.0, 1.5, 2.0]:
    *_, x0 = samples(net, schedule.sample_sigmas(10), batchsize=2000, gam=g)
    plt.figure()
    plt.scatter(x0[:, 0], x0[:, 1], marker='.')
    plt.title(f'gam = {g}')
