import json

import numpy as np
import onnx
import pytest
import torch

from trus_hf import SegmentationPipeline, load_model
from trus_hf.cli import main
from trus_hf.metrics import binary_metrics
from trus_hf.models.onnx_runtime import OnnxSegmentationModel
from trus_hf.synthetic import generate_phantom


@pytest.fixture(scope="module")
def exported(saved_models, tmp_path_factory):
    out = {}
    for arch in ("fpn", "segformer"):
        path = tmp_path_factory.mktemp(f"onnx_{arch}")
        assert (
            main(
                [
                    "export-onnx",
                    "--model",
                    str(saved_models[arch]),
                    "--out",
                    str(path),
                    "--int8",
                    "--calibration-size",
                    "4",
                ]
            )
            == 0
        )
        out[arch] = path
    return out


@pytest.mark.parametrize("arch", ["fpn", "segformer"])
def test_export_is_self_contained_checked_and_dynamic(arch, exported):
    folder = exported[arch]
    assert {"model.onnx", "model_int8.onnx", "config.json", "preprocessor_config.json", "README.md", "parity.json"} <= {
        p.name for p in folder.iterdir()
    }
    proto = onnx.load(str(folder / "model.onnx"))
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, False, True, True]  # batch, H, W dynamic
    parity = json.loads((folder / "parity.json").read_text())["parity"]
    assert parity["max_abs_logit_diff"] <= 1e-3 and parity["min_mask_iou_agreement"] >= 0.999


@pytest.mark.parametrize("arch", ["fpn", "segformer"])
def test_onnx_backend_matches_pytorch_through_the_pipeline(arch, exported, saved_models):
    onnx_model, proc = load_model(exported[arch], backend="onnx")
    assert isinstance(onnx_model, OnnxSegmentationModel)
    torch_model, _ = load_model(saved_models[arch])
    frames = [generate_phantom(s, size).image for s, size in ((1, (301, 397)), (2, (250, 250)), (3, (100, 77)))]
    batch = proc(frames)
    with torch.inference_mode():
        ref = torch_model(batch["pixel_values"]).logits
    got = onnx_model(batch["pixel_values"]).logits
    assert float((ref - got).abs().max()) <= 1e-3
    odd = torch.randn(2, 3, 96, 128)  # another batch and canvas size
    with torch.inference_mode():
        assert float((torch_model(odd).logits - onnx_model(odd).logits).abs().max()) <= 1e-3
    pipe_onnx = SegmentationPipeline.from_pretrained(exported[arch], backend="onnx")
    pipe_torch = SegmentationPipeline(torch_model, proc)
    assert pipe_onnx.backend == "onnx"
    for a, b in zip(pipe_onnx(frames), pipe_torch(frames)):
        assert binary_metrics(a.mask, b.mask)["iou"] >= 0.999


def test_int8_model_runs_and_is_smaller(exported):
    fp32 = exported["fpn"] / "model.onnx"
    int8 = exported["fpn"] / "model_int8.onnx"
    assert int8.stat().st_size < 0.4 * fp32.stat().st_size
    proto = onnx.load(str(int8))
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    assert not any(n.op_type == "ConvInteger" for n in proto.graph.node)  # static QDQ, not dynamic quantization
    model, proc = load_model(exported["fpn"], backend="onnx", onnx_file="model_int8.onnx")
    x = proc(generate_phantom(0, (128, 128)).image)["pixel_values"]
    assert np.isfinite(model(x).logits.numpy()).all()


def test_onnx_only_folder_loads_with_default_backend(exported, tmp_path):
    folder = tmp_path / "only_onnx"
    folder.mkdir()
    for name in ("model.onnx", "config.json", "preprocessor_config.json"):
        (folder / name).write_bytes((exported["segformer"] / name).read_bytes())
    model, _ = load_model(folder)
    assert isinstance(model, OnnxSegmentationModel)
    with pytest.raises(ValueError, match="no missing.onnx"):
        load_model(folder, backend="onnx", onnx_file="missing.onnx")
