"""Test-wide settings: torch runs single-threaded (small tensors; shared 2-core machines)."""

import torch

torch.set_num_threads(1)


from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _shared(name: str) -> Path:
    path = SHARED / name
    if not (path / "manifest.csv").is_file() and not path.is_dir():
        pytest.skip(f"shared data {path} absent")
    return path


@pytest.fixture
def vnncomp_dir() -> Path:
    """``../shared/vnncomp`` (fully connected VNN-COMP instances); skips when absent."""
    return _shared("vnncomp")


@pytest.fixture
def vnncomp_cnn_dir() -> Path:
    """``../shared/vnncomp_cnn`` (CNN / ResNet / pooling / sigmoid instances); skips when
    absent."""
    return _shared("vnncomp_cnn")
