# %% [markdown]
# # Diffusion on a 2D spiral
# My answers to questions 1-3.

# %%
!pip install -q torch accelerate smalldiffusion tqdm

# %%
import math
import torch
import torch.nn.functional as F
from torch import nn
from itertools import pairwise
from accelerate import Accelerator
from smalldiffusion import *
from tqdm import tqdm
import matplotlib.pyplot as plt
from IPython.display import HTML

# %%
%matplotlib inline
spiral = Swissroll(math.pi / 2, 5 * math.pi, 200)
loader = DataLoader(spiral, batch_size=2000)
schedule = ScheduleLogLinear(N=200, sigma_min=0.005, sigma_max=10)
plt.plot(schedule.sigmas)
plt.yscale('log')

# %%
class TinyEps(nn.Module, ModelMixin):
    def __init__(self, width=64):
        super().__init__()
        self.input_dims = (2,)
        self.body = nn.Sequential(nn.Linear(4, width), nn.GELU(), nn.Linear(width, 2))

    def forward(self, x, sigma, cond=None):
        emb = get_sigma_embeds(x.shape[0], sigma.squeeze())
        return self.body(torch.cat([x, emb], dim=1))


net = TinyEps()
schedule = ScheduleLogLinear(N=200, sigma_min=0.005, sigma_max=10)

# %% [markdown]
# ## Question 1: the loss

# %%
def add_noise(x0, sigma, eps):
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
            optimizer.step()

# %%
%%time
losses = list(training_loop(loader, net, schedule, epochs=20000))

# %% [markdown]
# ## Question 3: the accelerated sampler

# %%
def ddim_like_step(x, sigma_from, sigma_to, direction):
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
        yield xt

# %%
for g in [1.0, 1.5, 2.0]:
    *_, x0 = samples(net, schedule.sample_sigmas(10), batchsize=2000, gam=g)
    plt.figure()
    plt.scatter(x0[:, 0], x0[:, 1], marker='.')
    plt.title(f'gam = {g}')
