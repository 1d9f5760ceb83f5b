"""Region geometry and the spatial reward: pinned values, tolerant parsing, hypothesis properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from physio_ray.spatial.pitvqa import INSTRUMENTS
from physio_ray.spatial.regions import REGION_CENTRES, REGIONS, distance_to_region, position_class_of, sample_point
from physio_ray.spatial.rewards import (
    canonical_instrument,
    parse_points,
    says_no_instrument,
    spatial_reward,
    spatial_reward_breakdown,
    trl_spatial_reward,
)

SUCTION_TR = {"instrument": "suction", "position_class": 2}
NONE = {"instrument": "no_visible_instrument", "position_class": None}
coord = st.floats(min_value=0, max_value=100, allow_nan=False)
targets = st.one_of(
    st.builds(
        lambda i, c: {"instrument": i, "position_class": c},
        st.sampled_from(sorted(INSTRUMENTS.values())),
        st.integers(1, 5),
    ),
    st.just(NONE),
)


# ------------------------------------------------------------------ regions


@given(coord, coord)
def test_regions_partition_the_frame(x: float, y: float) -> None:
    cls = position_class_of(x, y)
    assert distance_to_region(x, y, cls) == 0.0
    # Any other region containing the point does so only on a shared border.
    for other in REGIONS:
        if other != cls and distance_to_region(x, y, other) == 0.0:
            assert x in (25.0, 50.0, 75.0) or y in (25.0, 50.0, 75.0)


def test_region_geometry_pinned() -> None:
    assert [position_class_of(*p) for p in [(10, 10), (90, 10), (50, 50), (10, 90), (90, 90), (40, 20), (20, 40)]] == [
        1, 2, 3, 4, 5, 1, 1,
    ]  # fmt: skip
    assert REGION_CENTRES[3] == (50.0, 50.0)
    assert REGION_CENTRES[1] == pytest.approx((20.8333, 20.8333))
    assert REGION_CENTRES[5] == pytest.approx((79.1667, 79.1667))
    for cls, (cx, cy) in REGION_CENTRES.items():
        assert position_class_of(cx, cy) == cls
    assert distance_to_region(50, 50, 1) == pytest.approx(25.0)  # centre of frame to the top-left L
    assert distance_to_region(60, 40, 1) == pytest.approx(math.hypot(10, 15))  # beside the L's notch
    assert sum(b.area for boxes in REGIONS.values() for b in boxes) == pytest.approx(100 * 100)


def test_sample_point_is_seeded_and_inside() -> None:
    a = [sample_point(c, np.random.default_rng(4), margin=3) for c in (1, 2, 3, 4, 5)]
    b = [sample_point(c, np.random.default_rng(4), margin=3) for c in (1, 2, 3, 4, 5)]
    assert a == b
    for cls, (x, y) in zip((1, 2, 3, 4, 5), a, strict=True):
        assert position_class_of(x, y) == cls
        assert min(distance_to_region(x, y, k) for k in REGIONS if k != cls) >= 3


# ------------------------------------------------------------------ pinned rewards


def test_full_reward_inside_the_true_region() -> None:
    assert spatial_reward("<point x='80' y='10'>suction</point>", SUCTION_TR) == 1.0
    assert (
        spatial_reward("The suction device is at <point x='67.5' y='12.0'>suction device</point>.", SUCTION_TR) == 1.0
    )


def test_reward_parts_and_distance_falloff() -> None:
    # right instrument, point 25 units left of the top-right region (in region 1): 0.5*(1-25/50) + 0.3
    b = spatial_reward_breakdown("<point x='25' y='10'>suction</point>", SUCTION_TR)
    assert (b.distance, b.instrument, b.quadrant) == (0.5, 1.0, 0.0)
    assert b.total == pytest.approx(0.55) and b.distance_to_region == pytest.approx(25.0)
    # right place, wrong instrument
    assert spatial_reward("<point x='80' y='10'>kerrisons</point>", SUCTION_TR) == pytest.approx(0.7)
    # far away: no distance credit at all
    assert spatial_reward("<point x='0' y='100'>kerrisons</point>", SUCTION_TR) == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "<point x='80' y='10'>suction</point>",
        '<point x="80" y="10">suction</point>',
        "<point x=80 y=10>suction</point>",
        "<point  x = ' 80.0 '  y = '10.00' >  Suction  </point>",
        "<POINT Y='10' X='80'>SUCTION</POINT>",
        "<point x='80%' y='10%' alt='tip'>suction</point>",
        "<point x='80' y='10'>suction_device</point>",
        "<point x='80' y='10'>the suction</point>",
        "<point x='80' y='10'>suctions</point>",
        "<point x='80' y='10'>suction</ point >",
    ],
)
def test_tolerant_formats_get_full_reward(text: str) -> None:
    assert spatial_reward(text, SUCTION_TR) == 1.0


@pytest.mark.parametrize(
    "label",
    ["suctioning", "not suction", "suction and kerrisons", "cup", "ring", "s", "rongeurs", "kerrisons suction"],
)
def test_no_substring_accidents_in_instrument_names(label: str) -> None:
    assert canonical_instrument(label) != "suction" or label == "suction"
    b = spatial_reward_breakdown(f"<point x='80' y='10'>{label}</point>", SUCTION_TR)
    assert b.instrument == 0.0 and b.total == pytest.approx(0.7)


def test_csv_names_and_synonyms() -> None:
    for name in INSTRUMENTS.values():
        assert canonical_instrument(name) == name
        assert canonical_instrument(name.replace("_", " ").upper()) == name
    assert canonical_instrument("Kerrison rongeur") == "kerrisons"
    assert canonical_instrument("hemostatic-foam") == "haemostatic_foam"
    assert canonical_instrument("Micro Doppler probe") == "micro_doppler"
    assert canonical_instrument("") is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "suction at the top right",
        "<point x='80'>suction</point>",  # no y
        "<point x='80' y='10' x='5'>suction</point>",  # repeated x
        "<point x='180' y='10'>suction</point>",  # off the 0-100 scale
        "<point x='-5' y='10'>suction</point>",
        "<point x='nan' y='10'>suction</point>",
        "<point x='1e400' y='10'>suction</point>",
        "<point x='0x50' y='10'>suction</point>",
        "<point x='80' y='10'>suction",  # unclosed
        "<point x='80' y='10' suction</point>",
        "(80, 10) suction",
    ],
)
def test_malformed_outputs_get_the_minimum(text: str) -> None:
    assert spatial_reward(text, SUCTION_TR) == 0.0


def test_only_the_first_point_counts() -> None:
    spray = "".join(f"<point x='{x}' y='{y}'>suction</point>" for x, y in [(10, 90), (80, 10), (50, 50)])
    assert spatial_reward(spray, SUCTION_TR) == spatial_reward("<point x='10' y='90'>suction</point>", SUCTION_TR)
    # a malformed first tag is skipped, the first well-formed one is scored
    assert spatial_reward("<point x='999' y='1'>a</point><point x='80' y='10'>suction</point>", SUCTION_TR) == 1.0


def test_no_instrument_target() -> None:
    for text in (
        "No surgical instrument is visible in this frame.",
        "None.",
        "There are no instruments.",
        "no_visible_instrument",
    ):
        assert says_no_instrument(text), text
        assert spatial_reward(text, NONE) == 1.0
    assert spatial_reward("<point x='50' y='50'>suction</point>", NONE) == 0.0
    assert spatial_reward("<point x='50' y='50'>none</point>", NONE) == 0.0
    assert spatial_reward("I am not sure.", NONE) == 0.0
    assert spatial_reward("nonetheless, nothing else", NONE) == 0.0
    # saying none when there is an instrument earns nothing
    assert spatial_reward("No instrument is visible.", SUCTION_TR) == 0.0


def test_invalid_targets_raise_naming_the_value() -> None:
    with pytest.raises(ValueError, match="scalpel"):
        spatial_reward("x", {"instrument": "scalpel", "position_class": 1})
    with pytest.raises(ValueError, match="7"):
        spatial_reward("x", {"instrument": "suction", "position_class": 7})
    with pytest.raises(ValueError, match="None"):
        spatial_reward("x", {"instrument": "suction", "position_class": None})


def test_trl_wrapper_reads_chat_completions_and_null_classes() -> None:
    got = trl_spatial_reward(
        completions=[[{"role": "assistant", "content": "<point x='80' y='10'>suction</point>"}], "None", "junk"],
        instrument=["suction", "no_visible_instrument", "suction"],
        position_class=[2, float("nan"), np.int64(2)],
    )
    assert got == [1.0, 1.0, 0.0]


def test_parse_points_keeps_order_and_labels() -> None:
    pts = parse_points("<point x='1' y='2'>a</point> text <point y=\"4.5\" x=3>b c</point>")
    assert [(p.x, p.y, p.label) for p in pts] == [(1.0, 2.0, "a"), (3.0, 4.5, "b c")]


# ------------------------------------------------------------------ properties


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), targets)
def test_reward_is_bounded_and_never_raises_on_arbitrary_text(text: str, target: dict) -> None:
    assert 0.0 <= spatial_reward(text, target) <= 1.0


tag_text = st.builds(
    lambda pre, x, y, label, post: f"{pre}<point x='{x}' y='{y}'>{label}</point>{post}",
    st.text(max_size=40),
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-200, 300), st.text(max_size=6)),
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-200, 300), st.text(max_size=6)),
    st.one_of(st.sampled_from(sorted(INSTRUMENTS.values())), st.text(max_size=20)),
    st.text(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(tag_text, targets)
def test_reward_is_bounded_on_near_miss_tags(text: str, target: dict) -> None:
    assert 0.0 <= spatial_reward(text, target) <= 1.0


@st.composite
def inside_point(draw: st.DrawFn) -> tuple[int, float, float]:
    cls = draw(st.integers(1, 5))
    box = draw(st.sampled_from(REGIONS[cls]))
    x = draw(st.floats(box.x0, box.x1))
    y = draw(st.floats(box.y0, box.y1))
    return cls, x, y


@settings(max_examples=300, deadline=None)
@given(inside_point(), st.sampled_from(sorted(INSTRUMENTS.values())))
def test_a_point_inside_the_region_gets_full_distance_credit(p: tuple[int, float, float], name: str) -> None:
    cls, x, y = p
    b = spatial_reward_breakdown(
        f"<point x='{x!r}' y='{y!r}'>{name}</point>", {"instrument": name, "position_class": cls}
    )
    assert b.distance == 1.0 and b.instrument == 1.0
    assert b.total == 1.0 or position_class_of(x, y) != cls  # only a shared border can lose the class credit
