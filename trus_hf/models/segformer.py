"""`SegformerForSemanticSegmentation` (transformers, MiT b0..b5) behind the trus-hf contract.

One sigmoid output channel per label (``id2label`` in the config); logits are upsampled bilinearly from 1/4
resolution to the input size. The saved
``config.json`` is a `SegformerConfig`, so ``SegformerForSemanticSegmentation.from_pretrained(folder)`` works
without trus-hf.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import SegformerConfig, SegformerForSemanticSegmentation
from transformers.models.segformer import modeling_segformer
from transformers.models.segformer.modeling_segformer import SegformerMixMLP

from ..configuration import SEGFORMER_SIZES, TrusSegConfig
from .base import TrusSegmentationModel, safe_open_keys

__all__ = [
    "ChannelsFirstMixFFN",
    "ChannelsLastPatchEmbeddings",
    "ChannelsLastSequenceReduction",
    "FoldedSegformer",
    "TrusSegformer",
]


class TrusSegformer(TrusSegmentationModel):
    """transformers ``SegformerForSemanticSegmentation`` (MiT b0..b5) behind the trus-hf contract; its 1/4-resolution
    logits are upsampled to the input size.

    Example:
        >>> from trus_hf import TrusSegConfig
        >>> model = TrusSegformer(TrusSegConfig(architecture="segformer", segformer_size="b0"))
        >>> model.native_config()["model_type"]
        'segformer'
    """

    architecture = "segformer"

    def _build(self, config: TrusSegConfig, native_config: dict[str, Any] | None) -> nn.Module:
        if native_config is not None:
            native = {k: v for k, v in native_config.items() if not k.startswith("_")}
            return SegformerForSemanticSegmentation(SegformerConfig(**native))
        labels = {
            "num_labels": config.num_labels,
            "id2label": config.id2label,
            "label2id": {name: i for i, name in config.id2label.items()},
        }
        if config.pretrained_backbone:
            # Online path: start from a published MiT encoder (e.g. "nvidia/mit-b0"); the head is new.
            return SegformerForSemanticSegmentation.from_pretrained(
                config.pretrained_backbone, ignore_mismatched_sizes=True, **labels
            )
        return SegformerForSemanticSegmentation(
            SegformerConfig(num_channels=config.num_channels, **labels, **SEGFORMER_SIZES[config.segformer_size])
        )

    def _logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        logits = self.net(pixel_values=pixel_values).logits
        return F.interpolate(logits, size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)

    def native_config(self) -> dict[str, Any]:
        cfg = self.net.config.to_dict()
        cfg.pop("_trus_hf", None)
        return cfg

    def encoder(self) -> nn.Module:
        return self.net.segformer

    def load_weights(self, path: str | Path, allow_pickle: bool = False) -> None:
        """Our own folders hold the network's state dict as is; checkpoints written by transformers'
        ``save_pretrained`` may use the library's on-disk key names, which its own loader maps (safetensors only,
        local files only, no remote code)."""
        path = Path(path)
        if path.suffix == ".safetensors" and set(safe_open_keys(path)) != set(self.net.state_dict()):
            loaded, info = SegformerForSemanticSegmentation.from_pretrained(
                str(path.parent),
                config=self.net.config,
                use_safetensors=True,
                local_files_only=True,
                output_loading_info=True,
            )
            missing, mismatched = sorted(info["missing_keys"]), info["mismatched_keys"]
            if missing or mismatched:
                raise ValueError(
                    f"{path}: weights do not match the {self.config.description} in config.json: "
                    f"{len(missing)} missing (e.g. {missing[:3]}), {len(mismatched)} of another shape"
                )
            self.net.load_state_dict(loaded.state_dict())
            return
        super().load_weights(path, allow_pickle=allow_pickle)

    def inference_module(self) -> nn.Module:
        """`FoldedSegformer`: the decode head's fuse convolution and batch norm folded into its per-stage MLPs, the
        encoder's Mix-FFNs run channels-first (`ChannelsFirstMixFFN`)."""
        return FoldedSegformer(self.net).eval()

    def _native_with_labels(self, labels: list[str]) -> dict[str, Any]:
        return {
            **self.native_config(),
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)},
        }


