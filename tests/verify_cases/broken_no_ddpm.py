# Follows no interface: the class has another name.
import torch.nn as nn


class Diffusion(nn.Module):
    def negative_elbo(self, x):
        return x.sum(1)
