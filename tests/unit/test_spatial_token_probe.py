"""The tip-token probe: the token it reads holds the rendered tip, and the probe report's shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
def test_tip_token_holds_the_drawn_marker_in_the_processor_order(processor, cls: int) -> None:
    """The processor's own patches for the chosen token (4 consecutive 14 px patches of the
    resized frame) show the marker's colour, and every token that shows it touches that one."""
    frame = render_frame("cup_forceps", cls, seed=40 + cls)
    assert frame.point is not None
    ip = processor.image_processor
    got = ip(images=[Image.fromarray(frame.image)], return_tensors="np")
    grid = got["image_grid_thw"][0].tolist()
    assert grid == [1, 10, 18]  # 256 x 144 -> 252 x 140 -> 18 x 10 patches -> 9 x 5 merged tokens
    # rows of pixel_values: per merged token its 2 x 2 patches, each (channel, time, 14, 14), normalised
    patches = got["pixel_values"].reshape(-1, 4, 3, 2, 14, 14)[:, :, :, 0]
    rgb = (
        patches * np.array(ip.image_std)[None, None, :, None, None] + np.array(ip.image_mean)[None, None, :, None, None]
    ) * 255
    _, colour = instrument_style("cup_forceps")
    close = (np.abs(rgb - np.array(colour)[None, None, :, None, None]).sum(axis=2) < 80).sum(axis=(1, 2, 3))
    index = tip_token_index(frame.point, grid)
    assert close[index] >= 20
    for k in np.flatnonzero(close >= 5):
        assert abs(k // 9 - index // 9) <= 1 and abs(k % 9 - index % 9) <= 1, (k, index)
    with pytest.raises(ValueError, match="no merged tokens"):
        tip_token_index((50.0, 50.0), (1, 1, 1))


def test_tip_states_and_probe_report(processor, rendered: Path) -> None:
    model = build_tiny_model(processor)
    got = tip_states(
        model,
        processor,
        Image.new("RGB", (256, 144)),
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
