"""No emoji in the web client's shipped HTML, JS and CSS (#9): the product's machines install
only fonts-noto-cjk, which has no colour-emoji font, so an emoji (the notification bell 🔔, a
⚠ or ✔ before a line) renders as an empty box. Icons are inline SVG from client_web/js/lib/
icons.js; this test fails on any code point that Unicode marks Emoji (emoji-data.txt, Emoji=Yes)
outside ASCII, on any character outside the Basic Multilingual Plane (where nearly every emoji
lives) and on the emoji presentation selector U+FE0F."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "client_web"
ICONS = CLIENT / "js" / "lib" / "icons.js"

# Emoji=Yes in the BMP above ASCII (Unicode 15.1 emoji-data.txt); ASCII # * 0-9 are keycap bases
BMP_EMOJI = [
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
    (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA), (0x231A, 0x231B), (0x2328, 0x2328),
    (0x23CF, 0x23CF), (0x23E9, 0x23F3), (0x23F8, 0x23FA), (0x24C2, 0x24C2), (0x25AA, 0x25AB),
    (0x25B6, 0x25B6), (0x25C0, 0x25C0), (0x25FB, 0x25FE), (0x2600, 0x2604), (0x260E, 0x260E),
    (0x2611, 0x2611), (0x2614, 0x2615), (0x2618, 0x2618), (0x261D, 0x261D), (0x2620, 0x2620),
    (0x2622, 0x2623), (0x2626, 0x2626), (0x262A, 0x262A), (0x262E, 0x262F), (0x2638, 0x263A),
    (0x2640, 0x2640), (0x2642, 0x2642), (0x2648, 0x2653), (0x265F, 0x2660), (0x2663, 0x2663),
    (0x2665, 0x2666), (0x2668, 0x2668), (0x267B, 0x267B), (0x267E, 0x267F), (0x2692, 0x2697),
    (0x2699, 0x2699), (0x269B, 0x269C), (0x26A0, 0x26A1), (0x26A7, 0x26A7), (0x26AA, 0x26AB),
    (0x26B0, 0x26B1), (0x26BD, 0x26BE), (0x26C4, 0x26C5), (0x26C8, 0x26C8), (0x26CE, 0x26CF),
    (0x26D1, 0x26D1), (0x26D3, 0x26D4), (0x26E9, 0x26EA), (0x26F0, 0x26F5), (0x26F7, 0x26FA),
    (0x26FD, 0x26FD), (0x2702, 0x2702), (0x2705, 0x2705), (0x2708, 0x270D), (0x270F, 0x270F),
    (0x2712, 0x2712), (0x2714, 0x2714), (0x2716, 0x2716), (0x271D, 0x271D), (0x2721, 0x2721),
    (0x2728, 0x2728), (0x2733, 0x2734), (0x2744, 0x2744), (0x2747, 0x2747), (0x274C, 0x274C),
    (0x274E, 0x274E), (0x2753, 0x2755), (0x2757, 0x2757), (0x2763, 0x2764), (0x2795, 0x2797),
    (0x27A1, 0x27A1), (0x27B0, 0x27B0), (0x27BF, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B07),
    (0x2B1B, 0x2B1C), (0x2B50, 0x2B50), (0x2B55, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D),
    (0x3297, 0x3297), (0x3299, 0x3299),
]


def is_emoji(ch: str) -> bool:
    cp = ord(ch)
    return cp > 0xFFFF or cp == 0xFE0F or any(lo <= cp <= hi for lo, hi in BMP_EMOJI)


def shipped() -> list[Path]:
    return sorted(p for p in CLIENT.rglob("*") if p.suffix in {".html", ".js", ".css"})


def emoji_in(text: str) -> list[tuple[int, str]]:
    return [(n, f"U+{ord(ch):04X}") for n, line in enumerate(text.splitlines(), 1)
            for ch in line if is_emoji(ch)]


def test_the_check_sees_emoji_and_leaves_other_symbols_alone():
    assert emoji_in("🔔 ⚠ ✔ ✖ ↔ ▶ ©\uFE0F") == [
        (1, f"U+{c:04X}") for c in (0x1F514, 0x26A0, 0x2714, 0x2716, 0x2194, 0x25B6, 0xA9, 0xFE0F)]
    assert emoji_in("→ ← ▲ ▼ ● ✓ ✗ … — · 中文 ＜＞ # * 0-9") == []


def test_no_emoji_in_the_shipped_client():
    files = shipped()
    assert len(files) > 50 and ICONS in files
    found = [f"{p.relative_to(REPO)}:{n}: {cp}" for p in files
             for n, cp in emoji_in(p.read_text(encoding="utf-8"))]
    assert found == [], "use an icon of client_web/js/lib/icons.js instead:\n" + "\n".join(found)


def test_the_bell_and_warnings_come_from_the_icon_module():
    """One way in: the pages that showed 🔔, ⚠, ✔ and ✖ ask icons.js for SVG icons."""
    names = set(re.findall(r"^  ([a-z]+): '<", ICONS.read_text(encoding="utf-8"), re.M))
    assert {"bell", "warning", "check", "cross", "more"} <= names
    uses = {
        "js/components/notification-badge.js": 'icon("bell")',
        "js/components/call-ui.js": 'icon("warning")',
        "js/pages/expert.js": 'icon("warning")',
        "js/pages/app.js": 'icon("check")',
    }
    for rel, call in uses.items():
        assert call in (CLIENT / rel).read_text(encoding="utf-8"), rel
    for path in shipped():
        text = path.read_text(encoding="utf-8")
        if path != ICONS:
            assert "<svg" not in text, f"{path.relative_to(REPO)}: an SVG outside js/lib/icons.js"
