import copy
import json
import time

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from transformers import SegformerForSemanticSegmentation

from trus_hf import SegmentationPipeline, export, load_model, onnx_graph
from trus_hf.cli import main
from trus_hf.export import INT8_AGREEMENT_TARGET, INT8_MAX_TIME_RATIO
from trus_hf.metrics import binary_metrics
from trus_hf.models.onnx_runtime import OnnxSegmentationModel
from trus_hf.models.segformer import FoldedSegformer
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
    onnx_model, proc = load_model(exported[arch], backend="onnx", onnx_file="model.onnx")  # fp32, not INT8
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
    pipe_onnx = SegmentationPipeline(onnx_model, proc)
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


def test_int8_report_decides_the_preferred_file(exported):
    info = json.loads((exported["fpn"] / "parity.json").read_text())
    q = info["int8"]
    assert q["frames"] == 24 and set(q["labels"]) == {"lesion"} and 0 <= q["min"] <= q["mean"] <= 1
    assert q["fp32_ms"] > 0 and q["int8_ms"] > 0 and q["settings"]["exclude"] == "ends"
    qualifies = q["mean"] >= INT8_AGREEMENT_TARGET and q["time_ratio"] <= INT8_MAX_TIME_RATIO
    assert info["preferred"] == ("model_int8.onnx" if qualifies else "model.onnx")
    model, _ = load_model(exported["fpn"], backend="onnx")
    assert model.path.name == info["preferred"]


def test_int8_runtime_setting_is_measured_recorded_and_applied(exported):
    folder = exported["fpn"]  # resnet18: its MaxPool is where QDQ propagation matters
    info = json.loads((folder / "parity.json").read_text())
    ms = info["int8"]["qdq_propagation_ms"]  # the measurement in the report, the decision once, under "runtime"
    assert ms["on"] > 0 and ms["off"] > 0
    recorded = info.get("runtime", {}).get("model_int8.onnx", {}).get("disabled_optimizers", [])
    assert recorded == (list(export.QDQ_PROPAGATION) if ms["off"] < ms["on"] else [])
    assert "runtime" not in info["int8"]
    model, proc = load_model(folder, backend="onnx", onnx_file="model_int8.onnx")
    assert model.disabled_optimizers == recorded
    assert load_model(folder, backend="onnx", onnx_file="model.onnx")[0].disabled_optimizers == []
    # the setting changes the speed, never the result: the same logits with the transformer on and off
    x = proc(generate_phantom(4, (160, 200)).image)["pixel_values"].numpy()
    on = OnnxSegmentationModel(folder / "model_int8.onnx", model.config)
    off = OnnxSegmentationModel(folder / "model_int8.onnx", model.config, disabled_optimizers=export.QDQ_PROPAGATION)
    assert np.array_equal(on(x).logits.numpy(), off(x).logits.numpy())


def test_paired_timing_alternates_blocks_that_start_untimed():
    """Two sessions are timed in alternating blocks, each opened by an untimed run (ONNX Runtime's threads spin on
    after a run and slowed the other session's next run by ~25% when timed run by run; here the run after a switch
    is the slow one); fast models get more timed runs, and the medians are of the timed runs only."""
    calls = []

    def model(name, ms):
        def run(x):
            switched = not calls or calls[-1] != name
            calls.append(name)
            time.sleep(0.05 if switched else ms / 1000)

        return run

    a_ms, b_ms = export._paired_ms(model("a", 2), model("b", 6), np.zeros(1), runs=4, min_seconds=0.5, blocks=3)
    assert calls[:2] == ["a", "b"]  # one untimed run each: the warm-up and the time of one run
    groups = [[calls[2]]]
    for name in calls[3:]:
        groups[-1].append(name) if name == groups[-1][-1] else groups.append([name])
    assert [g[0] for g in groups] == ["a", "b"] * 3 and len({len(g) for g in groups}) == 1
    # one run took up to 50 ms (after a switch), so 0.5 s asks for 10 timed runs, not 4: 4 per block of 3
    assert len(groups[0]) == 1 + 4
    assert 2 <= a_ms < 20 and 6 <= b_ms < 24  # the slow runs after each switch (50 ms) are left out of both medians


