"""RKMEImageSpecification and the ConvNet NNGP kernel: construction, math, JSON I/O, bad input."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lwm.spec import RKMEImageSpecification, convnet_nngp_kernel, generate_stat_spec, load_stat_spec
from lwm.spec.image import images_to_tensor, standardise_and_whiten

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from spec_fixture_data import blob_images

K = 4  # small reduced sets keep the NNGP work of these tests to seconds


def make_spec(X, **kwargs) -> RKMEImageSpecification:
    spec = RKMEImageSpecification(device="cpu")
    kwargs.setdefault("K", K)
    kwargs.setdefault("steps", 2)
    spec.generate_stat_spec_from_data(X, **kwargs)
    return spec


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return blob_images(16, seed=1)


@pytest.fixture(scope="module")
def spec_a(images) -> RKMEImageSpecification:
    return make_spec(images)


def naive_nngp(a: torch.Tensor, b: torch.Tensor, depth: int = 3) -> torch.Tensor:
    """cnn_gp's recursion written out pair by pair with conv2d and avg_pool2d."""
    import torch.nn.functional as F

    box = torch.full((1, 1, 3, 3), math.sqrt(2.0) / 9.0, dtype=a.dtype)
    out = torch.empty(a.shape[0], b.shape[0], dtype=a.dtype)
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            xy = (a[i] * b[j]).mean(0)[None, None]
            xx = (a[i] * a[i]).mean(0)[None, None]
            yy = (b[j] * b[j]).mean(0)[None, None]
            for _ in range(depth):
                xy, xx, yy = (F.conv2d(m, box, padding=1) + 0.1 for m in (xy, xx, yy))
                v = xx * yy
                theta = torch.acos((xy / v.sqrt()).clamp(-1, 1))
                xy = ((v - xy * xy).clamp_min(0).sqrt() + (math.pi - theta) * xy) / (2 * math.pi)
                xx, yy = xx / 2, yy / 2
                xy, xx, yy = (F.avg_pool2d(m, 2) for m in (xy, xx, yy))
            out[i, j] = xy.mean()
    return out


def test_nngp_kernel_matches_naive_recursion():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.normal(size=(3, 3, 32, 32)))
    b = torch.from_numpy(rng.normal(0.3, 0.5, size=(2, 3, 32, 32)))
    torch.testing.assert_close(convnet_nngp_kernel(a, b), naive_nngp(a, b), rtol=1e-10, atol=1e-12)
    gram = convnet_nngp_kernel(a, a)
    torch.testing.assert_close(gram, gram.T, rtol=1e-12, atol=1e-14)
    assert torch.linalg.eigvalsh(gram).min() > 0


def test_nngp_gradient_is_finite_where_inputs_coincide():
    z = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 3, 32, 32))).requires_grad_(True)
    convnet_nngp_kernel(z, z).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_nngp_gradient_matches_finite_difference():
    rng = np.random.default_rng(2)
    z = torch.from_numpy(rng.normal(size=(2, 3, 32, 32))).requires_grad_(True)
    x = torch.from_numpy(rng.normal(0.2, 0.8, size=(3, 3, 32, 32)))
    convnet_nngp_kernel(z, x).sum().backward()
    direction = torch.from_numpy(rng.normal(size=z.shape))
    eps = 1e-5
    with torch.no_grad():
        plus = convnet_nngp_kernel(z + eps * direction, x).sum()
        minus = convnet_nngp_kernel(z - eps * direction, x).sum()
    assert float((z.grad * direction).sum()) == pytest.approx(float(plus - minus) / (2 * eps), rel=1e-6)


def test_nngp_kernel_rejects_bad_shapes():
    with pytest.raises(ValueError, match="image batches"):
        convnet_nngp_kernel(torch.zeros(2, 3, 32, 32), torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="divisible"):
        convnet_nngp_kernel(torch.zeros(2, 3, 20, 20), torch.zeros(2, 3, 20, 20))


def test_shapes_and_fields(spec_a):
    assert spec_a.get_z().shape == (K, 3, 32, 32)
    beta = spec_a.get_beta()
    assert beta.shape == (K,) and np.all(beta >= 0)
    assert beta.sum() == pytest.approx(1.0, abs=1e-9)
    assert spec_a.num_points == 16
    assert spec_a.type == "RKMEImageSpecification"


def test_self_distance_and_separation(spec_a, images):
    assert abs(spec_a.dist(spec_a)) < 1e-10
    same_source = make_spec(blob_images(16, seed=1)[::-1].copy())
    other_source = make_spec(blob_images(16, seed=7))
    assert abs(spec_a.dist(same_source)) < 1e-10  # permuted images: same spec
    assert spec_a.dist(other_source) > 10 * abs(spec_a.dist(same_source))
    assert spec_a.dist(other_source, omit_term1=True) == pytest.approx(
        spec_a.dist(other_source) - spec_a.inner_prod(spec_a), abs=1e-12
    )


def test_fit_lowers_mmd_to_the_images(images):
    data = make_spec(images, reduce=False)
    unfitted = make_spec(images, steps=0)
    fitted = make_spec(images, steps=5)
    assert fitted.dist(data) <= unfitted.dist(data)
    assert fitted.dist(data) < 0.05 * data.inner_prod(data)


