"""Common CT window presets (Hounsfield units), with English and Chinese labels for the UI."""

from __future__ import annotations

from media.imaging.window import Window

PRESETS: dict[str, Window] = {
    "lung": Window(-600, 1500),
    "mediastinum": Window(50, 350),
    "bone": Window(400, 1800),
    "brain": Window(40, 80),
    "abdomen": Window(50, 400),
    "liver": Window(30, 150),
    "stroke": Window(40, 40),
}

#: preset name -> (English label, Chinese label)
PRESET_LABELS: dict[str, tuple[str, str]] = {
    "lung": ("Lung", "肺窗"),
    "mediastinum": ("Mediastinum", "纵隔窗"),
    "bone": ("Bone", "骨窗"),
    "brain": ("Brain", "脑窗"),
    "abdomen": ("Abdomen", "腹部窗"),
    "liver": ("Liver", "肝脏窗"),
    "stroke": ("Stroke", "脑卒中窗"),
}
