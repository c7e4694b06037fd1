import numpy as np
import pytest

from trus_hf.augment import build_augmentations
from trus_hf.synthetic import generate_phantom


def _draws(strength, n=40):
    ph = generate_phantom(3, (128, 128), "clean")
    x = ph.image.astype(np.float32) / 255
    y = np.stack([ph.gland_mask, ph.lesion_mask], axis=-1).astype(np.uint8)
    aug = build_augmentations(seed=0, strength=strength)
    return x, y, [aug(image=x, mask=y) for _ in range(n)]


def test_stronger_augmentation_widens_gain_and_zoom_and_keeps_masks_binary():
    x, y, mild = _draws(1.0)
    _, _, strong = _draws(2.0)
    for outs in (mild, strong):
        for o in outs:
            assert o["image"].shape == x.shape and o["mask"].shape == y.shape
            assert set(np.unique(o["mask"])) <= {0, 1}

    def spread(outs, f):
        return np.std([f(o) for o in outs])

    brightness = lambda o: float(o["image"].mean())  # noqa: E731
    gland_area = lambda o: float(o["mask"][..., 0].mean())  # noqa: E731
    assert spread(strong, brightness) > 1.3 * spread(mild, brightness)
    assert spread(strong, gland_area) > 1.3 * spread(mild, gland_area)
    # the gland moves with the image: its area stays within what zoom (0.8-1.2 at strength 2) and elastic allow
    areas = np.array([gland_area(o) for o in strong]) / y[..., 0].mean()
    assert areas.min() > 0.5 and areas.max() < 1.7


def test_augmentation_strength_must_be_positive():
    with pytest.raises(ValueError, match="strength must be positive, got 0"):
        build_augmentations(strength=0)
