"""A really trained (if tiny) dehazing model for the quantization tests.

``python tests/quantize/tiny_aod.py`` retrains it (seeded, about a minute on 2 cores) on
synthetic haze over scikit-image's CC0 photos and rewrites data/tiny_aod.safetensors (2 KB).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from edgeglocal.evaluation import synthetic

TRAIN_PHOTOS = ["astronaut", "chelsea", "coffee", "rocket"]


class TinyAOD(torch.nn.Module):
    """AOD-Net (Li et al., 2017): estimate K(x), output K*x - K + 1. Five small convs."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 3, 1)
        self.c2 = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.c3 = torch.nn.Conv2d(6, 3, 5, padding=2)
        self.c4 = torch.nn.Conv2d(6, 3, 7, padding=3)
        self.c5 = torch.nn.Conv2d(12, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = torch.relu(self.c1(x))
        x2 = torch.relu(self.c2(x1))
        x3 = torch.relu(self.c3(torch.cat([x1, x2], 1)))
        x4 = torch.relu(self.c4(torch.cat([x2, x3], 1)))
        k = torch.relu(self.c5(torch.cat([x1, x2, x3, x4], 1)))
        return torch.clamp(k * x - k + 1, 0, 1)


def photos(names: list[str]) -> list[np.ndarray]:
    """scikit-image's bundled photos as BGR uint8."""
    from skimage import data

    return [cv2.cvtColor(getattr(data, n)(), cv2.COLOR_RGB2BGR) for n in names]


def to_tensor(bgr: list[np.ndarray]) -> torch.Tensor:
    rgb = np.stack([b[..., ::-1] / 255.0 for b in bgr]).transpose(0, 3, 1, 2)
    return torch.tensor(rgb.copy(), dtype=torch.float32)


def train(steps: int = 300, seed: int = 0) -> TinyAOD:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images = photos(TRAIN_PHOTOS)
    model = TinyAOD()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(steps):
        clean, hazy = [], []
        for _ in range(8):
            img = images[rng.integers(len(images))]
            y, x = rng.integers(0, img.shape[0] - 192), rng.integers(0, img.shape[1] - 192)
            crop = cv2.resize(img[y:y + 192, x:x + 192], (96, 96), interpolation=cv2.INTER_AREA)
            clean.append(crop)
            hazy.append(synthetic.haze(crop, rng)[0])
        loss = torch.mean((model(to_tensor(hazy)) - to_tensor(clean)) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


if __name__ == "__main__":
    from safetensors.torch import save_file

    out = Path(__file__).parent / "data" / "tiny_aod.safetensors"
    save_file(train().state_dict(), str(out))
    print(f"wrote {out}")