def _weights(path) -> dict:
    """name -> (int8 weight, zero point shaped to broadcast over it) of every weight a DequantizeLinear reads from an
    int8 initializer."""
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        if n.op_type != "DequantizeLinear" or n.input[0] not in inits:
            continue
        if inits[n.input[0]].data_type != TensorProto.INT8:
            continue
        q, zero = numpy_helper.to_array(inits[n.input[0]]), numpy_helper.to_array(inits[n.input[2]])
        axis = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "axis"), 1)
        if zero.size > 1:  # per channel, along ``axis``
            shape = [1] * q.ndim
            shape[axis] = -1
            zero = zero.reshape(shape)
        out[n.input[0]] = (q, zero)
    return out


def _weight_zero_points(path) -> list:
    return [zero for _, zero in _weights(path).values()]


def _cpu_flags() -> set[str]:
    from pathlib import Path

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":")[1].split()}


def test_weight_zero_point_offset_is_exact(exported, tmp_path):
    """The rewrite that sends QLinearConv to the integer GEMM kernels changes the stored weights, never the
    dequantized ones; ONNX Runtime gives the same logits on CPUs with VNNI (without it, its AVX2 GEMM saturates, and
    the export's own comparison keeps the file as it was: the next test)."""
    folder = exported["fpn"]
    model, proc = load_model(folder, backend="onnx", onnx_file="model.onnx")
    plain = export.quantize_int8(folder / "model.onnx", tmp_path / "plain.onnx", proc, calibration_size=2)
    assert all(not z.any() for z in _weight_zero_points(plain))  # per-channel int8 weights are symmetric
    assert "GroupNormalization" in {n.op_type for n in onnx.load(str(plain)).graph.node}  # kept whole, in fp32
    offset = tmp_path / "offset.onnx"
    changed = onnx_graph.offset_weight_zero_points(plain, offset)
    zero_points = _weight_zero_points(offset)
    assert changed == len(zero_points) > 0 and all((z == -1).all() for z in zero_points)
    assert onnx_graph.offset_weight_zero_points(offset, tmp_path / "again.onnx") == 0  # nothing symmetric left
    before, after = _weights(plain), _weights(offset)
    assert before.keys() == after.keys()
    for name, (q, z) in before.items():  # (q - z) * scale, integer for integer: the same weights
        q2, z2 = after[name]
        assert np.array_equal(q.astype(np.int16) - z, q2.astype(np.int16) - z2)
    if not _cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        return
    x = proc(generate_phantom(5, (160, 200)).image)["pixel_values"].numpy()
    a = OnnxSegmentationModel(plain, model.config)(x).logits.numpy()
    b = OnnxSegmentationModel(offset, model.config)(x).logits.numpy()
    assert np.array_equal(a, b)


def test_weight_zero_point_choice_is_measured_and_kept_in_the_file(exported):
    info = json.loads((exported["fpn"] / "parity.json").read_text())
    choice = info["int8"]["weight_zero_point_offset"]
    assert choice["tensors"] > 0 and choice["zero_ms"] > 0 and choice["offset_ms"] > 0
    assert choice["kept"] == (choice["same_logits"] and choice["offset_ms"] < choice["zero_ms"])
    zero_points = _weight_zero_points(exported["fpn"] / "model_int8.onnx")
    assert all((z == (-1 if choice["kept"] else 0)).all() for z in zero_points)


def test_malformed_runtime_settings_are_a_clear_error(exported, tmp_path):
    folder = tmp_path / "bad_runtime"
    folder.mkdir()
    for name in ("model.onnx", "config.json", "preprocessor_config.json"):
        (folder / name).write_bytes((exported["fpn"] / name).read_bytes())
    (folder / "parity.json").write_text(json.dumps({"runtime": {"model.onnx": {"disabled_optimizers": "all"}}}))
    with pytest.raises(ValueError, match=r"parity.json: runtime settings of model.onnx must be"):
        load_model(folder, backend="onnx")


