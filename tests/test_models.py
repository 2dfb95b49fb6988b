"""DCGAN shapes, layer layout and the paper's initialisation."""

import pytest
import torch
import torch.nn as nn

from gan.models.dcgan import Discriminator, Generator, build_dcgan


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes(size):
    G, D = build_dcgan(size, nz=100, g_width=8, d_width=8)
    z = torch.randn(3, 100, 1, 1)
    x = G(z)
    assert x.shape == (3, 3, size, size)
    assert x.min() >= -1 and x.max() <= 1  # Tanh output
    assert G(z.view(3, 100)).shape == x.shape  # flat z works too
    assert D(x).shape == (3,)  # one logit per image


@pytest.mark.parametrize("size,blocks", [(32, 2), (64, 3), (128, 4)])
def test_block_count_and_widths(size, blocks):
    G, D = Generator(size, 100, ngf=8), Discriminator(size, ndf=8)
    g_convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    d_convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert len(g_convs) == len(d_convs) == blocks + 2  # 4x4 projection + hidden blocks + output layer
    assert g_convs[0].out_channels == 8 * 2 ** blocks and g_convs[-2].out_channels == 8  # widest at 4x4, ngf last
    assert d_convs[0].out_channels == 8 and d_convs[-2].out_channels == 8 * 2 ** blocks
    assert not isinstance(D.net[1], nn.BatchNorm2d)  # no BN right after D's first conv
    assert isinstance(D.net[1], nn.LeakyReLU) and D.net[1].negative_slope == 0.2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in D.modules()) == blocks
    assert sum(isinstance(m, nn.BatchNorm2d) for m in G.modules()) == blocks + 1
    assert isinstance(G.net[-1], nn.Tanh)


def test_bad_size():
    with pytest.raises(ValueError, match="power of two"):
        Generator(48)


def test_init_statistics():
    torch.manual_seed(0)
    G, D = build_dcgan(64, nz=100, g_width=32, d_width=32)
    for model in (G, D):
        w = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
        assert abs(w.mean()) < 1e-3 and abs(w.std() - 0.02) < 1e-3  # N(0, 0.02)
        bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        gamma = torch.cat([m.weight for m in bn])
        assert abs(gamma.mean() - 1) < 5e-3 and abs(gamma.std() - 0.02) < 5e-3  # N(1, 0.02)
        assert all(torch.count_nonzero(m.bias) == 0 for m in bn)
        assert all(m.bias is None for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


def test_init_is_seeded():
    torch.manual_seed(1)
    a = build_dcgan(32, 100, 8, 8)[0].state_dict()
    torch.manual_seed(1)
    b = build_dcgan(32, 100, 8, 8)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
