# A correct 02460 solution that draws every random number from a torch.Generator of its own: the verifier
# cannot replay its draws, so the honest answer is "cannot verify this file's randomness" (exit 2), not a fail.
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm
import ToyData  # noqa: F401


class DDPM(nn.Module):
    def __init__(self, network, beta_1=1e-4, beta_T=2e-2, T=100):
        super(DDPM, self).__init__()
        self.network = network
        self.beta_1 = beta_1
        self.beta_T = beta_T
        self.T = T
        self.generator = torch.Generator().manual_seed(1234)

        self.beta = nn.Parameter(torch.linspace(beta_1, beta_T, T), requires_grad=False)
        self.alpha = nn.Parameter(1 - self.beta, requires_grad=False)
        self.alpha_cumprod = nn.Parameter(self.alpha.cumprod(dim=0), requires_grad=False)

    def negative_elbo(self, x):
        batch_size = x.shape[0]
        t = torch.randint(0, self.T, (batch_size,), device=x.device, generator=self.generator)
        epsilon = torch.randn(x.shape, generator=self.generator)
        alpha_cumprod_t = self.alpha_cumprod[t].view(-1, *([1] * (x.dim() - 1)))
        x_t = torch.sqrt(alpha_cumprod_t) * x + torch.sqrt(1 - alpha_cumprod_t) * epsilon
        t_normalized = (t.float() / self.T).view(-1, 1)
        epsilon_theta = self.network(x_t, t_normalized)
        neg_elbo = F.mse_loss(epsilon_theta, epsilon, reduction='none')
        return neg_elbo.flatten(1).sum(dim=1)

    def sample(self, shape):
        x_t = torch.randn(shape, generator=self.generator)
        batch_size = shape[0]
        for t_step in tqdm(range(self.T - 1, -1, -1)):
            if t_step > 0:
                z = torch.randn(x_t.shape, generator=self.generator)
            else:
                z = torch.zeros_like(x_t)
            t_normalized = torch.full((batch_size, 1), t_step, device=x_t.device, dtype=torch.float32) / self.T
            epsilon_theta = self.network(x_t, t_normalized)
            alpha_t = self.alpha[t_step]
            beta_t = self.beta[t_step]
            alpha_cumprod_t = self.alpha_cumprod[t_step]
            mean = (1.0 / torch.sqrt(alpha_t)) * (x_t - (beta_t / torch.sqrt(1.0 - alpha_cumprod_t)) * epsilon_theta)
            x_t = mean + torch.sqrt(beta_t) * z
        return x_t

    def loss(self, x):
        return self.negative_elbo(x).mean()


class FcNetwork(nn.Module):
    def __init__(self, input_dim, num_hidden):
        super(FcNetwork, self).__init__()
        self.network = nn.Sequential(nn.Linear(input_dim + 1, num_hidden), nn.ReLU(),
                                     nn.Linear(num_hidden, num_hidden), nn.ReLU(),
                                     nn.Linear(num_hidden, input_dim))

    def forward(self, x, t):
        return self.network(torch.cat([x, t], dim=1))


if __name__ == "__main__":
    from torchvision import datasets  # noqa: F401
    raise SystemExit("training is not part of this example")
