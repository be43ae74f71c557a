"""PII masking over generated cases: phones, ID numbers, bank cards, e-mails, and what must stay."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.classify.pii import id18_valid, luhn_valid, mask_pii
from monitor.fakes.appstore import FakeAppStore
from tests.conftest import review, write_config

RNG = random.Random(20261128)
WIDE = str.maketrans("0123456789+-", "０１２３４５６７８９＋－")
_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def make_id18(rng: random.Random) -> str:
    body = (
        f"{rng.choice(['110101', '310104', '440305', '510107'])}"
        f"{rng.randint(1960, 2004)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        f"{rng.randint(0, 999):03d}"
    )
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, _W, strict=True)) % 11]
    return body + check


def make_card(rng: random.Random, length: int) -> str:
    digits = [rng.choice("456")] + [str(rng.randint(0, 9)) for _ in range(length - 2)]
    for check in "0123456789":
        if luhn_valid("".join(digits) + check):
            return "".join(digits) + check
    raise AssertionError("unreachable: one check digit always fits")


def make_phone(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}"


def phone_cases() -> list[tuple[str, str]]:
    cases = []
    for i in range(60):
        num = make_phone(RNG)
        masked = f"{num[:3]}****{num[-4:]}"
        style = i % 6
        if style == 0:
            cases.append((f"我的电话{num}，请回电", f"我的电话{masked}，请回电"))
        elif style == 1:
            cases.append((f"打 +86 {num} 找我", f"打 +86 {masked} 找我"))
        elif style == 2:
            spaced = f"{num[:3]} {num[3:7]} {num[7:]}"
            cases.append((f"手机：{spaced}", f"手机：{masked}"))
        elif style == 3:
            dashed = f"{num[:3]}-{num[3:7]}-{num[7:]}"
            cases.append((f"tel {dashed}.", f"tel {masked}."))
        elif style == 4:
            cases.append((f"电话{num.translate(WIDE)}催收", f"电话{masked}催收"))
        else:
            cases.append((f"+86{num}", f"+86 {masked}"))
    return cases


def id_cases() -> list[tuple[str, str]]:
    cases = []
    for i in range(50):
        idn = make_id18(RNG)
        if i % 5 == 0 and idn[-1] == "X":
            idn = idn[:-1] + "x"
        cases.append((f"身份证{idn}被冒用", f"身份证{idn[:3]}{'*' * 11}{idn[-4:]}被冒用"))
    for _ in range(10):
        born = f"{RNG.randint(50, 99)}{RNG.randint(1, 12):02d}{RNG.randint(1, 28):02d}"
        old = f"110101{born}{RNG.randint(0, 999):03d}"
        cases.append((f"老身份证 {old}", f"老身份证 {old[:3]}{'*' * 8}{old[-4:]}"))
    return cases


def card_cases() -> list[tuple[str, str]]:
    cases = []
    for i in range(50):
        card = make_card(RNG, RNG.choice([16, 17, 18, 19]))
        shown = " ".join(card[j : j + 4] for j in range(0, len(card), 4)) if i % 2 else card
        cases.append((f"银行卡{shown}被扣款", f"银行卡{card[:4]} **** {card[-4:]}被扣款"))
    return cases


def email_cases() -> list[tuple[str, str]]:
    names = ["zhangsan", "li.si", "w_wu+loan", "a1", "chen2026"]
    domains = ["example.com", "mail.example.cn", "qq.example.org"]
    return [(f"邮箱 {n}@{d} 已发", f"邮箱 {n[0]}***@{d} 已发") for n in names for d in domains]


def kept_cases() -> list[str]:
    """Order, loan and contract numbers and other digits that are not personal data."""
    kept = []
    for _ in range(15):
        card_like = make_card(RNG, 16)
        kept.append(f"订单号{card_like}还没处理")
        kept.append(f"借款编号：{make_id18(RNG)}")
    for _ in range(10):
        kept.append(f"合同号 {make_phone(RNG)} 请核对")
        kept.append(f"贷款单号LN{RNG.randint(10**13, 10**14 - 1)}")
    while len(kept) < 60:
        idn = make_id18(RNG)
        broken = idn[:-1] + ("0" if idn[-1] != "0" else "1")  # wrong check digit
        if luhn_valid(broken):
            continue  # 18 digits passing Luhn may be a bank card: masking it is right
        kept.append(f"编码{broken}不对")
    for _ in range(10):
        card = make_card(RNG, 16)
        kept.append(f"数字{card[:-1]}{(int(card[-1]) + 1) % 10}结束")  # fails Luhn
    kept += [
        "借了10000元，年化36%",
        "2026-11-28 还款 3000",
        "拨打12378",
        "验证码 123456",
        "金额1380000000元",
        "借了5000元，分12期",
        "2026-11-03 到期",
        "2026/11/03 14:30 还款 3000 元",
        "更新到 3.2.1 版本后闪退",
        "版本 13.9.0 修复",
        "已投诉到12378",
        "315晚会曝光",
        "客服400-123-4567打不通",
        "热线 800 820 8820",
        "打95588问",
        "微信 update 之后",
        "微信支付扣了 20000 元",
        "服务器 192.168.100.123",
        "QQ群里说",
        "坐标 306 1738 306 2291 结束",  # a list of figures is not one number
        "132.001511 208.256",
        "余额 13900002.368 元",
        "详见 https://tousu.sina.com.cn/complaint/view/17380020001/ 谢谢",
    ]
    for _ in range(10):
        # Bare long numbers that fail their checksums stay: order numbers, amounts.
        digits = f"{RNG.randint(2, 9)}{RNG.randint(0, 10**17 - 1):017d}"
        if not id18_valid(digits) and not luhn_valid(digits):
            kept.append(f"单据{digits}已受理")
    return kept


def spelled_phone_cases() -> list[tuple[str, str]]:
    """How phone numbers leak in real posts: dots, invisible characters, glued words."""
    cases = []
    for i in range(60):
        num = make_phone(RNG)
        masked = f"{num[:3]}****{num[-4:]}"
        style = i % 10
        if style == 0:
            cases.append((f"电话{num[:3]}.{num[3:7]}.{num[7:]}，急", f"电话{masked}，急"))
        elif style == 1:
            hidden = "\u2060".join([num[:3], num[3:7], num[7:]])
            cases.append((f"打{hidden}找我", f"打{masked}找我"))
        elif style == 2:
            marks = ["\u200b", "\u200d", "\ufeff", "\u202e", "\u2066", "\u180e", ""]
            hidden = "".join(d + RNG.choice(marks) for d in num[:-1]) + num[-1]
            cases.append((f"号{hidden}。", f"号{masked}。"))
        elif style == 3:
            cases.append((f"Tel{num} 谢谢", f"Tel{masked} 谢谢"))
        elif style == 4:
            cases.append((f"加微信wx{num}详谈", f"加微信wx{masked}详谈"))
        elif style == 5:
            cases.append((f"phone no. {num}", f"phone no. {masked}"))
        elif style == 6:
            spaced = f"+86 {num[:3]} {num[3:7]} {num[7:]}"
            cases.append((f"联系 {spaced} 即可", f"联系 +86 {masked} 即可"))
        elif style == 7:
            cases.append((f"手机 {num[:3]}-{num[3:7]}-{num[7:]}", f"手机 {masked}"))
        elif style == 8:
            cases.append((f"打{num.translate(WIDE)}", f"打{masked}"))
        else:
            cases.append((f"2026-11-03 {num} 催收", f"2026-11-03 {masked} 催收"))
    return cases


def spelled_id_and_card_cases() -> list[tuple[str, str]]:
    """IDs in groups, mistyped IDs and cards after their context word, hidden characters."""
    cases = []
    for i in range(40):
        idn = make_id18(RNG)
        star = f"{idn[:3]}{'*' * 11}{idn[-4:]}"
        style = i % 4
        if style == 0:
            grouped = f"{idn[:6]} {idn[6:14]} {idn[14:]}"
            cases.append((f"证件 {grouped} 被盗用", f"证件 {star} 被盗用"))
        elif style == 1:
            cases.append((f"身份证\u2060{idn[:9]}\u2060{idn[9:]}", f"身份证\u2060{star}"))
        elif style == 2:
            cases.append((f"号码{idn.translate(WIDE)}", f"号码{star}"))
        else:
            bad = idn[:-1] + ("0" if idn[-1] != "0" else "1")  # a typo in the check digit
            word = RNG.choice(["身份证", "身份证号", "身份证号码是", "证件号："])
            cases.append((f"{word}{bad}被冒用", f"{word}{bad[:3]}{'*' * 11}{bad[-4:]}被冒用"))
    for i in range(30):
        length = RNG.randint(12, 19)
        digits = f"6{RNG.randint(0, 10 ** (length - 1) - 1):0{length - 1}d}"
        word = RNG.choice(["银行卡", "卡号", "银行卡号：", "我的银行卡是工商银行的 "])
        shown = " ".join(digits[j : j + 4] for j in range(0, length, 4)) if i % 3 == 0 else digits
        cases.append((f"{word}{shown}被扣", f"{word}{digits[:4]} **** {digits[-4:]}被扣"))
    for length in (15, 16, 17):
        digits = f"1101{RNG.randint(0, 10 ** (length - 4) - 1):0{length - 4}d}"
        masked = f"{digits[:3]}{'*' * (length - 7)}{digits[-4:]}"
        cases.append((f"身份证号 {digits}。", f"身份证号 {masked}。"))
    cases.append(("银行卡6222020200112233445被自动扣了两笔", "银行卡6222 **** 3445被自动扣了两笔"))
    cases.append(("冒用我的身份证110101199003074578。", "冒用我的身份证110***********4578。"))
    return cases


def spelled_email_cases() -> list[tuple[str, str]]:
    wide = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})
    cases = []
    for name, domain in [
        ("zhang", "qq.com"),
        ("li.si", "example.cn"),
        ("wu88", "mail.example.org"),
    ]:
        cases.append(
            (f"邮箱{f'{name}@{domain}'.translate(wide)}。", f"邮箱{name[0]}***@{domain}。")
        )
        cases.append((f"发到 {name} @ {domain} 吧", f"发到 {name[0]}***@{domain} 吧"))
        cases.append((f"邮箱：{name}@ {domain}", f"邮箱：{name[0]}***@{domain}"))
    return cases


def landline_qq_wechat_cases() -> list[tuple[str, str]]:
    cases = []
    for _ in range(8):
        local = f"{RNG.randint(2, 9)}{RNG.randint(0, 9_999_999):07d}"
        cases.append((f"催收打到单位010-{local}", f"催收打到单位010-****{local[-4:]}"))
        seven = local[:7]
        cases.append((f"座机 0755 {seven}", f"座机 0755-***{seven[-4:]}"))
        cases.append((f"家里电话021{local}", f"家里电话021-****{local[-4:]}"))
    cases.append(("单位电话010-12345678", "单位电话010-****5678"))
    cases.append(("0755-1234567", "0755-***4567"))
    for _ in range(8):
        qq = str(RNG.randint(10_000, 99_999_999_999))
        word = RNG.choice(["QQ", "qq号", "扣扣：", "企鹅号 ", "QQ "])
        cases.append((f"加{word}{qq}", f"加{word}{qq[:2]}{'*' * (len(qq) - 4)}{qq[-2:]}"))
    for wx in ["zhang_san88", "wxid_a1b2c3d4", "lisi-2026", "Koubei123"]:
        word = RNG.choice(["微信", "微信号：", "VX ", "vx:", "wx ", "weixin "])
        cases.append((f"{word}{wx}，", f"{word}{wx[:2]}{'*' * (len(wx) - 4)}{wx[-2:]}，"))
    cases.append(("微信号 abcdefg", "微信号 ab***fg"))
    return cases


MASKED = (
    phone_cases()
    + id_cases()
    + card_cases()
    + email_cases()
    + spelled_phone_cases()
    + spelled_id_and_card_cases()
    + spelled_email_cases()
    + landline_qq_wechat_cases()
)


def test_there_are_at_least_200_generated_cases() -> None:
    assert len(MASKED) + len(kept_cases()) >= 200


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize("text", kept_cases())
def test_business_numbers_and_plain_digits_stay(text: str) -> None:
    assert mask_pii(text) == text


def test_several_kinds_in_one_text_and_nothing_else_changes() -> None:
    idn = make_id18(random.Random(1))
    text = f"林女士（{idn}）电话13812345678，邮箱lin@example.com，订单号20261128000123 &lt;原文&gt;"
    out = mask_pii(text)
    assert "13812345678" not in out and idn not in out and "lin@example.com" not in out
    assert "138****5678" in out and "l***@example.com" in out
    assert "订单号20261128000123" in out and out.endswith("&lt;原文&gt;")


def test_check_digit_validation() -> None:
    assert id18_valid("11010519491231002X")
    assert not id18_valid("110105194912310021")
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")


# The demo's reviews carry these, on purpose; its outputs must show none of them.
DEMO_PII = ("6222020200112233445", "110101199003074578", "13812345678", "qingtian88@example.com")
_NOT_TEXT = {"channel", "ts", "thread_ts", "external_id", "url", "image_url", "action_id"}


def _strings(value: object, key: str = "") -> Iterator[str]:
    if isinstance(value, str) and key not in _NOT_TEXT:
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, key)


def test_the_demos_outputs_carry_no_unmasked_personal_data(tmp_path: Path) -> None:
    """Slack messages, posts.jsonl and the report (HTML, CSV, JSON; the PDF is
    rendered from the same HTML): nothing in them that the mask would still mask."""
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k not in ("SLACK_BOT_TOKEN", "DATABASE_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    texts = [result.stdout]
    texts += _strings(json.loads((out / "slack_messages.json").read_text(encoding="utf-8")))
    for line in (out / "posts.jsonl").read_text(encoding="utf-8").splitlines():
        post = json.loads(line)
        texts += [post["title"], post["body"]]
    [month] = (out / "reports").iterdir()
    texts += _strings(json.loads((month / "figures.json").read_text(encoding="utf-8")))
    with (month / "cases.csv").open(encoding="utf-8-sig", newline="") as f:
        texts += [cell for row in csv.reader(f) for cell in row]
    html = (month / "report.html").read_text(encoding="utf-8")
    # Chart drawings are coordinates, not text: read what the page says.
    page = re.sub(r"(?s)<(svg|style)\b.*?</\1>", " ", html)
    texts += re.sub(r"<[^>]+>", "\n", page).splitlines()
    everything = "\n".join(texts) + html
    assert "银行卡6222 **** 3445" in everything and "身份证110***********4578" in everything
    for raw in DEMO_PII:
        assert raw not in everything
    unmasked = [t for t in texts if mask_pii(t) != t]
    assert unmasked == []


def test_collect_dry_run_masks_personal_data_unless_raw(tmp_path: Path) -> None:
    text = "冒用我的身份证110101199003074578，电话 139-0000-2368，银行卡6222020200112233445"
    with FakeAppStore([review(1, content=text, author="王13900002368")]) as store:
        config = write_config(tmp_path, appstore_url=store.url)
        env = {**os.environ, "KOUBEI_CONFIG": str(config)}
        shown = {}
        for flags in ([], ["--raw"]):
            result = subprocess.run(
                [sys.executable, "-m", "monitor", "collect", "appstore-cn", "--dry-run", *flags],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
            [line] = result.stdout.splitlines()
            shown[bool(flags)] = json.loads(line)
    masked, raw = shown[False], shown[True]
    assert "110101199003074578" not in result.stdout.replace(raw["body"], "")
    assert masked["body"].startswith("冒用我的身份证110***********4578，电话 139****2368，")
    assert "6222 **** 3445" in masked["body"] and masked["author"] == "王139****2368"
    assert raw["body"].startswith(text) and raw["author"] == "王13900002368"
    assert masked["external_id"] == raw["external_id"] and masked["url"] == raw["url"]
