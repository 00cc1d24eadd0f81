"""HDR10 static metadata of a decoded frame, in the syntax x264 and x265 take it."""

from __future__ import annotations

import struct
from fractions import Fraction
from typing import Any


def hdr_metadata(frame: Any) -> tuple[str | None, str | None]:
    """Mastering display colour volume and content light level side data of a decoded
    frame (SEI or container), in x264/x265 option syntax."""
    mastering = light = None
    for side_data in frame.side_data:
        name = getattr(side_data.type, "name", str(side_data.type))
        data = bytes(side_data)
        if name == "MASTERING_DISPLAY_METADATA" and len(data) >= 88:
            # AVMasteringDisplayMetadata: primaries[3][2] (R, G, B), white point[2], min, max
            # luminance, all AVRational (int32 num, den), then has_primaries, has_luminance.
            values = struct.unpack_from("<20i2i", data)
            rationals = [Fraction(values[k], values[k + 1]) if values[k + 1] else Fraction(0)
                         for k in range(0, 20, 2)]
            has_primaries, has_luminance = values[20], values[21]
            if not (has_primaries and has_luminance):
                continue
            (rx, ry, gx, gy, bx, by, wx, wy), (low, high) = rationals[:8], rationals[8:]

            def xy(x: Fraction, y: Fraction) -> str:
                return f"({round(x * 50000)},{round(y * 50000)})"

            mastering = (f"G{xy(gx, gy)}B{xy(bx, by)}R{xy(rx, ry)}WP{xy(wx, wy)}"
                         f"L({round(high * 10000)},{round(low * 10000)})")
        elif name == "CONTENT_LIGHT_LEVEL" and len(data) >= 8:
            max_cll, max_fall = struct.unpack_from("<2I", data)
            light = f"{max_cll},{max_fall}"
    return mastering, light
