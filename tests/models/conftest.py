"""Small synthetic data sets and a tiny trained artifact, so model tests run in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests import trained

WINDOW = 32


def synthetic_windows(n_normal: int, n_anomalous: int, length: int = WINDOW, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Normal windows are one smooth beat shape with small noise; anomalous ones have a spike and a shifted phase."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, length)
    normal = np.sin(t) + 0.05 * rng.standard_normal((n_normal, length))
    anomalous = np.sin(t + 1.5) + 0.05 * rng.standard_normal((n_anomalous, length))
    anomalous[:, length // 3] += 2.5
    windows = np.vstack([normal, anomalous])
    labels = np.concatenate([np.ones(n_normal), np.zeros(n_anomalous)])
    order = rng.permutation(len(labels))
    return windows[order], labels[order]


def write_csv(path: Path, windows: np.ndarray, labels: np.ndarray) -> Path:
    table = np.column_stack([windows, labels])
    path.write_text("\n".join(",".join(f"{v:.8g}" for v in row) for row in table) + "\n")
    return path


@pytest.fixture(scope="session")
def synthetic():
    """`synthetic(n_normal, n_anomalous, seed=0)`: windows and labels shaped like the tiny artifact's data."""
    return synthetic_windows


@pytest.fixture(scope="session")
def synthetic_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    windows, labels = synthetic_windows(300, 100)
    return write_csv(tmp_path_factory.mktemp("data") / "synthetic.csv", windows, labels)


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory, synthetic_csv: Path) -> Path:
    """A dense model trained for a few epochs on the synthetic set, saved as a real artifact (once per run)."""
    from anomstream.models import data
    from anomstream.models.train import TrainConfig

    config = TrainConfig(epochs=30, batch_size=32, learning_rate=1e-2)
    return trained.artifact(tmp_path_factory, "tiny", lambda: data.load(synthetic_csv), config)


@pytest.fixture
def make_csv(tmp_path: Path):
    """`make_csv(n_normal, n_anomalous, seed=0, name=...)` writes another synthetic file."""

    def make(n_normal: int, n_anomalous: int, seed: int = 0, name: str = "made.csv") -> Path:
        return write_csv(tmp_path / name, *synthetic_windows(n_normal, n_anomalous, seed=seed))

    return make