def test_auto_int8_keeps_the_quantized_file_only_when_it_qualifies(saved_models, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "INT8_AGREEMENT_TARGET", 1.01)  # unreachable: the file is removed
    strict = export.export_onnx(saved_models["fpn"], tmp_path / "strict", int8="auto", calibration_size=2)
    assert strict["preferred"] == "model.onnx" and strict["int8"]["removed"]
    assert not (tmp_path / "strict" / "model_int8.onnx").exists()
    assert load_model(tmp_path / "strict", backend="onnx")[0].path.name == "model.onnx"
    monkeypatch.setattr(export, "INT8_AGREEMENT_TARGET", 0.0)
    monkeypatch.setattr(export, "INT8_MAX_TIME_RATIO", float("inf"))
    lax = export.export_onnx(saved_models["fpn"], tmp_path / "lax", int8="auto", calibration_size=2)
    assert lax["preferred"] == "model_int8.onnx" and "removed" not in lax["int8"]
    tried = lax["int8_candidates"]  # every automatic setting measured, the fastest kept
    # an FPN has no layer normalization: the conv_head scope would equal "every node" and is not tried
    assert [(t["settings"]["exclude"], t["settings"]["scope"]) for t in tried] == [("ends", "all"), (None, "all")]
    assert lax["int8"]["time_ratio"] == min(t["time_ratio"] for t in tried)
    assert sorted(p.name for p in (tmp_path / "lax").glob("*.onnx")) == ["model.onnx", "model_int8.onnx"]
    assert load_model(tmp_path / "lax", backend="onnx")[0].path.name == "model_int8.onnx"
    with pytest.raises(ValueError, match="int8 must be True, False or 'auto'"):
        export.export_onnx(saved_models["fpn"], tmp_path / "bad", int8="sometimes")


def _consumers(path, tensor):
    return {n.op_type for n in onnx.load(str(path)).graph.node if tensor in n.input}


def test_quantization_options_change_the_graph(exported, tmp_path):
    _, proc = load_model(exported["fpn"], backend="onnx")
    src = exported["fpn"] / "model.onnx"
    ends = export.quantize_int8(src, tmp_path / "ends.onnx", proc, calibration_size=2)
    assert _consumers(ends, "pixel_values") == {"Conv"}  # the first convolution stays fp32
    every = export.quantize_int8(src, tmp_path / "every.onnx", proc, calibration_size=2, exclude=None)
    assert _consumers(every, "pixel_values") == {"QuantizeLinear"}
    qop = export.quantize_int8(src, tmp_path / "qop.onnx", proc, calibration_size=2, quant_format="qoperator")
    assert "QLinearConv" in {n.op_type for n in onnx.load(str(qop)).graph.node}
    for option, value in (("method", "median"), ("quant_format", "fp8"), ("exclude", "middle"), ("scope", "encoder")):
        with pytest.raises(ValueError, match=f"{option} must be"):
            export.quantize_int8(src, tmp_path / "x.onnx", proc, calibration_size=2, **{option: value})


def test_conv_head_scope_leaves_attention_and_normalization_in_fp32(saved_models, exported, tmp_path):
    """``--int8-scope conv_head``: every convolution and the decode head's upsamplings run on quantized maps, while
    the attention, its projections and the layer normalizations read fp32 tensors; the masks still agree."""
    out = tmp_path / "conv_head"
    argv = ["export-onnx", "--model", str(saved_models["segformer"]), "--out", str(out), "--int8", "--no-check"]
    assert main([*argv, "--exclude", "none", "--int8-scope", "conv_head", "--calibration-size", "2"]) == 0
    settings = json.loads((out / "parity.json").read_text())["int8"]["settings"]
    assert settings["scope"] == "conv_head" and settings["exclude"] is None
    fp32, proc = load_model(out, backend="onnx", onnx_file="model.onnx")
    q = out / "model_int8.onnx"
    graph = onnx.load(str(q)).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}

    def nodes(op):
        found = [n for n in graph.node if n.op_type == op]
        assert found, op
        return found

    assert all(producer.get(n.input[0]) == producer.get(n.input[1]) == "DequantizeLinear" for n in nodes("Conv"))
    assert all(producer.get(n.input[0]) == "DequantizeLinear" for n in nodes("Resize"))
    for op in ("MultiHeadAttention", "LayerNormalization", "MatMul"):
        assert not any(producer.get(i) == "DequantizeLinear" for n in nodes(op) for i in n.input), op
    frames = [generate_phantom(7000 + i, (160, 200)).image for i in range(4)]
    agreement = export.mask_agreement(fp32, OnnxSegmentationModel(q, fp32.config), proc, frames)
    assert agreement["mean"] >= 0.9, agreement


