"""The zoo's architectures match torchvision's (parameter counts and names), build deterministically, run."""

import pytest
import torch

from edgefit import models
from edgefit.errors import UserError

# Parameter counts of torchvision's models (torchvision.models.*().parameters()).
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032, "mobilenet_v2": 3_504_872}


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_parameter_counts_equal_torchvision(name: str) -> None:
    m = models.create(name)
    assert sum(p.numel() for p in m.parameters()) == TORCHVISION_PARAMS[name]
    assert not m.training


def test_resnet_state_dict_names_and_shapes() -> None:
    sd = models.create("resnet50").state_dict()
    assert len(sd) == 320  # torchvision's resnet50 state dict has 320 entries
    assert sd["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd["layer1.0.conv1.weight"].shape == (64, 64, 1, 1)
    assert sd["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert sd["layer1.0.downsample.1.running_var"].shape == (256,)
    assert sd["layer3.5.bn3.num_batches_tracked"].shape == ()
    assert sd["fc.weight"].shape == (1000, 2048)
    sd18 = models.create("resnet18").state_dict()
    assert len(sd18) == 122
    assert sd18["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert "layer1.0.downsample.0.weight" not in sd18  # BasicBlock stage 1 keeps the identity shortcut
    assert sd18["fc.weight"].shape == (1000, 512)


def test_mobilenet_v2_state_dict_names_and_shapes() -> None:
    sd = models.create("mobilenet_v2").state_dict()
    assert len(sd) == 314
    assert sd["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert sd["features.1.conv.0.0.weight"].shape == (32, 1, 3, 3)  # depthwise
    assert sd["features.1.conv.1.weight"].shape == (16, 32, 1, 1)
    assert sd["features.2.conv.0.0.weight"].shape == (96, 16, 1, 1)
    assert sd["features.2.conv.3.running_mean"].shape == (24,)
    assert sd["features.18.0.weight"].shape == (1280, 320, 1, 1)
    assert sd["classifier.1.weight"].shape == (1000, 1280)


def test_seeded_init_is_deterministic_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(7)
    before = torch.get_rng_state()
    a, b = models.create("resnet18", seed=3), models.create("resnet18", seed=3)
    c = models.create("resnet18", seed=4)
    assert torch.equal(torch.get_rng_state(), before)
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_forward_shapes_and_example_inputs() -> None:
    assert models.example_input("resnet18", batch=2).shape == (2, 3, 224, 224)
    assert torch.equal(models.example_input("mobilenet_v2"), models.example_input("mobilenet_v2"))
    x = models.example_input("digits_cnn", batch=3)
    assert x.shape == (3, 1, 8, 8) and 0 <= float(x.min()) and float(x.max()) <= 1
    with torch.no_grad():
        assert models.create("digits_cnn")(x).shape == (3, 10)
        assert models.create("mobilenet_v2")(models.example_input("mobilenet_v2")).shape == (1, 1000)
        assert models.create("resnet18", num_classes=7)(models.example_input("resnet18")).shape == (1, 7)


def test_digits_cnn_named_stages() -> None:
    m = models.create("digits_cnn")
    names = dict(m.named_modules())
    assert {"features.0", "features.1", "features.2", "features.3", "pool", "classifier"} <= set(names)
    x = models.example_input("digits_cnn")
    with torch.no_grad():
        y = m.features[:2](x)
        assert y.shape == (1, 32, 8, 8)
        assert m.features[:3](x).shape == (1, 32, 4, 4)
        assert m.features(x).shape == (1, 64, 4, 4)


def test_zoo_names_and_typos() -> None:
    assert models.ZOO == ("resnet18", "resnet50", "mobilenet_v2", "bottlefit_resnet50", "digits_cnn")
    with pytest.raises(UserError, match=r"did you mean 'resnet50'.*valid names: resnet18"):
        models.create("resnet5O")
    with pytest.raises(UserError, match="unknown zoo model"):
        models.example_input("vgg16")
    with pytest.raises(UserError, match=r"does not take option.*widht"):
        models.create("digits_cnn", widht=2)
