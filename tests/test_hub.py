"""The Hub path for real over HTTP: a local Hub-compatible server and the real huggingface_hub client.

HF_ENDPOINT must be set before huggingface_hub is imported, so the client side runs in a child process.
"""

import json
import textwrap

from conftest import run_python
from hub_server import LocalHub

CLIENT = textwrap.dedent("""
    import json, sys, torch
    from huggingface_hub import HfApi
    from trus_hf import load_model
    from trus_hf.cli import main
    local, out = sys.argv[1], sys.argv[2]
    assert main(["push", "--model", local, "--repo-id", "trus-org/tiny-fpn"]) == 0
    model, proc = load_model("trus-org/tiny-fpn")
    ref, _ = load_model(local)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        diff = float((model(x).logits - ref(x).logits).abs().max())
    api = HfApi()
    first = api.repo_info("trus-org/tiny-fpn").sha
    card = open(api.hf_hub_download("trus-org/tiny-fpn", "README.md")).read()
    # a second push makes a new commit; the first stays loadable by pinned revision
    assert main(["push", "--model", local, "--repo-id", "trus-org/tiny-fpn"]) == 0
    pinned, _ = load_model("trus-org/tiny-fpn", revision=first)
    try:
        load_model("trus-org/missing")
        missing = "loaded?!"
    except ValueError as exc:
        missing = str(exc)
    files = sorted(s.rfilename for s in api.repo_info("trus-org/tiny-fpn").siblings)
    json.dump({"diff": diff, "card": card, "files": files, "missing": missing, "size": proc.size,
               "pinned_ok": pinned is not None}, open(out, "w"))
""")


def test_push_then_load_by_hub_id_gives_identical_logits(saved_models, tmp_path):
    with LocalHub() as hub:
        env = hub.client_env(tmp_path)
        out = tmp_path / "result.json"
        run_python("-c", CLIENT, saved_models["fpn"], out, env=env)
        requests = list(hub.state.requests)
    result = json.loads(out.read_text())
    assert result["diff"] == 0.0
    assert result["files"] == ["README.md", "config.json", "model.safetensors", "preprocessor_config.json"]
    assert "trus-org/tiny-fpn" in result["card"] and "path/to/model" not in result["card"]
    assert result["size"] == {"height": 64, "width": 64} and result["pinned_ok"]
    assert "cannot load model 'trus-org/missing'" in result["missing"]
    # the real protocol was used: YAML validation, preupload, LFS batch upload and a commit
    for expected in (
        "POST /api/validate-yaml",
        "POST /api/models/trus-org/tiny-fpn/preupload/main",
        "POST /trus-org/tiny-fpn.git/info/lfs/objects/batch",
        "POST /api/models/trus-org/tiny-fpn/commit/main",
    ):
        assert expected in requests, expected


DATASET_CLIENT = textwrap.dedent("""
    import sys
    import numpy as np
    from PIL import Image
    from pathlib import Path
    from trus_hf.cli import main
    from trus_hf.data import load_dataset
    from trus_hf.synthetic import generate_phantom
    root = Path(sys.argv[1])
    for sub in ("images", "masks"):
        (root / "export" / sub).mkdir(parents=True)
    for i in range(4):
        ph = generate_phantom(i, (64, 72))
        Image.fromarray(ph.image).save(root / "export" / "images" / f"c{i}.png")
        Image.fromarray(ph.gland_mask * 255).save(root / "export" / "masks" / f"c{i}.png")
    assert main(["import-labels", str(root / "export"), "--format", "folder", "--out", str(root / "ds"),
                 "--test-size", "0.5", "--push-to-hub", "trus-org/phantoms"]) == 0
    local = load_dataset(root / "ds" / "dataset")
    remote = load_dataset("trus-org/phantoms")
    assert sorted(remote) == sorted(local) == ["test", "train"]
    for split in local:
        assert sorted(remote[split]["file"]) == sorted(local[split]["file"])
        a = {r["file"]: np.asarray(r["mask"]) for r in local[split]}
        b = {r["file"]: np.asarray(r["mask"]) for r in remote[split]}
        assert all(np.array_equal(a[k], b[k]) for k in a)
    print("DATASET-OK")
""")


def test_dataset_push_then_load_by_hub_id(tmp_path):
    with LocalHub() as hub:
        env = hub.client_env(tmp_path, HF_DATASETS_OFFLINE="0")
        r = run_python("-c", DATASET_CLIENT, tmp_path, env=env)
        assert "DATASET-OK" in r.stdout, r.stderr[-4000:]
        assert any(req.startswith("POST /api/datasets/trus-org/phantoms/commit/") for req in hub.state.requests)


KFOLD_CLIENT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from huggingface_hub import HfApi
    from trus_hf import SegmentationPipeline
    from trus_hf.cli import main
    from trus_hf.synthetic import generate_phantom
    run, out = sys.argv[1], sys.argv[2]
    assert main(["push", "--model", run, "--repo-id", "trus-org/tiny-k2"]) == 0
    remote = SegmentationPipeline.from_pretrained("trus-org/tiny-k2", device="cpu")
    local = SegmentationPipeline.from_pretrained(run, device="cpu")
    image = generate_phantom(3, (80, 90)).image
    diff = float(np.abs(remote(image).probabilities - local(image).probabilities).max())
    api = HfApi()
    files = sorted(s.rfilename for s in api.repo_info("trus-org/tiny-k2").siblings)
    card = open(api.hf_hub_download("trus-org/tiny-k2", "README.md")).read()
    fold_card = open(api.hf_hub_download("trus-org/tiny-k2", "fold_2/model/README.md")).read()
    json.dump({"members": len(remote.models), "diff": diff, "files": files, "card": card, "fold_card": fold_card,
               "size": remote.processor.size}, open(out, "w"))
""")


def test_a_kfold_run_pushed_loads_back_by_hub_id_as_its_ensemble(tmp_path):
    from conftest import tiny_kfold_run

    run = tiny_kfold_run(tmp_path / "k2")
    for i in (1, 2):
        (run / f"fold_{i}" / "checkpoints").mkdir()  # training leftovers stay home
        (run / f"fold_{i}" / "checkpoints" / "junk.bin").write_bytes(b"0" * 100)
    with LocalHub() as hub:
        out = tmp_path / "result.json"
        run_python("-c", KFOLD_CLIENT, run, out, env=hub.client_env(tmp_path))
    result = json.loads(out.read_text())
    assert result["members"] == 2 and result["diff"] == 0.0 and result["size"] == {"height": 64, "width": 64}
    model_files = ["README.md", "config.json", "model.safetensors", "preprocessor_config.json"]
    assert result["files"] == sorted(
        ["README.md", "kfold_summary.json", *(f"fold_{i}/model/{f}" for i in (1, 2) for f in model_files)]
    )
    card = result["card"]
    assert "A 2-fold cross-validation run" in card and 'from_pretrained("trus-org/tiny-k2")' in card
    assert "| 2 | fold_2/model | 6 | 0.7000 | 0.8000 |" in card and "library_name: trus-hf" in card
    assert "trus-org/tiny-k2" in result["fold_card"] and "path/to/model" not in result["fold_card"]
