"""A served model box is no open door: local folders only under configured roots, Hub downloads bounded in size and
number, exports evicted, and no error message that reveals a server path."""

import json
import textwrap

import pytest
from conftest import run_python, tiny_model, tiny_processor
from hub_server import LocalHub

from trus_hf.serving import ModelCache, ModelSourceError, SourcePolicy, safe_message


def test_no_local_folders_on_a_public_server_and_the_same_answer_for_any_path(tmp_path):
    policy = SourcePolicy.from_env(server_name="0.0.0.0")
    assert policy.local_roots == []
    answers = set()
    for text in ("/etc", "/no/such/folder", str(tmp_path), "./relative", "~/models"):
        with pytest.raises(ModelSourceError) as err:
            policy.resolve(text)
        answers.add(str(err.value))
    assert answers == {"local model folders are not accepted by this server"}
    assert SourcePolicy.from_env(server_name="127.0.0.1").local_roots is None  # a developer's own machine


def test_local_folders_only_under_the_configured_roots(tmp_path, saved_models, monkeypatch):
    allowed, elsewhere = tmp_path / "models", tmp_path / "private"
    allowed.mkdir()
    elsewhere.mkdir()
    tiny_model("fpn").save_pretrained(allowed / "fpn", processor=tiny_processor())
    (allowed / "escape").symlink_to(elsewhere)
    monkeypatch.setenv("TRUS_HF_MODEL_ROOTS", str(allowed))
    policy = SourcePolicy.from_env(server_name="0.0.0.0")
    assert policy.resolve(str(allowed / "fpn")) == (allowed / "fpn").resolve()
    outside = set()
    for text in (str(elsewhere), str(allowed / ".." / "private"), str(allowed / "escape"), "/etc", "/no/such"):
        with pytest.raises(ModelSourceError) as err:
            policy.resolve(text)
        outside.add(str(err.value))
    assert outside == {"this folder is not one of the model folders this server accepts"}
    with pytest.raises(ModelSourceError, match="no model folder missing in the model folders") as err:
        policy.resolve(str(allowed / "missing"))
    assert str(tmp_path) not in str(err.value)


def test_load_errors_never_show_server_paths(tmp_path):
    broken = tmp_path / "models" / "broken"
    tiny_model("fpn").save_pretrained(broken, processor=tiny_processor())
    (broken / "model.safetensors").unlink()
    cache = ModelCache({}, SourcePolicy(local_roots=[tmp_path / "models"], allow_hub=False, cache_dir=tmp_path / "c"))
    with pytest.raises(ModelSourceError) as err:
        cache.get(str(broken), "torch")
    assert "no model.safetensors" in str(err.value) and str(tmp_path) not in str(err.value)
    with pytest.raises(ModelSourceError, match="Hub models are not accepted"):
        cache.get("org/model", "torch")
    assert safe_message("/tmp/x/y/config.json: invalid") == "config.json: invalid"


def test_onnx_exports_are_bounded_and_evicted(tmp_path, saved_models):
    policy = SourcePolicy(local_roots=None, allow_hub=False, cache_dir=tmp_path / "cache", max_exports=1)
    cache = ModelCache({}, policy)
    cache.get(str(saved_models["fpn"]), "onnx")
    first = sorted(p.name for p in policy.onnx_dir.iterdir())
    cache.get(str(saved_models["segformer"]), "onnx")
    second = sorted(p.name for p in policy.onnx_dir.iterdir())
    assert len(first) == len(second) == 1 and first != second  # the older export made room for the new one


def test_a_kfold_run_folder_serves_as_its_ensemble_on_both_backends(tmp_path):
    """The app's model box takes a k-fold run's folder (`--folds K`): its fold models answer together, on PyTorch
    and on ONNX Runtime (one export per fold), and a run short of a fold is refused with a message naming it."""
    import numpy as np

    from trus_hf.pipeline import KFOLD_SUMMARY
    from trus_hf.synthetic import generate_phantom

    run_dir = tmp_path / "run3"
    for i in (1, 2):
        tiny_model("fpn", seed=i).save_pretrained(run_dir / f"fold_{i}" / "model", processor=tiny_processor())
    (run_dir / KFOLD_SUMMARY).write_text(json.dumps({"k": 2}))
    cache = ModelCache({}, SourcePolicy(local_roots=None, allow_hub=False, cache_dir=tmp_path / "cache"))
    image = generate_phantom(3, (70, 90)).image
    torch_pipe, onnx_pipe = cache.get(str(run_dir), "torch"), cache.get(str(run_dir), "onnx")
    assert len(torch_pipe.models) == len(onnx_pipe.models) == 2 and onnx_pipe.backend == "onnx"
    assert len(list(cache.policy.onnx_dir.iterdir())) == 2  # each fold exported once, both kept
    np.testing.assert_allclose(torch_pipe(image).probabilities, onnx_pipe(image).probabilities, atol=1e-4)
    one = cache.get(str(run_dir / "fold_1" / "model"), "torch")(image).probabilities
    assert not np.allclose(one, torch_pipe(image).probabilities, atol=1e-4)  # the ensemble is not its first member
    (run_dir / "fold_2" / "model" / "config.json").unlink()
    with pytest.raises(ModelSourceError, match=r"fold model\(s\) missing: .*model"):
        ModelCache({}, SourcePolicy(local_roots=None, allow_hub=False, cache_dir=tmp_path / "c2")).get(str(run_dir))


CLIENT = textwrap.dedent("""
    import json, sys
    from trus_hf.cli import main
    from trus_hf.serving import ModelCache, ModelSourceError, SourcePolicy
    local, cache_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
    for repo in ("trus-org/one", "trus-org/two"):
        assert main(["push", "--model", local, "--repo-id", repo]) == 0
    answers = {}
    small = ModelCache({}, SourcePolicy(cache_dir=cache_dir + "/small", max_download_mb=0.05))
    try:
        small.get("trus-org/one")
    except ModelSourceError as exc:
        answers["too_big"] = str(exc)
    import pathlib
    answers["nothing_downloaded"] = not any(pathlib.Path(cache_dir, "small").rglob("*.safetensors"))
    quota = ModelCache({}, SourcePolicy(cache_dir=cache_dir + "/quota", max_downloads_per_hour=1))
    answers["first"] = quota.get("trus-org/one").labels
    quota._cache.clear()
    answers["again_from_cache"] = quota.get("trus-org/one").labels  # cached: no quota used
    try:
        quota.get("trus-org/two")
    except ModelSourceError as exc:
        answers["quota"] = str(exc)
    json.dump(answers, open(out, "w"))
""")


def test_hub_downloads_are_bounded_in_size_and_number(tmp_path, saved_models):
    with LocalHub() as hub:
        env = hub.client_env(tmp_path)
        out = tmp_path / "answers.json"
        run_python("-c", CLIENT, saved_models["fpn"], tmp_path / "cache", out, env=env)
    answers = json.loads(out.read_text())
    assert "exceed this server's download limit of 0.05 MB" in answers["too_big"] and answers["nothing_downloaded"]
    assert answers["first"] == answers["again_from_cache"] == ["lesion"]
    assert "at most 1 new Hub models an hour" in answers["quota"]
