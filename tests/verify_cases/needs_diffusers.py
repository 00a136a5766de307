# A DDPM built on diffusers' DDPMScheduler (add_noise for q(x_t | x_0), step for Algorithm 2). Where
# diffusers is installed it is verified like any file; where it is not, the verifier can only run it with
# a stand-in for the package, so the honest answer is "cannot verify: needs diffusers" (exit 2), never a
# list of maths bugs computed by the stand-in.
import torch
import torch.nn as nn
from diffusers import DDPMScheduler


class DDPM(nn.Module):
    def __init__(self, network, beta_1=1e-4, beta_T=2e-2, T=100):
        super().__init__()
        self.network = network
        self.T = T
        self.scheduler = DDPMScheduler(num_train_timesteps=T, beta_start=beta_1, beta_end=beta_T,
                                       beta_schedule="linear", variance_type="fixed_large", clip_sample=False)

    def negative_elbo(self, x):
        t = torch.randint(0, self.T, (x.shape[0],), device=x.device)
        eps = torch.randn_like(x)
        x_t = self.scheduler.add_noise(x, eps, t)
        eps_theta = self.network(x_t, (t.float() / self.T).view(-1, 1))
        return ((eps - eps_theta) ** 2).flatten(1).sum(dim=1)

    def sample(self, shape):
        x = torch.randn(shape)
        for t in self.scheduler.timesteps:
            eps_theta = self.network(x, torch.full((shape[0], 1), float(t) / self.T))
            x = self.scheduler.step(eps_theta, t, x).prev_sample
        return x

    def loss(self, x):
        return self.negative_elbo(x).mean()