# Tokens (B, N, C) and maps (B, C, H, W) meet convolutions through these two, each transpose next to the
# convolution and the reshape on the far side: ONNX Runtime runs INT8 convolutions channels-last, between a transpose
# to NHWC and one back, and ours then cancel with them, where a reshape in between kept both (Segformer-b0's INT8
# graph: BENCHMARKS.md).
def _tokens_to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, N, C) -> (B, H, W, C) -> (B, C, H, W)."""
    return tokens.reshape(tokens.shape[0], height, width, tokens.shape[2]).permute(0, 3, 1, 2)


def _map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H, W, C) -> (B, N, C)."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])


class ChannelsFirstMixFFN(nn.Module):
    """A Segformer Mix-FFN (fc1 -> 3x3 depthwise convolution -> activation -> fc2) computed on (B, C, H, W) maps, its
    two linear layers as 1x1 convolutions with the same weights: the same function as `SegformerMixMLP` in eval mode.

    transformers' Mix-FFN works on (B, N, C) tokens and transposes its 4x-wide hidden map to (B, 4C, H, W) for the
    depthwise convolution and back; here the block's C-wide input and output are transposed instead, and the biases
    ride in the convolutions, which ONNX Runtime runs in its blocked layout: Segformer-b0 at 768x768 0.84-0.87x in
    ONNX Runtime (BENCHMARKS.md, "Inference latency")."""

    def __init__(self, mlp: SegformerMixMLP):
        super().__init__()
        self.fc1 = self._conv(mlp.fc1)
        self.dwconv = copy.deepcopy(mlp.dwconv.dwconv)
        self.activation = mlp.activation_fn
        self.fc2 = self._conv(mlp.fc2)

    @staticmethod
    def _conv(linear: nn.Linear) -> nn.Conv2d:
        conv = nn.Conv2d(linear.in_features, linear.out_features, 1)
        conv.weight.data = linear.weight.detach()[:, :, None, None].clone()
        conv.bias.data = linear.bias.detach().clone()
        return conv

    def forward(self, hidden_states: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = self.fc2(self.activation(self.dwconv(self.fc1(_tokens_to_map(hidden_states, height, width)))))
        return _map_to_tokens(x)


class ChannelsLastPatchEmbeddings(nn.Module):
    """transformers' overlapping patch embedding (strided convolution, then tokens, then layer norm), with its
    (B, C, H, W) -> (B, N, C) step written as a transpose to (B, H, W, C) followed by a reshape (`_map_to_tokens`):
    the same tensor, but the transpose then meets the one back from channels-last that ONNX Runtime puts after an
    INT8 convolution, and both cancel. The same submodules, so the weights keep their names."""

    def __init__(self, embeddings: nn.Module):
        super().__init__()
        self.proj, self.layer_norm = embeddings.proj, embeddings.layer_norm

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(pixel_values)
        return self.layer_norm(_map_to_tokens(x)), x.shape[2], x.shape[3]


class ChannelsLastSequenceReduction(nn.Module):
    """transformers' sequence reduction of the attention's keys and values (tokens to a map, strided convolution,
    back to tokens, layer norm), its transposes ordered as in `ChannelsLastPatchEmbeddings`."""

    def __init__(self, reduction: nn.Module):
        super().__init__()
        self.sequence_reduction, self.layer_norm = reduction.sequence_reduction, reduction.layer_norm

    def forward(self, hidden_states: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = self.sequence_reduction(_tokens_to_map(hidden_states, height, width))
        return self.layer_norm(_map_to_tokens(x))


#: transformers' module classes `FoldedSegformer` rewrites (looked up by name: older transformers releases lack the
#: sequence reduction module, and then keep their own)
_REWRITES = {
    getattr(modeling_segformer, name): rewrite
    for name, rewrite in (
        ("SegformerMixMLP", ChannelsFirstMixFFN),
        ("SegformerOverlapPatchEmbeddings", ChannelsLastPatchEmbeddings),
        ("SegformerSequenceReduction", ChannelsLastSequenceReduction),
    )
    if hasattr(modeling_segformer, name)
}


class FoldedSegformer(nn.Module):
    """Segformer's logits computed with its all-MLP decoder folded, for inference (export, benchmarks).

    The decode head projects each stage's features to ``decoder_hidden_size`` (a linear map), upsamples them to 1/4
    resolution (bilinear), concatenates them and mixes them with a 1x1 convolution followed by batch norm. All of
    that is linear and upsampling works channel by channel, so the fuse convolution and the batch norm fold into each
    stage's projection: each stage is projected straight to the fused channels at its own resolution, upsampled and
    summed. The same function (float rounding aside) without the 4x-wide concatenated map at 1/4 resolution, the
    head's most expensive tensor: at 768x768 this removes about half of Segformer-b0's multiply-adds.

    Two more changes of form, not of function: the encoder (a copy; the model keeps its own) runs its Mix-FFNs
    channels-first (`ChannelsFirstMixFFN`) and orders its other token/map conversions so that ONNX Runtime's
    channels-last INT8 convolutions need no transposes (`ChannelsLastPatchEmbeddings`,
    `ChannelsLastSequenceReduction`), and when the input's sides are multiples of the encoder's total stride
    (as the processor pads them) each stage's size is an exact fraction of the input's, so the upsamplings are
    written with constant scale factors instead of target sizes: the same interpolation, which ONNX Runtime then runs
    in its blocked layout (3.6x faster for Segformer-b0 at 768x768) instead of as a generic ``Resize``.
    """

    def __init__(self, net: SegformerForSemanticSegmentation):
        super().__init__()
        head = net.decode_head
        if head.training or net.training:
            raise ValueError("fold an eval-mode model (batch norm uses its running statistics)")
        self.encoder = copy.deepcopy(net.segformer)
        for parent in list(self.encoder.modules()):
            for name, child in list(parent.named_children()):
                rewrite = _REWRITES.get(type(child))
                if rewrite is not None:
                    setattr(parent, name, rewrite(child))
        strides = list(net.config.strides)
        self.stride = math.prod(strides)  # input pixels per pixel of the last stage
        # a stage (kernel k, stride s, padding k // 2) maps s * m pixels to exactly m when k is odd, to m + 1 when even
        self.exact_when_divisible = all(k % 2 == 1 for k in net.config.patch_sizes)
        # each later stage's upsampling factor to the first stage's resolution, and the first stage's to the input's
        self.factors = [float(math.prod(strides[1 : i + 1])) for i in range(1, len(strides))]
        self.input_factor = float(strides[0])
        bn = head.batch_norm
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fuse = head.linear_fuse.weight[:, :, 0, 0]  # (hidden, stages * hidden); stages concatenated in reverse
        hidden = fuse.shape[0]
        n = len(head.linear_projections)
        self.projections = nn.ModuleList()
        bias = bn.bias - bn.running_mean * scale
        for i, mlp in enumerate(head.linear_projections):
            part = fuse[:, (n - 1 - i) * hidden : (n - i) * hidden] * scale[:, None]
            conv = nn.Conv2d(mlp.proj.in_features, hidden, 1, bias=False)
            conv.weight.data = (part @ mlp.proj.weight)[:, :, None, None].detach().clone()
            bias = bias + part @ mlp.proj.bias
            self.projections.append(conv)
        self.bias = nn.Parameter(bias.detach().clone()[None, :, None, None])
        self.activation = head.activation
        self.classifier = head.classifier

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        states = self.encoder(pixel_values, output_hidden_states=True).hidden_states
        h, w = pixel_values.shape[-2:]
        exact = self.exact_when_divisible and h % self.stride == 0 and w % self.stride == 0

        def upsample(x: torch.Tensor, factor: float, size) -> torch.Tensor:
            if exact:  # the same coordinates as by size here; constant scales for the exported graph
                return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

        size = states[0].shape[-2:]
        fused = self.projections[0](states[0]) + self.bias
        for proj, state, factor in zip(self.projections[1:], states[1:], self.factors):
            fused = fused + upsample(proj(state), factor, size)
        logits = self.classifier(self.activation(fused))
        return upsample(logits, self.input_factor, pixel_values.shape[-2:])
