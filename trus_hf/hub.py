"""The Hugging Face Hub: push a model folder (validated, its card given the repo ID) and any folder.

Everything goes through `huggingface_hub` (``HF_ENDPOINT`` and ``HF_TOKEN`` are honoured), so the same code talks to
huggingface.co or to a local Hub-compatible server. Loading by Hub ID is `trus_hf.load_model`; cards are rendered by
`trus_hf.modelcard`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from huggingface_hub import HfApi

from .modelcard import MODEL_ID_PLACEHOLDER
from .models import load_model

__all__ = ["push_folder", "push_model"]


def push_folder(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload trus-hf model",
    revision: str | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload every file of ``folder``; returns the commit URL or OID."""
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        commit_message=commit_message,
        revision=revision,
        ignore_patterns=[".*", "*.tmp", "checkpoints/*"],
    )
    return str(getattr(info, "oid", info))


def push_model(
    folder: str | Path, repo_id: str, private: bool = False, token: str | None = None, revision: str | None = None
) -> str:
    """Validate a saved model folder (it must load), put the repo ID into its card, and upload it (model,
    processor, card, and ``model.onnx`` / ``model_int8.onnx`` when present)."""
    folder = Path(folder)
    load_model(folder, backend="onnx" if not (folder / "model.safetensors").is_file() else "torch")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model"
        shutil.copytree(folder, staged, ignore=shutil.ignore_patterns(".*", "*.tmp", "checkpoints"))
        card = staged / "README.md"
        if card.is_file():
            card.write_text(card.read_text().replace(MODEL_ID_PLACEHOLDER, repo_id))
        return push_folder(staged, repo_id, private=private, token=token, revision=revision)
