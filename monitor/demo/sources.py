"""Demo data for the complaint platform and the RSS feed, written for this project.

One 黑猫 complaint tells the same story as an App Store review ("砍头息"), so
the demo shows a case joined across two platforms.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.fakes.heimao import Complaint
from monitor.fakes.huawei import Comment as HuaweiComment
from monitor.fakes.jutousu import Post as JutousuPost
from monitor.fakes.rss import Item
from monitor.fakes.yingyongbao import Comment as YybComment

BASE = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def heimao_complaints() -> list[Complaint]:
    return [
        Complaint(
            sn="17380020001",
            title='<span class="hl">借款App</span>砍头息',
            text="借一万到手只有八千五，说是服务费和会员费，这不就是砍头息吗？年化算下来超过36%了。"
            "要求退还服务费。",
            filed=BASE + timedelta(hours=3),
            author="陈先生88",
            appeal="退还服务费",
            issue="乱收费",
            cost="1500",
            status=4,
        ),
        Complaint(
            sn="17380020002",
            title="暴力催收威胁家人",
            text="逾期三天，催收打电话给我父母和单位，说要上门，还威胁要曝光我。要求停止骚扰并道歉。",
            filed=BASE,
            author="维权的小李",
            appeal="停止骚扰,道歉",
            issue="暴力催收",
            status=6,
            replies=[(BASE + timedelta(hours=5), "您好，已暂停相关催收并核查。")],
        ),
        Complaint(
            sn="17380020003",
            title="重复扣款已处理",
            text="同一期被扣了两次，要求退回多扣的款项。",
            filed=BASE - timedelta(days=3),
            author="张女士",
            appeal="退款",
            issue="重复扣款",
            cost="860",
            status=7,
            replies=[(BASE - timedelta(days=2), "已退回多扣款项，请查收。")],
            completed=BASE - timedelta(days=1),
            stars=(5, 4, 5),
            companies=["借款App", "某支付公司"],
        ),
    ]


def rss_items() -> list[Item]:
    return [
        Item(
            "wb-1",
            "借款App 又上热搜",
            "有网友称借款App暴力催收，已向银保监会投诉，记者正在核实。",
            BASE + timedelta(hours=2),
            author="财经观察",
        ),
        Item("wb-2", "周末去爬山", "天气很好，和借款无关。", BASE + timedelta(hours=1)),
        Item("wb-3", "借款App 招聘", "借款App 招聘催收专员，待遇面议。", BASE),
    ]


def jutousu_posts() -> list[JutousuPost]:
    at = int(BASE.timestamp())
    return [
        JutousuPost(
            "880001",
            "借款App<em>乱收费</em>",
            "会员费不退",
            "开通会员才能借款，会员费299元，没借到也不退。",
            "聚投诉用户A",
            at,
        ),
        JutousuPost(
            "880002",
            "借款App 征信异议",
            "征信有误",
            "已经还清还显示逾期，征信有误，要求更正。",
            "聚投诉用户B",
            at - 3600,
        ),
    ]


def huawei_comments() -> list[HuaweiComment]:
    return [
        HuaweiComment("hw-1", "华为用户甲", "更新后一直闪退，登录不了", 1, "2026-11-27 09:12"),
        HuaweiComment("hw-2", "华为用户乙", "放款很快，好用", 5, "2026-11-27 08:40"),
    ]


def yingyongbao_comments() -> list[YybComment]:
    at = int(BASE.timestamp())
    return [
        YybComment("yyb-1", "应用宝用户", "客服电话打不通，人工客服一直排队", at, 1.0, praise=2),
        YybComment("yyb-2", "应用宝用户2", "界面清楚，额度一般", at - 600, 4.0),
    ]
