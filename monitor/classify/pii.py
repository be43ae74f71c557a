"""Mask personal data before text leaves the database (Slack, reports, logs, exports).

What is masked, keeping enough to recognise the record:
- mainland mobile numbers, with +86/0086, spaces, dashes or full-width digits: 138****5678
- 18-digit ID numbers whose check digit is right, and 15-digit ones with a valid date:
  110***********123X
- bank-card numbers of 16-19 digits (groups of four allowed) that pass Luhn: 6222 **** 1234
- e-mail addresses: z***@example.com
Order, loan and contract numbers stay: a number right after 订单号, 借款编号 and the
like is left alone, and so is any run of digits glued to letters (LN2023...).
"""

from __future__ import annotations

import re
from datetime import date

# Full-width digits and signs map one-to-one onto ASCII, so positions found in
# the translated copy are positions in the original.
_WIDE = str.maketrans(
    {chr(0xFF10 + i): str(i) for i in range(10)}
    | {
        "＋": "+",
        "－": "-",
        "　": " ",
        "＠": "@",
        "．": ".",
        "Ｘ": "X",
        "ｘ": "x",
    }
)

_EDGE_L = r"(?<![0-9A-Za-z])"
_EDGE_R = r"(?![0-9A-Za-z])"
_ID18 = re.compile(_EDGE_L + r"\d{17}[\dXx]" + _EDGE_R)
_ID15 = re.compile(_EDGE_L + r"\d{15}" + _EDGE_R)
_CARD = re.compile(_EDGE_L + r"\d{4}(?:[ -]?\d{4}){3}(?:[ -]?\d{1,3})?" + _EDGE_R)
_PHONE = re.compile(
    _EDGE_L + r"(?P<cc>(?:\+|00)86[ -]?|86[ -])?(?P<num>1[3-9]\d(?:[ -]?\d){8})" + _EDGE_R
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

# A number right after one of these words is a business reference, not personal data.
_REFERENCE = re.compile(
    r"(订单|单号|编号|合同|借据|流水|工单|交易号|凭证|批次|快递|运单|"
    r"order|loan|ref|no\.?)\s*[号码:：#]?\s*$",
    re.IGNORECASE,
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id18_valid(digits: str) -> bool:
    if len(digits) != 18 or not digits[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == digits[17].upper() and _valid_date(digits[6:14])


def id15_valid(digits: str) -> bool:
    return len(digits) == 15 and digits.isdigit() and _valid_date("19" + digits[6:12])


def _valid_date(yyyymmdd: str) -> bool:
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return 1900 <= born.year <= 2100


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit() or not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_reference(text: str, start: int) -> bool:
    return bool(_REFERENCE.search(text[max(0, start - 12) : start]))


def mask_pii(text: str) -> str:
    """Return `text` with personal data masked; everything else untouched."""
    if not text:
        return text
    plain = text.translate(_WIDE)
    spans: list[tuple[int, int, str]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e, _ in spans)

    for m in _ID18.finditer(plain):
        if id18_valid(m.group()) and not _is_reference(plain, m.start()):
            spans.append((m.start(), m.end(), m.group()[:3] + "*" * 11 + m.group()[-4:]))
    for m in _ID15.finditer(plain):
        if free(*m.span()) and id15_valid(m.group()) and not _is_reference(plain, m.start()):
            spans.append((m.start(), m.end(), m.group()[:3] + "*" * 8 + m.group()[-4:]))
    for m in _CARD.finditer(plain):
        digits = re.sub(r"\D", "", m.group())
        if (
            16 <= len(digits) <= 19
            and free(*m.span())
            and luhn_valid(digits)
            and not _is_reference(plain, m.start())
        ):
            spans.append((m.start(), m.end(), f"{digits[:4]} **** {digits[-4:]}"))
    for m in _PHONE.finditer(plain):
        if free(*m.span()) and not _is_reference(plain, m.start()):
            digits = re.sub(r"\D", "", m.group("num"))
            prefix = "+86 " if m.group("cc") else ""
            spans.append((m.start(), m.end(), f"{prefix}{digits[:3]}****{digits[-4:]}"))
    for m in _EMAIL.finditer(plain):
        if free(*m.span()):
            local, _, domain = m.group().partition("@")
            spans.append((m.start(), m.end(), f"{local[0]}***@{domain}"))

    out, pos = [], 0
    for start, end, masked in sorted(spans):
        out.append(text[pos:start])
        out.append(masked)
        pos = end
    out.append(text[pos:])
    return "".join(out)
