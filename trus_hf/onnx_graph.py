"""ONNX graph rewrites that keep a model's function and change which ONNX Runtime kernels run it.

Each one is exact (or float-rounding close, checked by the export's parity check). `export_onnx` applies the
attention fusion to every graph it writes, and keeps the weight zero-point offset only where it is faster, measured
on the machine that exports (BENCHMARKS.md, "Inference latency"). Hand-written on the
``onnx`` protobufs: ONNX Runtime's own transformer optimizer (``onnxruntime.transformers``) matches BERT/GPT-style
attention subgraphs, not the ``Attention`` operator of opset 23 with Segformer's sequence reduction, and has no
weight-layout pass.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np

__all__ = ["fuse_multihead_attention", "offset_weight_zero_points"]

_HEADS_FIRST = [0, 2, 1, 3]


def _perm(node) -> list[int] | None:
    from onnx import helper

    for a in node.attribute:
        if a.name == "perm":
            return list(helper.get_attribute_value(a))
    return None


def fuse_multihead_attention(path: str | Path, out_path: str | Path | None = None) -> int:
    """Replaces each opset-23 ``Attention`` that PyTorch's exporter writes for ``scaled_dot_product_attention``
    between head-splitting reshapes (``Reshape`` to (batch, length, heads, head size), ``Transpose`` to heads first;
    after it the transpose back and the reshape to (batch, length, channels)) by ONNX Runtime's
    ``com.microsoft.MultiHeadAttention`` on the unsplit (batch, length, channels) tensors. Same function; Runtime's
    CPU kernel for it is a fused (flash-style) one, where its ``Attention`` kernel computes and stores the whole
    score matrix: for Segformer-b0's first stage at 768x768 (36,864 queries, 576 keys) 13 against 35 ms.
    Attention with a mask, causal, soft-capped or of another layout is left as it is. Writes ``out_path`` (default:
    in place); returns how many were replaced.
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    graph = model.graph
    if not any(n.op_type == "Attention" for n in graph.node):  # FPN: no shape inference, no rewrite of the file
        if out_path is not None and Path(out_path) != Path(path):
            shutil.copyfile(path, out_path)
        return 0
    shapes, infos = {}, {}
    for vi in onnx.shape_inference.infer_shapes(model).graph.value_info:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        infos[vi.name] = vi
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = defaultdict(list)
    for n in graph.node:
        for i in n.input:
            consumers[i].append(n)

    def only_consumer(name: str, op_type: str):
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type else None

    dropped, fused, outputs = set(), {}, {}  # ids of the nodes removed, of those replaced (-> new node)
    for node in graph.node:
        if node.op_type != "Attention" or node.domain not in ("", "ai.onnx") or len(node.input) != 3:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if any(attrs.get(k) for k in ("is_causal", "softcap", "qk_matmul_output_mode")) or len(node.output) != 1:
            continue
        split, sources = [], []
        for name in node.input:
            t = producer.get(name)
            r = producer.get(t.input[0]) if t is not None and t.op_type == "Transpose" else None
            if r is None or r.op_type != "Reshape" or _perm(t) != _HEADS_FIRST:
                break
            if only_consumer(t.output[0], "Attention") is None or only_consumer(r.output[0], "Transpose") is None:
                break
            split += [t, r]
            sources.append(r.input[0])
        if len(sources) != 3:
            continue
        # back: an optional Reshape (to the same 4-d shape), the Transpose to length first, then Reshapes only
        after = only_consumer(node.output[0], "Reshape")
        back = only_consumer((after or node).output[0], "Transpose")
        if back is None or _perm(back) != _HEADS_FIRST or not consumers.get(back.output[0]):
            continue
        if any(c.op_type != "Reshape" for c in consumers[back.output[0]]):
            continue
        channels = (shapes.get(sources[0]) or [None])[-1]
        head_size = (shapes.get(node.input[0]) or [None])[-1]
        if len(shapes.get(sources[0], [])) != 3 or not channels or not head_size or channels % head_size:
            continue
        scale = attrs.get("scale")
        mha = helper.make_node(
            "MultiHeadAttention",
            sources,
            [back.output[0]],  # the final Reshapes read it as before: (batch, length, channels) reshapes the same
            name=f"{node.name}_fused",
            domain="com.microsoft",
            num_heads=channels // head_size,
            **({"scale": float(scale)} if scale else {}),
        )
        dropped.update(id(n) for n in [*split, back, *([after] if after is not None else [])])
        fused[id(node)] = mha
        # ONNX's shape inference does not know the contrib op: declare its output (the query's shape), so that the
        # quantizer's shape inference carries on past it
        declared = onnx.ValueInfoProto()
        declared.CopyFrom(infos[sources[0]])
        declared.name = back.output[0]
        outputs[back.output[0]] = declared
    if fused:
        kept = [fused.get(id(n), n) for n in graph.node if id(n) not in dropped]
        del graph.node[:]
        graph.node.extend(_without_dead_nodes(kept, {o.name for o in graph.output}))
        read = {i for n in graph.node for i in n.input}
        unused = [t for t in graph.initializer if t.name not in read]  # the removed reshapes' shape constants
        for t in unused:
            graph.initializer.remove(t)
        produced = {o for n in graph.node for o in n.output}
        kept_infos = [vi for vi in graph.value_info if vi.name in produced and vi.name not in outputs]
        del graph.value_info[:]
        graph.value_info.extend([*kept_infos, *outputs.values()])
        if not any(op.domain == "com.microsoft" for op in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(out_path or path))
    return len(fused)


