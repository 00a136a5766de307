"""The DDPM of Ho et al. (2020): a beta schedule, its alpha_bar, and the chain it defines [Ho20].

x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps at the paper's t = 1..T: the schedule, the forward
process, the posterior, the loss and the bound, Algorithm 2 and its fast path.
"""
