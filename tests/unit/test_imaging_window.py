import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.imaging.errors import ImagingError, InvalidWindowError
from media.imaging.window import Window
from media.imaging.window_presets import PRESET_LABELS, PRESETS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("40,400", Window(40, 400, "LINEAR")),
        (" -600 , 1500 ", Window(-600, 1500)),
        ("40.5,80.25,linear_exact", Window(40.5, 80.25, "LINEAR_EXACT")),
        ("0,0.5,SIGMOID", Window(0, 0.5, "SIGMOID")),
        ("1e3,1e3,Linear", Window(1000, 1000, "LINEAR")),
        ("40,400,linear-exact", Window(40, 400, "LINEAR_EXACT")),
        ("+.5,2.,LINEAR-EXACT", Window(0.5, 2, "LINEAR_EXACT")),
    ],
)
def test_parse_valid(text: str, expected: Window) -> None:
    assert Window.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "40",
        "40,400,linear,extra",
        "a,400",
        "40,b",
        "nan,400",
        "40,inf",
        "40,0.5",  # LINEAR needs width >= 1
        "40,0,sigmoid",
        "40,-1,linear_exact",
        "40,400,gamma",
        "40,400,",
        "٣,400",  # Unicode digits: float() takes them, a DICOMweb number is ASCII
        "40,4_00",  # float() takes underscores
        "40,400,linear exact",
        "40,400,linear--exact",
        "1" * 5000 + ",400",
        "40, 400 ,sigmoid,",
        "0x10,400",
    ],
)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(InvalidWindowError) as info:
        Window.parse(text)
    assert isinstance(info.value, ImagingError)
    assert info.value.message


def test_round_trip_and_normalisation() -> None:
    for window in [
        Window(40, 400),
        Window(-600.5, 1500, "sigmoid"),
        Window(1e-3, 2.5, "Linear_Exact"),
    ]:
        assert Window.parse(window.to_param()) == window
    assert Window(40, 400).to_param() == "40,400"
    assert Window(1, 2, "sigmoid").to_param() == "1,2,sigmoid"
    assert Window(1, 2, "LINEAR_EXACT").to_param() == "1,2,linear-exact"


def test_ps3_18_function_keywords_exactly() -> None:
    """PS3.18 Table 8.3.5-1 spells the window functions linear, linear-exact, sigmoid."""
    assert {Window.parse(f"40,400,{k}").function for k in ("linear", "linear-exact", "sigmoid")} \
        == {"LINEAR", "LINEAR_EXACT", "SIGMOID"}
    assert [Window(0, 2, f).to_param().split(",")[2] for f in ("LINEAR_EXACT", "SIGMOID")] == [
        "linear-exact",
        "sigmoid",
    ]
    assert hash(Window(40, 400, "linear")) == hash(Window(40.0, 400.0, "LINEAR"))


def test_constructor_validates() -> None:
    with pytest.raises(InvalidWindowError):
        Window(math.nan, 10)
    with pytest.raises(InvalidWindowError):
        Window(0, 0.9, "LINEAR")
    assert Window(0, 0.9, "LINEAR_EXACT").width == 0.9


def test_presets() -> None:
    expected = {
        "lung": (-600, 1500),
        "mediastinum": (50, 350),
        "bone": (400, 1800),
        "brain": (40, 80),
        "abdomen": (50, 400),
        "liver": (30, 150),
        "stroke": (40, 40),
    }
    assert {name: (w.center, w.width) for name, w in PRESETS.items()} == expected
    assert set(PRESET_LABELS) == set(PRESETS)
    assert PRESET_LABELS["lung"] == ("Lung", "肺窗")
    assert all(en and zh for en, zh in PRESET_LABELS.values())


@given(
    center=st.floats(allow_nan=False, allow_infinity=False, width=64),
    width=st.floats(min_value=1, max_value=1e300, allow_nan=False),
    function=st.sampled_from(["LINEAR", "LINEAR_EXACT", "SIGMOID"]),
)
def test_parse_round_trips_any_window(center: float, width: float, function: str) -> None:
    window = Window(center, width, function)
    assert Window.parse(window.to_param()) == window


@given(st.text(max_size=80))
def test_parse_any_text_is_a_window_or_an_invalid_window_error(text: str) -> None:
    try:
        window = Window.parse(text)
    except InvalidWindowError as exc:
        assert exc.message
    else:
        assert math.isfinite(window.center) and window.width > 0
        assert window.function in ("LINEAR", "LINEAR_EXACT", "SIGMOID")
