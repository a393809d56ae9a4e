"""load_model resolves zoo names, user files and exported programs; user mistakes are one-line UserErrors."""

import textwrap

import pytest
import torch

from edgefit import models
from edgefit.errors import UserError
from edgefit.models.loading import LoadedModel, load_model


def _one_line(excinfo: pytest.ExceptionInfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_zoo_name_with_options() -> None:
    lm = load_model("bottlefit_resnet50", channels=6)
    assert isinstance(lm, LoadedModel)
    assert lm.name == "bottlefit_resnet50" and lm.split_after == "encoder"
    assert lm.module.encoder[-1].out_channels == 6
    assert lm.example_inputs[0].shape == (1, 3, 224, 224)
    digits = load_model("digits_cnn")
    assert digits.split_after is None and digits.example_inputs[0].shape == (1, 1, 8, 8)


def test_weights_load_and_mismatches_name_the_keys(tmp_path) -> None:
    trained = models.create("digits_cnn", seed=5)
    path = tmp_path / "w.pt"
    torch.save(trained.state_dict(), path)
    lm = load_model("digits_cnn", weights=str(path))
    assert torch.equal(lm.module.classifier.weight, trained.classifier.weight)
    torch.save({"state_dict": trained.state_dict()}, tmp_path / "ckpt.pt")  # a training checkpoint
    assert torch.equal(
        load_model("digits_cnn", str(tmp_path / "ckpt.pt")).module.features[0][0].weight,
        trained.features[0][0].weight,
    )

    sd = trained.state_dict()
    sd.pop("classifier.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["features.0.0.weight"] = torch.zeros(16, 1, 5, 5)
    torch.save(sd, path)
    with pytest.raises(UserError) as e:
        load_model("digits_cnn", weights=str(path))
    msg = _one_line(e)
    assert "missing 1: classifier.bias" in msg and "unexpected 1: extra.weight" in msg
    assert "features.0.0.weight (16, 1, 5, 5) vs (16, 1, 3, 3)" in msg
    with pytest.raises(UserError, match="does not exist"):
        load_model("digits_cnn", weights=str(tmp_path / "nope.pt"))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(UserError, match="cannot read weights"):
        load_model("digits_cnn", weights=str(tmp_path / "junk.pt"))


def _write(tmp_path, name: str, body: str):
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


def test_user_file_with_example_inputs_function(tmp_path) -> None:
    p = _write(
        tmp_path,
        "net.py",
        """
        import torch
        from torch import nn

        def build(width=4):
            m = nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU())
            m.split_after = "0"
            return m

        def example_inputs():
            return (torch.ones(1, 3, 5, 5),)
        """,
    )
    lm = load_model(f"{p}:build", width=6)
    assert lm.name == "build" and lm.split_after == "0"
    assert lm.module[0].out_channels == 6 and not lm.module.training
    assert lm.example_inputs[0].shape == (1, 3, 5, 5)


def test_user_file_with_example_input_attribute(tmp_path) -> None:
    p = _write(
        tmp_path,
        "net.py",
        """
        import torch
        from torch import nn

        def make():
            m = nn.Linear(4, 2)
            m.example_input = torch.zeros(2, 4)
            return m
        """,
    )
    lm = load_model(f"{p}:make")
    assert lm.example_inputs[0].shape == (2, 4) and lm.split_after is None


def test_user_file_mistakes_are_one_line(tmp_path) -> None:
    p = _write(tmp_path, "noex.py", "from torch import nn\n\ndef make():\n    return nn.Linear(2, 2)\n")
    with pytest.raises(UserError, match="gives no example input") as e:
        load_model(f"{p}:make")
    _one_line(e)
    with pytest.raises(UserError, match="has no function 'nope'; it defines: make") as e:
        load_model(f"{p}:nope")
    bad = _write(tmp_path, "bad.py", "import torch\nraise ValueError('line one\\nline two')\n")
    with pytest.raises(UserError, match=r"importing .*bad.py failed: ValueError: line one line two") as e:
        load_model(f"{bad}:make")
    _one_line(e)
    syntax = _write(tmp_path, "syntax.py", "def make(:\n")
    with pytest.raises(UserError, match="SyntaxError"):
        load_model(f"{syntax}:make")
    notmod = _write(tmp_path, "notmod.py", "def make():\n    return 3\n")
    with pytest.raises(UserError, match=r"returned int, not a torch\.nn\.Module"):
        load_model(f"{notmod}:make")
    with pytest.raises(UserError, match="does not exist"):
        load_model(f"{tmp_path}/missing.py:make")
    with pytest.raises(UserError, match=r"as .*noex.py:FUNCTION"):
        load_model(str(p))


def test_unknown_spec_lists_the_forms() -> None:
    with pytest.raises(UserError, match=r"did you mean 'resnet18'.*path/file.py:FUNCTION.*file.pt2") as e:
        load_model("resnet81")
    _one_line(e)


def test_exported_program_round_trip(tmp_path) -> None:
    m = models.create("digits_cnn")
    x = models.example_input("digits_cnn")
    path = tmp_path / "digits.pt2"
    torch.export.save(torch.export.export(m, (x,)), path)
    lm = load_model(str(path))
    assert isinstance(lm.module, torch.export.ExportedProgram) and lm.name == "digits"
    assert torch.equal(lm.example_inputs[0], x)
    with torch.no_grad():
        torch.testing.assert_close(lm.module.module()(x), m(x))
    with pytest.raises(UserError, match="carries its own weights"):
        load_model(str(path), weights="w.pt")
    (tmp_path / "junk.pt2").write_bytes(b"junk")
    with pytest.raises(UserError, match="cannot load exported program") as e:
        load_model(str(tmp_path / "junk.pt2"))
    _one_line(e)
    with pytest.raises(UserError, match="does not exist"):
        load_model(str(tmp_path / "none.pt2"))
