import numpy as np
import pytest
import torch

from conftest import load_manifest
from mots_ros.segmentation import SpatialEmbeddingNet
from mots_ros.segmentation.network import BN_EPS, infer_num_classes, infer_width
from mots_ros.segmenters.spatial_embedding import pad_image, to_network_input


def test_state_dict_matches_official_manifest_key_for_key():
    model = SpatialEmbeddingNet(num_classes=(4, 1), width=1.0)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == load_manifest("se_car_state_dict.json")
    assert sum(p.numel() for p in model.parameters()) == 2_252_838  # spec §2.3


def test_every_batchnorm_uses_eps_1e3():
    norms = [m for m in SpatialEmbeddingNet().modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 49 and all(m.eps == BN_EPS == 1e-3 for m in norms)


@pytest.mark.parametrize("width", [0.5, 0.25])
def test_lite_widths_keep_the_layer_structure(width):
    full, lite = SpatialEmbeddingNet().state_dict(), SpatialEmbeddingNet(width=width).state_dict()
    assert list(full) == list(lite)
    assert infer_width(lite) == width and infer_num_classes(lite) == (4, 1)
    assert sum(v.numel() for v in lite.values()) < sum(v.numel() for v in full.values()) * width


def test_forward_returns_five_raw_channels_at_input_size():
    model = SpatialEmbeddingNet(width=0.25).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 48, 80))
    assert out.shape == (2, 5, 48, 80)


def test_encoder_output_conv_is_not_used_in_forward():
    torch.manual_seed(0)
    model = SpatialEmbeddingNet(width=0.25).eval()
    x = torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        before = model(x)
        model.encoder.output_conv.weight.fill_(1e6)
        after = model(x)
    assert torch.equal(before, after)


def test_decoder_outputs_are_concatenated_in_order():
    torch.manual_seed(0)
    model = SpatialEmbeddingNet(width=0.25).eval()
    x = torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        features = model.encoder(x)
        expected = torch.cat([model.decoders[0](features), model.decoders[1](features)], 1)
        assert torch.equal(model(x), expected)


def test_downsampler_concatenates_conv_then_pool():
    block = SpatialEmbeddingNet(width=1.0).encoder.initial_block.eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        block.bn.weight.fill_(1.0), block.bn.bias.zero_(), block.bn.running_mean.zero_(), block.bn.running_var.fill_(1.0 - 1e-3)
        out = block(x)
        expected = torch.relu(torch.cat([block.conv(x), torch.nn.functional.max_pool2d(x, 2)], 1))
    torch.testing.assert_close(out, expected)


def test_init_output_zeroes_offsets_and_sets_sigma_bias():
    model = SpatialEmbeddingNet(width=0.25)
    model.init_output()
    conv = model.decoders[0].output_conv
    assert torch.all(conv.weight[:, 0:4] == 0)
    assert torch.equal(conv.bias, torch.tensor([0.0, 0.0, 1.0, 1.0]))


def test_preprocessing_is_rgb_over_255_with_edge_padding():
    image = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    x = to_network_input(image, 8, 8)
    assert x.shape == (1, 3, 8, 8) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, :, :5, :7], image.transpose(2, 0, 1) / np.float32(255.0))
    np.testing.assert_array_equal(x[0, :, 7, :7], x[0, :, 4, :7])  # bottom rows repeat the last row
    np.testing.assert_array_equal(x[0, :, :, 7], x[0, :, :, 6])  # right columns repeat the last column
    assert pad_image(image, 5, 7) is image


def test_width_must_be_positive():
    with pytest.raises(ValueError, match="width"):
        SpatialEmbeddingNet(width=0)
