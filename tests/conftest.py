"""Test-wide settings: torch runs single-threaded (small tensors; shared 2-core machines)."""

import torch

torch.set_num_threads(1)
