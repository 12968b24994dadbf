"""Model loading and layer location across families."""

from __future__ import annotations

import pytest
import torch
from tiny import CONFIGS, tiny_model

from emocurate.errors import ModelLoadError
from emocurate.vectors import models
from emocurate.vectors.models import default_layer, final_norm, find_layers, load_model, unembedding


@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_find_layers_every_family(model_type):
    model = tiny_model(model_type)
    path, layers = find_layers(model)
    assert path == models.FAMILY_LAYERS[model_type]
    assert len(layers) == 4
    assert final_norm(model) is not None
    assert unembedding(model).shape == (512, 32)


def test_unknown_family_names_the_model_type():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"model_type": "weirdformer"})()
            self.blocks = torch.nn.ModuleList([torch.nn.Linear(2, 2)])

    with pytest.raises(ModelLoadError, match="weirdformer"):
        find_layers(Odd())


def test_load_embedded(lm260k):
    assert lm260k.n_layers == 5 and lm260k.hidden_size == 64
    assert lm260k.tokenizer.pad_token_id is not None
    assert len(lm260k.revision) == 16
    assert default_layer(5) == 2


def test_load_embedded_gguf():
    gguf_file = models.embedded_model_dir() / "stories260K.clean.gguf"
    lm = load_model(str(gguf_file))
    ref = load_model("stories260K")
    ids = torch.tensor([[1, 403, 407, 378]])
    with torch.inference_mode():
        a = lm.model(input_ids=ids).logits
        b = ref.model(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-4)


def test_load_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelLoadError, match="dtype"):
        load_model("stories260K", dtype="int3")
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_model(str(tmp_path))


def test_trust_remote_code_off_unless_asked(monkeypatch):
    import transformers

    seen = []

    def fake(src, **kwargs):
        seen.append(kwargs.get("trust_remote_code"))
        raise OSError("no such repo")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake)
    with pytest.raises(ModelLoadError):
        load_model("someone/some-model")
    with pytest.raises(ModelLoadError):
        load_model("someone/some-model", trust_remote_code=True)
    assert seen == [False, True]
