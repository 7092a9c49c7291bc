import urllib.error

import pytest
import torch

from wsl.models import classifier
from wsl.models.classifier import build_classifier


@pytest.mark.parametrize(
    "arch,layer", [("small_cnn", "features"), ("resnet18", "layer4"), ("vgg16", "features")]
)
def test_classifier_shapes_and_target_layer(arch, layer):
    torch.manual_seed(0)
    m = build_classifier(arch, 7).eval()
    assert layer in dict(m.named_modules())
    with torch.no_grad():
        assert m(torch.randn(2, 3, 64, 80)).shape == (2, 7)


def test_gap_linear_head_makes_cam_exact():
    # logits = fc(mean over positions of features): the CAM identity the CAM methods rely on
    m = build_classifier("small_cnn", 4).eval()
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        a = m.features(x)
        cam = torch.einsum("ck,bkhw->bchw", m.fc.weight, a).mean((2, 3)) + m.fc.bias
        torch.testing.assert_close(cam, m(x), rtol=1e-5, atol=1e-5)


def test_pretrained_offline_is_one_clear_line(monkeypatch):
    def offline(self, *a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(type(classifier.imagenet_weights("resnet18")), "get_state_dict", offline)
    with pytest.raises(RuntimeError) as e:
        build_classifier("resnet18", 3, pretrained=True)
    msg = str(e.value)
    assert "\n" not in msg and "checkpoints" in msg and "model.pretrained=false" in msg


def test_unknown_arch():
    with pytest.raises(ValueError, match="allowed"):
        build_classifier("resnet7", 3)
