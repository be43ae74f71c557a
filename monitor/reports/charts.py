"""Charts (matplotlib, Agg) as inline SVG, with a CJK font so Chinese labels render.

A chart with boxes instead of characters is a defect: `cjk_font()` finds an
installed CJK font (the set-up installs fonts-wqy-microhei) or raises with
the command that installs one.
"""

from __future__ import annotations

import io
from functools import cache
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib import font_manager

from monitor.errors import KoubeiError

CJK_FAMILIES = (
    "WenQuanYi Micro Hei",
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "AR PL UMing CN",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
)
INSTALL_HINT = "apt-get install fonts-wqy-microhei (or fonts-noto-cjk)"


class MissingFont(KoubeiError):
    pass


@cache
def cjk_font() -> str:
    """The family name of an installed font that has Chinese glyphs."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in installed:
            return family
    font_manager.fontManager.__init__()  # type: ignore[misc]  # fonts installed since start-up
    installed = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in installed:
            return family
    raise MissingFont(f"no Chinese font found for the report's charts; install one: {INSTALL_HINT}")


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _setup() -> None:
    plt.rcParams["font.family"] = [cjk_font()]
    plt.rcParams["axes.unicode_minus"] = False
    plt.rcParams["svg.fonttype"] = "path"  # glyphs as paths: the SVG needs no font to view


def daily_chart(daily: list[dict[str, Any]]) -> str:
    _setup()
    days = [d["day"][5:] for d in daily]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.bar(days, [d["posts"] for d in daily], color="#90A4AE", label="帖子数")
    ax.set_ylabel("帖子数")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax2 = ax.twinx()
    share = [(d["negative_share"] or 0) * 100 for d in daily]
    ax2.plot(days, share, color="#D32F2F", marker="o", markersize=3, label="负面占比")
    ax2.set_ylabel("负面占比 %")
    ax2.set_ylim(0, 100)
    ax.set_title("每日声量与负面占比")
    fig.legend(loc="upper right", fontsize=8)
    return _svg(fig)


def bar_chart(title: str, counts: dict[str, int], labels: dict[str, str] | None = None) -> str:
    _setup()
    items = sorted(counts.items(), key=lambda kv: kv[1])
    names = [(labels or {}).get(k, k) for k, _ in items]
    fig, ax = plt.subplots(figsize=(6, 0.45 * max(3, len(items)) + 0.8))
    ax.barh(names, [v for _, v in items], color="#1976D2")
    for i, (_, v) in enumerate(items):
        ax.text(v, i, f" {v}", va="center", fontsize=8)
    ax.set_title(title)
    return _svg(fig)


def rating_chart(daily: list[dict[str, Any]]) -> str:
    _setup()
    points = [(d["day"][5:], d["average_rating"]) for d in daily if d["average_rating"] is not None]
    fig, ax = plt.subplots(figsize=(9, 2.6))
    if points:
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            color="#F57C00",
            marker="o",
            markersize=3,
        )
    ax.set_ylim(1, 5)
    ax.set_ylabel("平均星级")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.set_title("应用商店评分走势")
    return _svg(fig)