def test_folded_segformer_computes_the_same_logits(saved_models, exported):
    model, _ = load_model(saved_models["segformer"])
    folded = model.inference_module()
    assert folded is not model.net and not any("batch_norm" in k for k in folded.state_dict())
    kinds = {type(m).__name__ for m in folded.modules()}
    assert "ChannelsFirstMixFFN" in kinds and "SegformerMixMLP" not in kinds
    assert {"ChannelsLastPatchEmbeddings", "ChannelsLastSequenceReduction"} <= kinds
    assert "SegformerMixMLP" in {type(m).__name__ for m in model.net.modules()}  # the model keeps its own encoder
    with torch.inference_mode():  # a multiple of the stride (constant scale factors) and sizes that are not
        for shape in ((2, 3, 96, 128), (1, 3, 100, 77)):
            x = torch.randn(*shape)
            assert float((model(x).logits - folded(x)).abs().max()) <= 1e-4
    # even patch sizes make a stage's size no exact fraction of the input's: the target sizes are kept there
    config = copy.deepcopy(model.net.config)
    config.patch_sizes = [k + 1 for k in config.patch_sizes]
    even = SegformerForSemanticSegmentation(config).eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.inference_mode():
        reference = F.interpolate(even(pixel_values=x).logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        assert float((reference - FoldedSegformer(even)(x)).abs().max()) <= 1e-4
    graph = onnx.load(str(exported["segformer"] / "model.onnx")).graph
    constants = {t.name for t in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    resizes = [n for n in graph.node if n.op_type == "Resize"]
    assert resizes and all(len(n.input) == 3 and n.input[2] in constants for n in resizes)  # scales, not sizes


def test_segformer_maps_and_tokens_meet_convolutions_channels_last(exported):
    """Every token/map conversion around a convolution of the exported Segformer is a transpose between channels-last
    and channels-first next to the convolution (no reshape between them): ONNX Runtime runs INT8 convolutions
    channels-last between transposes of its own, which then cancel with these (BENCHMARKS.md)."""
    graph = onnx.load(str(exported["segformer"] / "model.onnx")).graph
    producer = {o: n for n in graph.node for o in n.output}
    consumers = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def perm(node):
        return list(next(a.ints for a in node.attribute if a.name == "perm"))

    convs = [n for n in graph.node if n.op_type == "Conv"]
    into = [producer[n.input[0]] for n in convs if n.input[0] in producer]
    out_of = [c for n in convs for c in consumers.get(n.output[0], [])]
    assert [t for t in into if t.op_type == "Transpose"], "no token map enters a convolution by a transpose"
    assert all(perm(t) == [0, 3, 1, 2] for t in into if t.op_type == "Transpose")
    assert all(perm(t) == [0, 2, 3, 1] for t in out_of if t.op_type == "Transpose")
    assert not [t for t in into if t.op_type == "Reshape" and producer.get(t.input[0], t).op_type == "Transpose"]


def test_segformer_attention_runs_fused_with_the_same_logits(saved_models, exported, tmp_path):
    model, proc = load_model(saved_models["segformer"])
    plain = tmp_path / "plain.onnx"
    export._torch_export(model.float().eval(), plain, torch.randn(2, 3, *proc.canvas_size), export.DEFAULT_OPSET)
    ops = [n.op_type for n in onnx.load(str(plain)).graph.node]
    fused_path = tmp_path / "fused.onnx"
    assert onnx_graph.fuse_multihead_attention(plain, fused_path) == ops.count("Attention") > 0
    fused = [n.op_type for n in onnx.load(str(fused_path)).graph.node]
    assert "Attention" not in fused and fused.count("MultiHeadAttention") == ops.count("Attention")
    assert fused.count("Transpose") < ops.count("Transpose")  # the head split and merge are gone with it
    x = np.concatenate([proc(generate_phantom(s, (160, 200)).image)["pixel_values"].numpy() for s in (6, 7)])
    a = OnnxSegmentationModel(plain, model.config)(x).logits.numpy()
    b = OnnxSegmentationModel(fused_path, model.config)(x).logits.numpy()
    assert np.abs(a - b).max() <= 1e-4
    info = json.loads((exported["segformer"] / "parity.json").read_text())  # the export fuses, and says so
    assert info["fused_attention"] == ops.count("Attention")
    exported_ops = {n.op_type for n in onnx.load(str(exported["segformer"] / "model.onnx")).graph.node}
    assert "MultiHeadAttention" in exported_ops and "Attention" not in exported_ops
    assert onnx_graph.fuse_multihead_attention(exported["fpn"] / "model.onnx", tmp_path / "fpn.onnx") == 0


def test_summed_fpn_computes_the_same_logits(saved_models, exported):
    model, _ = load_model(saved_models["fpn"])
    summed = model.inference_module()
    assert type(summed).__name__ == "SummedFPN"
    x = torch.randn(2, 3, 96, 128)
    with torch.inference_mode():
        assert float((model(x).logits - summed(x)).abs().max()) <= 1e-5
    ops = {n.op_type for n in onnx.load(str(exported["fpn"] / "model.onnx")).graph.node}
    assert "ReduceSum" not in ops and "GroupNormalization" in ops  # branches added, not stacked and reduced


def test_served_exports_follow_a_retuned_processor(saved_models, tmp_path):
    """The app's ONNX cache is keyed by weights AND configs: tuning a model's post-processing gives a new export
    that carries it, so ONNX Runtime and PyTorch keep giving the same masks."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(saved_models["fpn"], folder)
    cache = tmp_path / "exports"
    first = export.ensure_onnx(folder, cache)
    assert export.ensure_onnx(folder, cache) == first  # reused
    model, processor = load_model(folder)
    processor.set_postprocessing({"lesion": 0.55})
    processor.save_pretrained(folder)
    second = export.ensure_onnx(folder, cache)
    assert second != first
    assert load_model(second)[1].mask_threshold == {"lesion": 0.55}
    image = generate_phantom(4, (96, 96), "clean").image
    onnx_mask = SegmentationPipeline.from_pretrained(second, backend="onnx")(image).mask
    torch_mask = SegmentationPipeline(model, processor, device="cpu")(image).mask
    assert binary_metrics(onnx_mask, torch_mask)["iou"] > 0.99


@pytest.mark.parametrize("arch", ["fpn", "segformer"])
def test_multiscale_runs_on_onnx_runtime_as_on_pytorch(arch, exported, saved_models):
    """The exported graph's dynamic height and width take every side of a multi-scale processor."""
    onnx_model, proc = load_model(exported[arch], backend="onnx", onnx_file="model.onnx")
    torch_model, _ = load_model(saved_models[arch])
    multi = proc.with_size(64, multiscale=[64, 96, 128])
    image = generate_phantom(5, (120, 140)).image
    a = SegmentationPipeline(onnx_model, multi, tta_flip=True)(image)
    b = SegmentationPipeline(torch_model, multi, tta_flip=True)(image)
    assert np.abs(a.probabilities - b.probabilities).max() <= 1e-3 and a.mask.shape == (120, 140)


def test_a_kfold_run_exports_fold_by_fold_and_loads_as_its_ensemble(tmp_path, capsys):
    """`export-onnx` on a k-fold run's folder exports every fold model into the same layout with the run's summary:
    the exports load as one ensemble on ONNX Runtime, with PyTorch's probabilities; a run short of a fold model is
    refused by name, and nothing is written."""
    from conftest import tiny_kfold_run

    run = tiny_kfold_run(tmp_path / "k2")
    out = tmp_path / "k2_onnx"
    assert main(["export-onnx", "--model", str(run), "--out", str(out), "--int8", "no"]) == 0
    assert "k-fold run exported" in capsys.readouterr().out
    assert json.loads((out / "kfold_summary.json").read_text())["k"] == 2
    for i in (1, 2):
        info = json.loads((out / f"fold_{i}" / "model" / "parity.json").read_text())
        assert (out / f"fold_{i}" / "model" / "model.onnx").is_file() and info["parity"]["max_abs_logit_diff"] < 1e-3
    onnx_pipe = SegmentationPipeline.from_pretrained(out, backend="onnx")
    torch_pipe = SegmentationPipeline.from_pretrained(run, device="cpu")
    assert len(onnx_pipe.models) == 2 and onnx_pipe.backend == "onnx"
    image = generate_phantom(5, (90, 110)).image
    assert np.abs(onnx_pipe(image).probabilities - torch_pipe(image).probabilities).max() < 1e-4

    (run / "kfold_summary.json").write_text(json.dumps({"k": 3}))
    with pytest.raises(ValueError, match=r"fold model\(s\) missing: .*fold_3"):
        export.export_kfold(run, tmp_path / "short")
    assert not (tmp_path / "short").exists()
