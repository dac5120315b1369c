"""VOI window (PS3.3 C.11.2.1.2): center, width and the VOI LUT Function.

The same value object is used for the DICOMweb ``window=center,width[,function]`` query
parameter (PS3.18 8.3.5.1.4), for windows read from a file and for presets.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from media.imaging.errors import InvalidWindowError

#: VOI LUT Function (0028,1056) defined terms we implement.
FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
#: PS3.18 8.3.5.1.4 spells the function of the ``window`` parameter in lower case with a hyphen.
PS3_18_FUNCTIONS = {"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}
#: A plain ASCII decimal (float() would also take "1_000", "inf", "nan" and Unicode digits).
_DECIMAL = re.compile(
    r"[+-]?([0-9]{1,20}(\.[0-9]{0,20})?|\.[0-9]{1,20})([eE][+-]?[0-9]{1,3})?", re.ASCII
)


def _format_number(value: float) -> str:
    # repr() is the shortest string that round-trips; drop a trailing ".0" for tidy URLs.
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = "LINEAR"

    def __post_init__(self) -> None:
        text = str(self.function).strip()
        # The DICOM defined term (LINEAR_EXACT) or PS3.18's keyword (linear-exact), any case.
        function = PS3_18_FUNCTIONS.get(text.lower(), text.upper())
        if function not in FUNCTIONS:
            raise InvalidWindowError(
                f"window function {text[:40]!r} is not one of linear, linear-exact, sigmoid"
            )
        # Frozen dataclass: normalise through object.__setattr__ so equal windows hash equal.
        object.__setattr__(self, "function", function)
        object.__setattr__(self, "center", float(self.center))
        object.__setattr__(self, "width", float(self.width))
        if not (math.isfinite(self.center) and math.isfinite(self.width)):
            raise InvalidWindowError("window center and width must be finite numbers")
        # PS3.3 C.11.2.1.2.1: LINEAR needs width >= 1; C.11.2.1.3: others need width > 0.
        if function == "LINEAR" and self.width < 1:
            raise InvalidWindowError(
                f"window width {_format_number(self.width)} is below 1, "
                "the minimum for the LINEAR function"
            )
        if self.width <= 0:
            raise InvalidWindowError(
                f"window width {_format_number(self.width)} must be greater than 0"
            )

    @classmethod
    def parse(cls, text: str) -> Window:
        """Parse ``center,width[,function]`` (function case-insensitive)."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidWindowError("window is empty; expected 'center,width[,function]'")
        parts = [part.strip() for part in text.split(",")]
        if len(parts) not in (2, 3):
            raise InvalidWindowError(
                f"window {text[:60]!r} must have 2 or 3 comma-separated parts: "
                "center,width[,function]"
            )
        numbers: list[float] = []
        for name, part in zip(("center", "width"), parts[:2], strict=True):
            if _DECIMAL.fullmatch(part) is None:
                raise InvalidWindowError(f"window {name} {part[:40]!r} is not a decimal number")
            value = float(part)
            if not math.isfinite(value):
                raise InvalidWindowError(f"window {name} {part!r} is not a finite number")
            numbers.append(value)
        function = parts[2] if len(parts) == 3 else "LINEAR"
        if not function:
            raise InvalidWindowError(
                "window function is empty; use linear, linear-exact or sigmoid"
            )
        return cls(numbers[0], numbers[1], function)

    def to_param(self) -> str:
        """The DICOMweb query-parameter form, PS3.18 keywords; ``parse(w.to_param()) == w``."""
        text = f"{_format_number(self.center)},{_format_number(self.width)}"
        if self.function != "LINEAR":
            text += "," + {v: k for k, v in PS3_18_FUNCTIONS.items()}[self.function]
        return text
