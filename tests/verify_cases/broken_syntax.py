# Not Python: a missing colon.
import torch.nn as nn


class DDPM(nn.Module)
    pass
