# A correct DDPM written for MNIST only: it reshapes coefficients to (batch, 1, 1, 1) and sums over
# (C, H, W), so it runs on images (batch, C, H, W) but not on the toy data (batch, D).
import torch
import torch.nn as nn


class DDPM(nn.Module):
    def __init__(self, network, beta_1=1e-4, beta_T=2e-2, T=100):
        super(DDPM, self).__init__()
        self.network = network
        self.T = T
        self.beta = nn.Parameter(torch.linspace(beta_1, beta_T, T), requires_grad=False)
        self.alpha = nn.Parameter(1 - self.beta, requires_grad=False)
        self.alpha_cumprod = nn.Parameter(self.alpha.cumprod(dim=0), requires_grad=False)

    def negative_elbo(self, x):
        t = torch.randint(0, self.T, (x.shape[0], 1), device=x.device)
        eps = torch.randn_like(x)
        a = self.alpha_cumprod[t].view(-1, 1, 1, 1)
        x_t = torch.sqrt(a) * x + torch.sqrt(1 - a) * eps
        return (eps - self.network(x_t, (t + 1) / self.T)).square().sum(dim=(1, 2, 3))

    def sample(self, shape):
        x_t = torch.randn(shape).to(self.alpha.device)
        for t in range(self.T - 1, -1, -1):
            z = torch.randn_like(x_t) if t > 0 else 0
            t_enc = torch.full((shape[0], 1), (t + 1) / self.T)
            eps = self.network(x_t, t_enc)
            x_t = (x_t - self.beta[t] / torch.sqrt(1 - self.alpha_cumprod[t]) * eps) / torch.sqrt(self.alpha[t])
            x_t = x_t + torch.sqrt(self.beta[t]) * z
        return x_t

    def loss(self, x):
        return self.negative_elbo(x).mean()
