"""The memory flags of generate, edit and video (--dtype, --offload, --vae-tiling, --vae-slicing, --planner-offload),
and an out of memory ending as one line that names the flag to try."""
import pytest
import torch

from tests.test_cli import PROMPT, cli, one_error_line, recipe

pytestmark = pytest.mark.slow


def test_the_memory_flags_run_the_model_as_they_say(tmp_path, capsys):
    out = tmp_path / "out.png"
    code, _, err = cli(capsys, "generate", PROMPT, "-o", out, "--steps", 1, "--dtype", "bf16", "--offload", "model",
                       "--vae-tiling", "--no-vae-slicing", "--planner-offload")
    assert code == 0, err
    assert recipe(out)[0]["dtype"] == "bfloat16"
    with pytest.raises(SystemExit) as refused:  # argparse's own refusal
        cli(capsys, "generate", PROMPT, "-o", out, "--steps", 1, "--offload", "disk")
    assert refused.value.code == 2 and "--offload: invalid choice: 'disk'" in capsys.readouterr().err


@pytest.fixture
def out_of_memory_mid_denoise(monkeypatch):
    """The embedded model's adapter runs out of memory at its first step, on what stands in for a GPU."""
    import app.core.memory
    from app.core.backbones.sana import SanaAdapter

    def out_of_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(SanaAdapter, "_denoise", out_of_memory)
    monkeypatch.setattr(app.core.memory, "offload_can_help", lambda device: True)


def test_out_of_memory_says_in_one_line_which_flag_to_try(tmp_path, capsys, out_of_memory_mid_denoise):
    out = tmp_path / "out.png"
    code, _, err = cli(capsys, "generate", PROMPT, "-o", out, "--steps", 2, "--offload", "none")
    assert code == 2 and not out.exists()
    assert one_error_line(err) == ("error: Out of memory on cpu: run again with --offload model (or a smaller "
                                   "--width/--height, fewer --frames).")
    # The settings' offload is the starting point when no flag says otherwise.
    from app.settings import Settings

    Settings(offload="model").save()
    code, _, err = cli(capsys, "edit", _source(tmp_path), "make the circle green", "-o", out, "--steps", 2)
    assert code == 2 and "run again with --offload sequential" in one_error_line(err)


def _source(tmp_path):
    import numpy as np
    from PIL import Image

    path = tmp_path / "src.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(path)
    return path
