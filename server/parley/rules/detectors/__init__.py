"""Detectors: personal data found by knowing its format, not by one regex.

Use one in a rule with ``detector: <name>`` (see docs/rules.md, "Detectors").
"""

from __future__ import annotations

from typing import Literal, get_args

from parley.rules.detectors import cards, email, iban, national_ids, phone
from parley.rules.detectors.base import Detector, Validator

DetectorName = Literal["card_number", "iban", "email_address", "phone_number", "us_ssn", "uk_nino"]
DETECTOR_NAMES: tuple[str, ...] = get_args(DetectorName)
_FIXED = {
    "card_number": cards.DETECTOR,
    "iban": iban.DETECTOR,
    "email_address": email.DETECTOR,
    "us_ssn": national_ids.SSN,
    "uk_nino": national_ids.NINO,
}


def build_detector(name: str, *, regions: tuple[str, ...] = ()) -> Detector:
    """The detector called ``name``; ``regions`` only matter to ``phone_number``."""
    if name == "phone_number":
        return phone.detector(regions)
    return _FIXED[name]


__all__ = ["DETECTOR_NAMES", "Detector", "DetectorName", "Validator", "build_detector"]