def _without_dead_nodes(nodes: list, outputs: set[str]) -> list:
    """``nodes`` less those whose outputs nothing reads (repeated: the shape arithmetic of a removed reshape)."""
    while True:
        read = {i for n in nodes for i in n.input} | outputs
        alive = [n for n in nodes if any(o in read for o in n.output)]
        if len(alive) == len(nodes):
            return alive
        nodes = alive


def offset_weight_zero_points(path: str | Path, out_path: str | Path) -> int:
    """Writes ``path``'s QDQ model to ``out_path`` with its symmetric int8 weights (zero point 0) stored as the same
    values with zero point -1, every quantized value less one: ``(q - 1 - (-1)) * scale = q * scale``, exactly.
    Returns how many weight tensors changed (a tensor holding -128, or shared between nodes, stays as it is).

    Why: ONNX Runtime runs a QLinearConv whose weight zero points are all 0 on MLAS's symmetric convolution kernels
    (AVX2 / AVX512-VNNI), any other through im2col and MLAS's integer GEMM, which has AMX kernels. On a CPU with AMX
    the GEMM path ran FPN-resnet152 ~8% faster at 768x768; without AMX the symmetric kernels are the fast ones, and
    without VNNI the GEMM's AVX2 kernel saturates pairs of products in 16 bits, so its results differ: the export
    times both files and compares their logits on the machine it runs on (`trus_hf.export`)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    uses: dict[str, int] = defaultdict(int)
    for node in graph.node:
        for name in node.input:
            uses[name] += 1
    changed = 0
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3:
            continue
        weight, zero = inits.get(node.input[0]), inits.get(node.input[2])
        if weight is None or zero is None or weight.data_type != onnx.TensorProto.INT8:
            continue
        if uses[weight.name] != 1 or uses[zero.name] != 1:
            continue
        q, z = numpy_helper.to_array(weight), numpy_helper.to_array(zero)
        if z.any() or q.min() == -128:
            continue
        weight.CopyFrom(numpy_helper.from_array((q.astype(np.int16) - 1).astype(np.int8), weight.name))
        zero.CopyFrom(numpy_helper.from_array(np.full_like(z, -1), zero.name))
        changed += 1
    onnx.save(model, str(out_path))
    return changed
