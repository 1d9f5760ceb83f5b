"""The tip-token probe: the token it reads holds the rendered tip, and the probe report's shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from physio_ray.spatial.config import RenderedConfig
from physio_ray.spatial.dataset import rendered_records
from physio_ray.spatial.records import write_records
from physio_ray.spatial.render import instrument_style, render_frame
from physio_ray.spatial.tiny_qwen2vl import build_processor, build_tiny_model
from physio_ray.spatial.token_probe import probe_tip_tokens, tip_states, tip_token_index


@pytest.fixture(scope="module")
def processor():
    return build_processor()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rendered_probe")
    recs = rendered_records(root, RenderedConfig(count=60, seed=11, val_fraction=0.4))
    for split in ("train", "val"):
        write_records([r for r in recs["sft_stage1"] if r["split"] == split], "sft_stage1", root, split, ["parquet"])
    return root


@pytest.mark.parametrize("cls", [1, 2, 3, 4, 5])
def test_tip_token_covers_the_drawn_marker(processor, cls: int) -> None:
    """The pixels under the chosen merged token (28 x 28 resized px) hold the marker's colour."""
    from PIL import Image

    frame = render_frame("cup_forceps", cls, seed=40 + cls)
    assert frame.point is not None
    image = Image.fromarray(frame.image)
    grid = processor.image_processor(images=[image], return_tensors="np")["image_grid_thw"][0].tolist()
    assert grid == [1, 10, 18]  # 256 x 144 -> 252 x 140 -> 18 x 10 patches -> 9 x 5 merged tokens
    index = tip_token_index(frame.point, grid)
    row, col = divmod(index, 9)
    ys, xs = (
        slice(round(row * 144 / 5), round((row + 1) * 144 / 5)),
        slice(round(col * 256 / 9), round((col + 1) * 256 / 9)),
    )
    _, colour = instrument_style("cup_forceps")
    close = np.abs(frame.image[ys, xs].astype(int) - np.array(colour)).sum(axis=2) < 60
    assert close.sum() >= 20
    with pytest.raises(ValueError, match="no merged tokens"):
        tip_token_index((50.0, 50.0), (1, 1, 1))


def test_tip_states_and_probe_report(processor, rendered: Path) -> None:
    model = build_tiny_model(processor)
    got = tip_states(
        model,
        processor,
        __import__("PIL.Image").Image.new("RGB", (256, 144)),
        "Point to the tip of the primary surgical instrument in this frame and name it.",
        "<point x='10.0' y='20.0'>suction</point> in the top-left region.",
        (10.0, 20.0),
    )
    n_layers = model.config.text_config.num_hidden_layers
    assert got["states"].shape == (n_layers + 1, model.config.text_config.hidden_size)
    assert got["name_hit"] in (True, False)

    out = probe_tip_tokens(model, processor, rendered, n_train=200, n_val=200)
    assert out["n_train"] >= 20 and out["n_val"] >= 20
    assert [row["layer"] for row in out["layers"]] == list(range(n_layers + 1))
    for row in out["layers"]:
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["macro_f1"] <= 1.0
    assert 0.0 <= out["majority_accuracy"] < 0.5  # 18 instruments drawn uniformly
    assert out["name_first_token_accuracy"] is not None
    with pytest.raises(ValueError, match="usable 'train' frames"):
        probe_tip_tokens(model, processor, rendered, n_train=5, n_val=200)
