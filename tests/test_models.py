import json

import pytest
import segmentation_models_pytorch as smp
import torch
from conftest import tiny_model, tiny_processor
from safetensors.torch import load_file
from transformers import SegformerForSemanticSegmentation

from trus_hf import TrusSegConfig, load_model
from trus_hf.models import TrusFPN, TrusSegformer


@pytest.mark.parametrize("arch", ["fpn", "segformer"])
@pytest.mark.parametrize("size", [(64, 64), (96, 64)])
def test_forward_backward_contract(arch, size):
    model = tiny_model(arch).train()
    x = torch.randn(2, 3, *size)
    labels = (torch.rand(2, *size) > 0.7).long()
    out = model(x, labels=labels)
    assert out.logits.shape == (2, 1, *size)
    assert out.loss.ndim == 0 and out.loss.item() > 0
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert model(x).loss is None


def test_fpn_input_size_error_is_helpful():
    with pytest.raises(RuntimeError, match="divisible by 32"):
        tiny_model("fpn")(torch.randn(1, 3, 70, 70))


@pytest.mark.parametrize("arch", ["fpn", "segformer"])
def test_save_load_round_trip_files_and_logits(arch, saved_models):
    path = saved_models[arch]
    assert {p.name for p in path.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "README.md",
    }
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["_trus_hf"]["architecture"] == arch
    model, proc = load_model(path)
    assert isinstance(model, TrusFPN if arch == "fpn" else TrusSegformer)
    assert proc.size == {"height": 64, "width": 64}
    x = torch.randn(1, 3, 64, 64)
    ref = tiny_model(arch)
    with torch.no_grad():
        assert torch.allclose(model(x).logits, ref(x).logits, atol=1e-5)


def test_plain_smp_loads_our_fpn_folder(saved_models):
    plain = smp.from_pretrained(str(saved_models["fpn"])).eval()
    ours, _ = load_model(saved_models["fpn"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(plain(x), ours(x).logits, atol=1e-5)


def test_plain_transformers_loads_our_segformer_folder(saved_models):
    plain = SegformerForSemanticSegmentation.from_pretrained(str(saved_models["segformer"])).eval()
    ours, _ = load_model(saved_models["segformer"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        up = torch.nn.functional.interpolate(
            plain(pixel_values=x).logits, size=(64, 64), mode="bilinear", align_corners=False
        )
        assert torch.allclose(up, ours(x).logits, atol=1e-5)


def test_fp16_weights_load_as_fp32(tmp_path):
    model = tiny_model("segformer")
    model.save_pretrained(tmp_path, processor=tiny_processor(), dtype=torch.float16)
    assert all(
        t.dtype == torch.float16
        for t in load_file(str(tmp_path / "model.safetensors")).values()
        if t.is_floating_point()
    )
    loaded, _ = load_model(tmp_path)
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x).logits, model(x).logits, atol=5e-2)


def test_unknown_architecture_and_config_errors(tmp_path, saved_models):
    with pytest.raises(ValueError, match="valid: fpn, segformer"):
        TrusSegConfig(architecture="unet")
    bad = tmp_path / "bad"
    bad.mkdir()
    cfg = json.loads((saved_models["fpn"] / "config.json").read_text())
    cfg["_trus_hf"]["architecture"] = "unet"
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unknown architecture 'unet'.*valid: fpn, segformer"):
        load_model(bad)
    with pytest.raises(ValueError, match="neither an existing folder nor a valid Hub model ID"):
        load_model("not a model id!")
    with pytest.raises(ValueError, match="no config.json"):
        load_model(tmp_path / "bad" / "..")


def test_pickle_weights_refused_unless_allowed(tmp_path, saved_models):
    folder = tmp_path / "pickled"
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (folder / name).write_bytes((saved_models["fpn"] / name).read_bytes())
    torch.save(load_file(str(saved_models["fpn"] / "model.safetensors")), folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="refusing to load pickle weights"):
        load_model(folder)
    model, _ = load_model(folder, allow_pickle=True)
    ref, _ = load_model(saved_models["fpn"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x).logits, ref(x).logits)


def test_mismatched_weights_are_a_clear_error(tmp_path, saved_models):
    folder = tmp_path / "mismatch"
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (folder / name).write_bytes((saved_models["segformer"] / name).read_bytes())
    (folder / "model.safetensors").write_bytes((saved_models["fpn"] / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="weights do not match"):
        load_model(folder)


def test_model_card_is_rendered(saved_models):
    card = (saved_models["fpn"] / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: trus-hf" in card and "pipeline_tag: image-segmentation" in card
    assert "not a medical device" in card and "resnet18" in card
