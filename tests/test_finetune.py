"""Starting a run from a trained model (--init_from): trus-hf folders, Hub IDs on the local Hub server, plain smp and
transformers checkpoints; fine-tuning options; clear errors for starts that cannot be used."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import segmentation_models_pytorch as smp
import torch
from conftest import ROOT, TINY_FPN, run_python, tiny_model, tiny_processor
from hub_server import LocalHub
from transformers import SegformerConfig, SegformerForSemanticSegmentation

from trus_hf import TrusSegConfig, load_model
from trus_hf.training import TrainingArguments
from trus_hf.training.start import initial_model

# The processor (64x64, diffusion) comes from the start model: no processor options here.
TINY = ["--data", "synthetic:12:96", "--batch_size", "4", "--learning_rate", "1e-3", "--tensorboard", "false"]


def _run(script, *args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT
    )


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_start_from_a_trus_hf_folder_takes_its_weights_architecture_and_processor(saved_models, tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), init_from=str(saved_models["fpn"]))
    model, processor, config = initial_model(TrusSegConfig(architecture="fpn"), args)
    reference, ref_proc = load_model(saved_models["fpn"])
    assert _same(model.net, reference.net)
    assert config.encoder_name == "resnet18" and processor.size == ref_proc.size == {"height": 64, "width": 64}


def test_a_start_hands_on_its_processor_but_not_its_tuned_thresholds(saved_models, tmp_path):
    from conftest import tiny_processor

    start = tmp_path / "start"
    load_model(saved_models["fpn"])[0].save_pretrained(
        start, processor=tiny_processor(mask_threshold={"lesion": 0.8}, min_mask_fraction={"lesion": 0.01})
    )
    args = TrainingArguments(output_dir=str(tmp_path / "run"), init_from=str(start))
    _, processor, _ = initial_model(TrusSegConfig(architecture="fpn"), args)
    assert processor.size == {"height": 64, "width": 64}
    assert processor.mask_threshold == {} and processor.min_mask_fraction == {}


def test_standardize_switches_a_starts_processor_to_standardised_frames(saved_models, tmp_path):
    plain = TrainingArguments(output_dir=str(tmp_path / "a"), init_from=str(saved_models["fpn"]))
    assert not initial_model(TrusSegConfig(architecture="fpn"), plain)[1].do_standardize
    args = TrainingArguments(output_dir=str(tmp_path / "b"), init_from=str(saved_models["fpn"]), standardize=True)
    assert initial_model(TrusSegConfig(architecture="fpn"), args)[1].do_standardize
    assert TrainingArguments(output_dir=str(tmp_path), standardize=True).processor().do_standardize


def test_a_start_with_a_chosen_input_size_trains_at_its_trained_size(saved_models, tmp_path):
    from conftest import tiny_processor

    start, processor = tmp_path / "start", tiny_processor()
    processor.set_input_size({"size": {"height": 96, "width": 96}, "trained": {"height": 64, "width": 64}})
    load_model(saved_models["fpn"])[0].save_pretrained(start, processor=processor)
    assert load_model(start)[1].size == {"height": 96, "width": 96}
    args = TrainingArguments(output_dir=str(tmp_path / "run"), init_from=str(start), image_size=64)
    _, processor, _ = initial_model(TrusSegConfig(architecture="fpn"), args)  # 64 agrees with the start
    assert processor.size == {"height": 64, "width": 64} and processor.size_selection is None


def test_new_labels_get_a_new_head_and_keep_every_other_weight(saved_models, tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), init_from=str(saved_models["segformer"]))
    model, _, config = initial_model(TrusSegConfig(architecture="segformer", labels=["gland", "lesion"]), args)
    reference, _ = load_model(saved_models["segformer"])
    assert config.labels == ["gland", "lesion"] and model.net.config.num_labels == 2
    new, old = model.net.state_dict(), reference.net.state_dict()
    changed = [k for k in new if new[k].shape != old[k].shape or not torch.equal(new[k], old[k])]
    assert changed and all(k.startswith("decode_head.classifier") for k in changed), changed
    assert model(torch.randn(1, 3, 64, 64)).logits.shape == (1, 2, 64, 64)


def test_plain_smp_and_transformers_checkpoints_are_starts(tmp_path):
    fpn = smp.FPN(
        encoder_name="resnet18",
        encoder_weights=None,
        decoder_pyramid_channels=64,
        decoder_segmentation_channels=32,
        classes=1,
    )
    fpn.save_pretrained(str(tmp_path / "smp"))
    model, _, config = initial_model(
        TrusSegConfig(architecture="fpn"), TrainingArguments(output_dir=str(tmp_path), init_from=str(tmp_path / "smp"))
    )
    assert config.encoder_name == "resnet18" and config.decoder_pyramid_channels == 64
    assert _same(model.net, fpn)
    seg = SegformerForSemanticSegmentation(
        SegformerConfig(num_labels=1, hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2], decoder_hidden_size=256)
    )
    seg.save_pretrained(tmp_path / "hf")
    model, _, config = initial_model(
        TrusSegConfig(architecture="segformer"),
        TrainingArguments(output_dir=str(tmp_path), init_from=str(tmp_path / "hf")),
    )
    assert config.segformer_size == "b0" and _same(model.net, seg)


@pytest.mark.parametrize(
    "case, message",
    [
        ("wrong-architecture", "is a segformer model; this run trains fpn"),
        ("contradiction", "--encoder_name resnet34 (the start has resnet18)"),
        ("processor", "--image_size 96 (the start's processor has 64)"),
        ("no-weights", "no model.safetensors"),
        ("pickle", "refusing to load pickle weights"),
        ("missing", "neither an existing folder nor a valid Hub model ID"),
    ],
)
def test_unusable_starts_are_clear_errors(saved_models, tmp_path, case, message):
    config = TrusSegConfig(architecture="fpn")
    source = str(saved_models["fpn"])
    kwargs = {}
    if case == "wrong-architecture":
        source = str(saved_models["segformer"])
    elif case == "contradiction":
        config = TrusSegConfig(architecture="fpn", encoder_name="resnet34")
    elif case == "processor":
        kwargs["image_size"] = 96
    elif case in ("no-weights", "pickle"):
        folder = tmp_path / case
        tiny_model("fpn").save_pretrained(folder, processor=tiny_processor())
        weights = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").unlink()
        if case == "pickle":
            torch.save(tiny_model("fpn").net.state_dict(), folder / "pytorch_model.bin")
        del weights
        source = str(folder)
    else:
        source = "not/a/folder/here"
    with pytest.raises(ValueError) as err:
        initial_model(config, TrainingArguments(output_dir=str(tmp_path / "run"), init_from=source, **kwargs))
    assert message in str(err.value) and "--init_from" in str(err.value)


def test_frozen_encoder_and_lower_encoder_learning_rate(saved_models, tmp_path):
    out = tmp_path / "ft"
    r = _run(
        "train_fpn.py",
        "--output_dir",
        str(out),
        "--epochs",
        "1",
        *TINY,
        "--init_from",
        str(saved_models["fpn"]),
        "--freeze_encoder_epochs",
        "1",
        "--encoder_lr_factor",
        "0.1",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    start, _ = load_model(saved_models["fpn"])
    tuned, _ = load_model(out / "model")
    assert _same(tuned.net.encoder, start.net.encoder)  # frozen during the only epoch
    assert not _same(tuned.net.decoder, start.net.decoder)  # the decoder learned
    card = (out / "model" / "README.md").read_text()
    assert f"init_from: `{saved_models['fpn']}`" in card and "encoder frozen for 1 epochs" in card
    # the encoder trains at a tenth of the learning rate once unfrozen
    from trus_hf.training.loop import _param_groups

    groups = _param_groups(tuned, TrainingArguments(learning_rate=1e-3, encoder_lr_factor=0.1))
    assert [g["lr"] for g in groups] == [pytest.approx(1e-4), pytest.approx(1e-3)]
    assert sum(len(g["params"]) for g in groups) == len(list(tuned.parameters()))


FROM_HUB = textwrap.dedent("""
    import json, sys
    from huggingface_hub import HfApi
    from trus_hf.cli import main
    local, out = sys.argv[1], sys.argv[2]
    assert main(["push", "--model", local, "--repo-id", "trus-org/start-fpn"]) == 0
    first = HfApi().repo_info("trus-org/start-fpn").sha
    assert main(["push", "--model", local, "--repo-id", "trus-org/start-fpn"]) == 0
    from trus_hf.training import main_train
    summary = main_train("fpn", ["--output_dir", out, "--epochs", "1", "--init_from", "trus-org/start-fpn",
                                 "--revision", first, *sys.argv[3:]])
    json.dump({"first": first, "model_dir": summary["model_dir"]}, open(out + "/hub.json", "w"))
""")


def test_start_from_a_hub_id_at_a_pinned_revision(saved_models, tmp_path):
    with LocalHub() as hub:
        env = hub.client_env(tmp_path)
        out = tmp_path / "from_hub"
        out.mkdir()
        run_python("-c", FROM_HUB, saved_models["fpn"], out, *TINY, env=env)
    info = json.loads((out / "hub.json").read_text())
    card = (out / "model" / "README.md").read_text()
    assert f"init_from: `trus-org/start-fpn@{info['first']}`" in card
    model, _ = load_model(info["model_dir"])
    assert model.config.encoder_name == TINY_FPN["encoder_name"]
