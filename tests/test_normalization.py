import torch

from gns.normalization import Normalizer, OnlineNormalizer, inflate_std


def test_normalizer_round_trip_and_formula():
    norm = Normalizer([1.0, -2.0], [0.5, 3.0])
    x = torch.randn(100, 2)
    assert torch.allclose(norm.denormalize(norm.normalize(x)), x, atol=1e-6)
    assert torch.allclose(norm.normalize(x), (x - torch.tensor([1.0, -2.0])) / torch.tensor([0.5, 3.0]))


def test_inflated_std_matches_gns_formula():
    std = torch.tensor([1e-3, 2e-3])
    assert torch.allclose(inflate_std(std, 6.7e-4), torch.sqrt(std**2 + 6.7e-4**2))


def test_online_normalizer_matches_batch_statistics_and_freezes():
    torch.manual_seed(0)
    data = torch.randn(1000, 3) * torch.tensor([2.0, 0.1, 5.0]) + torch.tensor([1.0, 2.0, -3.0])
    norm = OnlineNormalizer(3, max_accumulations=10)
    for chunk in data.split(100):
        norm.normalize(chunk, accumulate=True)
    assert torch.allclose(norm.mean, data.mean(0), atol=1e-5)
    assert torch.allclose(norm.std, data.std(0, unbiased=False), rtol=1e-4)
    frozen = norm.mean.clone()
    norm.normalize(torch.full((10, 3), 100.0), accumulate=True)  # 11th batch: ignored
    assert torch.equal(norm.mean, frozen)
    x = torch.randn(20, 3)
    assert torch.allclose(norm.denormalize(norm.normalize(x)), x, atol=1e-5)


def test_online_normalizer_constant_feature_is_finite():
    norm = OnlineNormalizer(2)
    norm.accumulate(torch.ones(10, 2))
    assert torch.isfinite(norm.normalize(torch.ones(3, 2))).all()
