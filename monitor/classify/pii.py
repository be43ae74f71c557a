"""Mask personal data before text leaves the database (Slack, reports, logs, exports).

What is masked, keeping enough to recognise the record:
- mainland mobile numbers, however written: +86/0086, spaces, dots or dashes
  between any digits, full-width digits, glued to Tel/wx/phone: 138****5678
- landline numbers with an area code (010-12345678, 0755 1234567; without a
  separator only after 电话/座机/tel and the like): 010-****5678. A customer's
  home or work line is personal data; 400 and 800 numbers are companies'
  service lines (the thing complained about, often), not personal data, and stay.
- 18-digit ID numbers whose check digit is right, 15-digit ones with a valid
  date, in groups too (110105 19900913 7403): 110***********123X
- bank-card numbers of 16-19 digits (groups allowed) that pass Luhn: 6222 **** 1234
- after 身份证/证件号 or 银行卡/卡号/账号 (a few characters before the number), any
  run of 12-19 digits, checksum or not: customers mistype, and a near-miss
  number still identifies them
- QQ numbers after QQ/扣扣/企鹅, WeChat ids after 微信/vx/wx/weixin, and e-mail
  addresses (full-width, or with spaces around the @ too): z***@example.com
Order, loan and contract numbers stay: a number right after 订单号, 借款编号 and the
like is left alone, and so is any run of digits glued to letters (LN2023...).
Checksums still decide for bare numbers, so amounts, dates and order numbers
are not masked for looking long.

Invisible format characters (zero-width spaces, word joiners, bidi marks) are
read through, so a number cannot hide from the mask by carrying one.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

# Between two digits of one number: a dash, dot, middle dot or underscore
# (with a space either side), or one or two spaces.
_SEP = r"(?:[ \u00a0]?[-.·_][ \u00a0]?|[ \u00a0]{1,2})"
_RUN = re.compile(r"(?<![0-9])\+?[0-9]+(?:" + _SEP + r"[0-9]+)*(?:[Xx](?![A-Za-z]))?(?![0-9])")
_SEGMENT = re.compile(r"[0-9]+[Xx]?")
_URL_PATH = re.compile(r"(?i)https?://[^\s?#<>|\"']+")
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*[ \u00a0]?@[ \u00a0]?"
    r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_QQ = re.compile(
    r"(?<![A-Za-z])(?:qq|扣扣|企鹅)(?:号码|号)?[ \u00a0]*[:：是为]?[ \u00a0]*"
    r"(?P<id>[1-9](?:" + _SEP + r"?[0-9]){4,10})(?![0-9])",
    re.IGNORECASE,
)
_WECHAT = re.compile(
    r"(?P<word>微信号?|v信|威信|(?<![A-Za-z])(?:weixin|wechat|vx|wx)(?![A-Za-z]))"
    r"(?P<named>号)?[ \u00a0]*(?P<colon>[:：是为])?[ \u00a0]*"
    r"(?P<id>[A-Za-z][-_A-Za-z0-9]{5,19})(?![-_A-Za-z0-9])",
    re.IGNORECASE,
)

# The word before a number says what it is. The last one within a few
# characters wins: "银行卡被扣款，订单号2026..." is an order number.
_CONTEXT = re.compile(
    r"(?P<phone>(?:phone|tel|mobile|cell)[ \u00a0]*(?:no|number|num)?\.?|电话|手机|座机|"
    r"联系方式|手机号)"
    r"|(?P<id>身份证|证件号|身份号码|居民身份|id[ \u00a0]?card|(?<![a-z])id(?![a-z]))"
    r"|(?P<card>银行卡|卡号|银行账号|账号|账户|储蓄卡|信用卡|借记卡|bank[ \u00a0]?card|card)"
    r"|(?P<ref>订单|单号|编号|合同|借据|流水|工单|交易号|凭证|批次|快递|运单|"
    r"order|loan|ref|(?<![a-z])no(?![a-z])\.?)",
    re.IGNORECASE,
)
_CONTEXT_GAP = 8
_GAP_BREAK = re.compile(r"[0-9。！？；!?;\n]")
# Letters a number may be glued to and still be personal data ("Tel139...").
_GLUE_OK = {"tel", "phone", "mobile", "mob", "cell", "wx", "vx", "weixin", "wechat", "qq", "id"}
_SERVICE_LINES = ("400", "800")
# How people group the digits of a mobile number and of an ID number.
_PHONE_SHAPES = ([11], [3, 4, 4], [3, 8], [7, 4])
_ID_SHAPES = ([18], [6, 8, 4], [6, 4, 4, 4], [15], [6, 6, 3])

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_AREA = re.compile(r"0(?:10|2[0-9]|[3-9][0-9]{2})")


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


def _plain(text: str) -> tuple[str, list[int]]:
    """Text with full-width forms made ASCII and format characters dropped, and for
    each of its characters the position it came from."""
    chars, where = [], []
    for i, ch in enumerate(text):
        code = ord(ch)
        if 0xFF01 <= code <= 0xFF5E:
            ch = chr(code - 0xFEE0)
        elif ch == "\u3000":
            ch = " "
        elif unicodedata.category(ch) == "Cf":
            continue
        chars.append(ch)
        where.append(i)
    return "".join(chars), where


def _context(plain: str, start: int) -> str | None:
    window = plain[max(0, start - 24) : start]
    last = None
    for m in _CONTEXT.finditer(window):
        last = m
    if last is None:
        return None
    gap = window[last.end() :]
    if len(gap) > _CONTEXT_GAP or _GAP_BREAK.search(gap):
        return None
    return last.lastgroup


def _glued_to_letters(plain: str, start: int) -> bool:
    m = re.search(r"[A-Za-z]+$", plain[max(0, start - 12) : start])
    return m is not None and m.group().lower() not in _GLUE_OK


@dataclass(frozen=True)
class _Segment:
    start: int
    end: int
    digits: str


def _phone(digits: str, segs: list[_Segment], plus: bool) -> str | None:
    for cc in ("0086", "86", ""):
        rest = digits[len(cc) :]
        if not digits.startswith(cc) or (not cc and segs[0].digits in ("86", "0086")):
            continue
        if len(rest) != 11 or not re.fullmatch(r"1[3-9][0-9]{9}", rest):
            continue
        lens = [len(seg.digits) for seg in segs]
        if cc and lens[0] == len(cc):
            lens = lens[1:]
        elif cc and (plus or cc == "0086"):
            lens[0] -= len(cc)
        elif cc:  # a bare 86 glued to the number is no country code
            continue
        if lens not in _PHONE_SHAPES and set(lens) != {1}:
            continue
        return f"{'+86 ' if cc else ''}{rest[:3]}****{rest[-4:]}"
    return None


def _landline(digits: str, segs: list[_Segment], context: str | None) -> str | None:
    if digits.startswith(_SERVICE_LINES):
        return None
    for area_len in (3, 4):
        area, local = digits[:area_len], digits[area_len:]
        if not _AREA.fullmatch(area) or not re.fullmatch(r"[1-9][0-9]{6,7}", local):
            continue
        if len(segs[0].digits) == area_len or (context == "phone" and len(segs) == 1):
            return f"{area}-{'*' * (len(local) - 4)}{local[-4:]}"
    return None


def _card_shape(lens: list[int]) -> bool:
    return len(lens) == 1 or (all(n == 4 for n in lens[:-1]) and 1 <= lens[-1] <= 4)


def _classify(digits: str, segs: list[_Segment], plus: bool, context: str | None) -> str | None:
    """The masked form of one window of a digit run, or None if it is not personal data."""
    lens = [len(seg.digits) for seg in segs]
    if "X" in digits:
        if context in ("id", "card") and 15 <= len(digits) <= 18:
            return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
        if lens in _ID_SHAPES and id18_valid(digits):
            return digits[:3] + "*" * 11 + digits[-4:]
        return None
    phone = _phone(digits, segs, plus)
    if phone:
        return phone
    if context == "id" and 12 <= len(digits) <= 19:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    if context == "card" and 12 <= len(digits) <= 19:
        return f"{digits[:4]} **** {digits[-4:]}"
    # Bare numbers: checksums decide, and groups must be the groups people write
    # these numbers in (a list of figures is not one number).
    if lens in _ID_SHAPES and id18_valid(digits):
        return digits[:3] + "*" * 11 + digits[-4:]
    if lens in _ID_SHAPES and id15_valid(digits):
        return digits[:3] + "*" * 8 + digits[-4:]
    if _card_shape(lens) and 16 <= len(digits) <= 19 and luhn_valid(digits):
        return f"{digits[:4]} **** {digits[-4:]}"
    return _landline(digits, segs, context)


def _sep_kind(between: str) -> str:
    return between.strip(" \u00a0") or " "


def _one_number(window: list[_Segment], seps: list[str]) -> bool:
    """Whether segments written with these separators can be one number.

    One number uses one separator throughout ("139.0000.2368", "110105 19900913
    7403"), though a country code may stand apart ("+86 139-0000-2368"); a
    single dot is a decimal point, and numbers listed with mixed separators
    ("132.0015 208.256") are several numbers.
    """
    if seps and window[0].digits in ("86", "0086"):
        seps = seps[1:]
    if len(set(seps)) > 1:
        return False
    return seps != ["."]


def _runs(plain: str) -> list[tuple[int, int, str]]:
    """Candidate spans (start, end, masked) from every digit run, longest first."""
    found: list[tuple[int, int, int, str]] = []
    paths = [m.span() for m in _URL_PATH.finditer(plain)]
    for run in _RUN.finditer(plain):
        if any(s <= run.start() < e for s, e in paths):
            continue  # an id in a link's path (…/complaint/view/17380020001/) names a page
        plus = run.group().startswith("+")
        segs = [
            _Segment(run.start() + m.start(), run.start() + m.end(), m.group().upper())
            for m in _SEGMENT.finditer(run.group())
        ]
        if _glued_to_letters(plain, run.start()):
            continue
        first = _context(plain, run.start())
        if first == "ref":
            continue
        seps = [_sep_kind(plain[a.end : b.start]) for a, b in itertools.pairwise(segs)]
        for i in range(len(segs)):
            digits = ""
            for j in range(i, len(segs)):
                digits += segs[j].digits
                if len(digits) > 19 + 4 or "X" in digits[:-1]:
                    break
                if len(digits) < 10:  # the shortest kind is a landline, 010 + 7 digits
                    continue
                window = segs[i : j + 1]
                if not _one_number(window, seps[i:j]):
                    continue
                masked = _classify(digits, window, plus and i == 0, first if i == 0 else None)
                if masked:
                    with_plus = plus and i == 0 and masked.startswith("+")
                    start = run.start() if with_plus else segs[i].start
                    found.append((len(digits), start, segs[j].end, masked))
        if first in ("id", "card") and len(segs[0].digits) >= 20:
            # A mistyped number after 身份证/卡号 may run past 19 digits: mask it whole.
            d = segs[0].digits
            masked = d[:3] + "*" * (len(d) - 7) + d[-4:]
            found.append((len(d), segs[0].start, segs[0].end, masked))
    found.sort(key=lambda f: (-f[0], f[1]))
    return [(s, e, m) for _, s, e, m in found]


def mask_pii(text: str) -> str:
    """Return `text` with personal data masked; everything else untouched."""
    if not text:
        return text
    plain, where = _plain(text)
    spans: list[tuple[int, int, str]] = []

    def claim(start: int, end: int, masked: str) -> None:
        if all(end <= s or start >= e for s, e, _ in spans):
            spans.append((start, end, masked))

    for m in _EMAIL.finditer(plain):
        local, _, domain = m.group().partition("@")
        claim(m.start(), m.end(), f"{local.strip()[0]}***@{domain.strip()}")
    for start, end, masked in _runs(plain):
        claim(start, end, masked)
    for m in _QQ.finditer(plain):
        qq = re.sub(r"[^0-9]", "", m.group("id"))
        claim(m.start("id"), m.end("id"), qq[:2] + "*" * (len(qq) - 4) + qq[-2:])
    for m in _WECHAT.finditer(plain):
        wx = m.group("id")
        # A bare word after 微信 ("微信 update") is prose; an id has a digit or _ -,
        # or is introduced as one (微信号, 微信：).
        looks_like_id = re.search(r"[0-9_-]", wx) or m.group("named") or m.group("colon")
        if looks_like_id or m.group("word").endswith("号"):
            claim(m.start("id"), m.end("id"), wx[:2] + "*" * (len(wx) - 4) + wx[-2:])

    out, pos = [], 0
    for start, end, masked in sorted(spans):
        begin = where[start]
        out.append(text[pos:begin])
        out.append(masked)
        pos = where[end - 1] + 1
    out.append(text[pos:])
    return "".join(out)
