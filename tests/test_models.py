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


# ---------------------------------------------------------------------------------------------------------------------
# StackGAN stage II and SRCNN


def test_stage2_shapes_and_layout():
    from gan.models.stackgan import RES_BLOCKS, ResBlock, Stage2Generator, build_stage2

    torch.manual_seed(0)
    G2, D2 = build_stage2(nz=16, g_width=8, d_width=8)
    image, z = torch.rand(2, 3, 64, 64) * 2 - 1, torch.randn(2, 16, 1, 1)
    x = G2(image, z)
    assert x.shape == (2, 3, 128, 128) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(G2(image, z.view(2, 16)), x)  # flat z works too
    assert D2(x).shape == (2,) and D2.image_size == 128
    assert sum(isinstance(m, ResBlock) for m in G2.modules()) == RES_BLOCKS == 2
    assert G2.encode(image).shape == (2, 32, 16, 16)  # 4 * ngf channels at 16x16
    assert G2.join[0].in_channels == 32 + 16  # the encoded image and z, joined
    ups = [m for m in G2.decode if isinstance(m, nn.Upsample)]
    assert len(ups) == 3 and G2.decode[-2].in_channels == 4  # 16 -> 32 -> 64 -> 128, ngf/2 channels last
    assert isinstance(G2.decode[-1], nn.Tanh)
    # z reaches the output: a different z changes the image
    assert not torch.equal(G2(image, torch.randn(2, 16, 1, 1)), x)
    with pytest.raises(ValueError, match="even integer"):
        Stage2Generator(nz=16, ngf=7)


def test_stage2_init_is_the_dcgan_init():
    from gan.models.stackgan import build_stage2

    torch.manual_seed(0)
    G2, _ = build_stage2(nz=100, g_width=32, d_width=32)
    w = torch.cat([m.weight.flatten() for m in G2.modules() if isinstance(m, nn.Conv2d)])
    assert abs(w.mean()) < 1e-3 and abs(w.std() - 0.02) < 1e-3


def test_srcnn_is_9_1_5_and_starts_as_identity():
    from gan.models.srcnn import build_srcnn

    torch.manual_seed(0)
    sr = build_srcnn()
    convs = [m for m in sr.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [(3, 64, 9), (64, 32, 1), (32, 3, 5)]
    assert [type(m) for m in sr.net] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.Conv2d]
    x = torch.rand(2, 3, 40, 40) * 2 - 1
    assert torch.equal(sr(x), x)  # zero-initialised residual: the untrained network returns its (bicubic) input
    groups = sr.param_groups()
    assert [g["lr_scale"] for g in groups] == [1.0, 0.1]
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in sr.parameters())
    assert groups[1]["params"][0] is convs[-1].weight


def test_srcnn_receptive_field_is_13_pixels():
    from gan.models.srcnn import RECEPTIVE_FIELD, build_srcnn

    torch.manual_seed(0)
    sr = build_srcnn()
    nn.init.normal_(sr.net[-1].weight, 0, 0.1)  # a non-zero residual, so the input's influence shows
    x = (torch.rand(1, 3, 41, 41) * 2 - 1).requires_grad_()  # not zeros: ReLUs at exactly 0 pass no gradient
    sr(x)[0, :, 20, 20].sum().backward()  # which input pixels move output pixel (20, 20)?
    rows, cols = x.grad[0].abs().sum(0).nonzero(as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (14, 26, 14, 26)  # 13x13 around it
    assert RECEPTIVE_FIELD == 13