def test_stability(images, spec_a):
    again = make_spec(images)
    np.testing.assert_array_equal(again.get_z(), spec_a.get_z())
    np.testing.assert_array_equal(again.get_beta(), spec_a.get_beta())


def test_resize_and_input_types(images):
    small = torch.nn.functional.interpolate(torch.from_numpy(images), size=(20, 20), mode="bilinear")
    spec = make_spec(small.numpy(), steps=0)
    assert spec.get_z().shape == (K, 3, 32, 32)
    assert abs(spec.dist(make_spec(small, steps=0))) < 1e-10
    with pytest.raises(ValueError, match="resize=True"):
        make_spec(small.numpy(), resize=False)


def test_grayscale_images_skip_whitening():
    gray = blob_images(12, seed=3)[:, :1]
    spec = make_spec(gray, steps=1)
    assert spec.get_z().shape == (K, 1, 32, 32)
    standardised = standardise_and_whiten(images_to_tensor(gray))
    assert float(standardised.mean()) == pytest.approx(0.0, abs=1e-5)


def test_whitening_flattens_the_spectrum():
    """ZCA with (cov + r I)^(-1/2): whitened second moments are lambda / (lambda + r), all below 1."""
    white = standardise_and_whiten(images_to_tensor(blob_images(64, seed=4))).reshape(64, -1).double()
    eig = torch.linalg.eigvalsh(white @ white.T / 64)
    assert float(eig.max()) < 1.0
    assert float(eig[-5:].min()) > 0.5  # the strong directions are scaled to about 1


def test_nan_pixels_filled_with_image_mean(images):
    with_nan = images.copy()
    with_nan[2, 0, 5, 5] = np.nan
    with_nan[3, 1, 0, 0] = np.inf
    tensor = images_to_tensor(with_nan)
    assert torch.isfinite(tensor).all()
    finite = np.delete(images[2].reshape(-1), 5 * 32 + 5)
    assert float(tensor[2, 0, 5, 5]) == pytest.approx(float(finite.mean()), rel=1e-5)


@pytest.mark.parametrize(
    "X, message",
    [
        (np.ones((4, 32, 32)), "shape \\(N, C, H, W\\)"),
        (np.ones((0, 3, 32, 32)), "at least one"),
        (np.stack([np.ones((3, 8, 8)), np.full((3, 8, 8), np.nan)]), "no finite pixel"),
        (np.array([[["a"]]]), "numeric"),
    ],
)
def test_bad_input_raises_clear_error(X, message):
    with pytest.raises(ValueError, match=message):
        make_spec(X)


def test_json_round_trip_with_reference_keys(tmp_path, spec_a):
    other = make_spec(blob_images(16, seed=7), steps=0)
    path = tmp_path / "image.json"
    spec_a.save(path)
    raw = json.loads(path.read_text())
    assert list(raw) == ["RKME_IMAGE_VERSION", "msg", "z", "beta", "n_models", "model_config", "type", "num_points"]
    loaded = RKMEImageSpecification(device="cpu")
    assert loaded.load(path) is True
    assert loaded.dist(other) == pytest.approx(spec_a.dist(other), rel=1e-6)
    from_any = load_stat_spec(path)
    assert isinstance(from_any, RKMEImageSpecification) and from_any.num_points == 16


def test_generate_stat_spec_image_dispatch(images):
    spec = generate_stat_spec("image", X=images, K=3, steps=0, cuda_idx=-1)
    assert isinstance(spec, RKMEImageSpecification)
    assert spec.get_z().shape == (3, 3, 32, 32)


def test_herding_draws_from_the_reduced_set(spec_a):
    samples = spec_a.herding(6, random_state=0)
    assert samples.shape == (6, 3, 32, 32)
    nearest = np.abs(samples[:, None] - spec_a.get_z()[None]).reshape(6, K, -1).max(-1).min(1)
    assert np.all(nearest < 0.1)


def test_from_dict_rejects_bad_z(spec_a):
    d = spec_a.to_dict()
    d["z"] = d["z"][0]
    with pytest.raises(ValueError, match="shape \\(K, C, H, W\\)"):
        RKMEImageSpecification.from_dict(d)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu(images, spec_a):
    gpu = RKMEImageSpecification(device="cuda")
    gpu.generate_stat_spec_from_data(images, K=K, steps=2)
    assert gpu.dist(spec_a) == pytest.approx(spec_a.dist(gpu), abs=1e-6)
    assert abs(spec_a.dist(gpu)) < 1e-3 * spec_a.inner_prod(spec_a)


@pytest.mark.parametrize("channels", [1, 3])
def test_one_image_makes_a_spec(channels: int) -> None:
    """As the reference: one image (any size, resized to 32x32) is a specification of one point."""
    image = torch.rand((1, channels, 64, 64), generator=torch.Generator().manual_seed(channels))
    spec = generate_stat_spec("image", X=image, steps=2)
    assert spec.get_z().shape == (1, channels, 32, 32) and np.isfinite(spec.get_z()).all()
    np.testing.assert_array_equal(spec.get_beta(), [1.0])
    assert spec.dist(spec) == pytest.approx(0.0, abs=1e-9)


def test_constant_images_are_not_whitened_into_nans() -> None:
    whitened = standardise_and_whiten(torch.full((2, 3, 32, 32), 0.5))
    assert torch.isfinite(whitened).all()
