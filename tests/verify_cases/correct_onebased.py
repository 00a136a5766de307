# A correct DDPM in a different style: steps t = 1..T used consistently against the 0-based
# tensors, the raw step as the network's time, the step written through the predicted x_0 and the
# posterior mean of eq. 7, sigma^2 = beta_tilde, and a mean over dimensions. It also prints.
import torch
import torch.nn as nn

print("loading the one-based DDPM")


class DDPM(nn.Module):
    def __init__(self, network, beta_1=1e-4, beta_T=2e-2, T=100):
        super().__init__()
        self.network, self.T = network, T
        self.beta = nn.Parameter(torch.linspace(beta_1, beta_T, T), requires_grad=False)
        self.alpha = nn.Parameter(1 - self.beta, requires_grad=False)
        self.alpha_cumprod = nn.Parameter(self.alpha.cumprod(dim=0), requires_grad=False)

    def _abar(self, t):
        """alpha_bar at one-based step t; alpha_bar_0 = 1."""
        return torch.where(t > 0, self.alpha_cumprod[(t - 1).clamp(min=0)], torch.ones_like(self.alpha_cumprod[0]))

    def negative_elbo(self, x):
        t = torch.randint(1, self.T + 1, (x.shape[0], 1), device=x.device)
        abar = self._abar(t).reshape(-1, *[1] * (x.dim() - 1))
        eps = torch.randn_like(x)
        x_t = abar.sqrt() * x + (1 - abar).sqrt() * eps
        return ((eps - self.network(x_t, t.float())) ** 2).flatten(1).mean(1)

    def sample(self, shape):
        x = torch.randn(shape)
        for t in range(self.T, 0, -1):
            steps = torch.full((shape[0], 1), t)
            abar, abar_prev = self._abar(steps[:1, 0])[0], self._abar(steps[:1, 0] - 1)[0]
            beta = self.beta[t - 1]
            x0_pred = (x - (1 - abar).sqrt() * self.network(x, steps.float())) / abar.sqrt()
            mean = (abar_prev.sqrt() * beta * x0_pred + (1 - beta).sqrt() * (1 - abar_prev) * x) / (1 - abar)
            if t > 1:
                x = mean + ((1 - abar_prev) / (1 - abar) * beta).sqrt() * torch.randn_like(x)
            else:
                x = mean
        return x

    def loss(self, x):
        return self.negative_elbo(x).mean()
