"""The weekly PR digest's content: the stories shortlisted on the board in a week.

Plain data for whoever tells PR (today the scheduler's weekly job, in Slack).
Nothing is published: a shortlisted story is a note for PR, who ask the
customer's consent before telling it. Text is masked before it leaves here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from monitor.classify.pii import mask_pii
from monitor.domain import AlertKind, Notice, NoticeItem
from monitor.store.tables import PostRow, StoryPickRow
from monitor.store.users import names_by_actor

EXCERPT = 120  # characters of the post shown with its link
STORY_COLOUR = "#2e7d32"


@dataclass(frozen=True)
class WeeklyStory:
    post_id: int
    source: str
    title: str  # masked
    excerpt: str  # masked, at most EXCERPT characters
    url: str
    rating: int | None
    note: str
    picked_by: str  # a display name where the account is known
    picked_at: datetime


def weekly_stories(session: Session, since: datetime, until: datetime) -> list[WeeklyStory]:
    """Stories shortlisted in [since, until), oldest pick first."""
    rows = session.execute(
        select(StoryPickRow, PostRow)
        .join(PostRow, col(PostRow.id) == col(StoryPickRow.post_id))
        .where(col(StoryPickRow.picked_at) >= since, col(StoryPickRow.picked_at) < until)
        .order_by(col(StoryPickRow.picked_at), col(StoryPickRow.id))
    ).all()
    names = names_by_actor(session)
    out = []
    for pick, post in rows:
        body = mask_pii(post.body)
        out.append(
            WeeklyStory(
                post_id=pick.post_id,
                source=post.source,
                title=mask_pii(post.title),
                excerpt=body if len(body) <= EXCERPT else body[: EXCERPT - 1] + "…",
                url=post.url,
                rating=post.rating,
                note=mask_pii(pick.note),  # staff type phone numbers into notes too
                picked_by=mask_pii(names.get(pick.picked_by, pick.picked_by)),
                picked_at=pick.picked_at,
            )
        )
    return out


def stories_notice(
    week_key: str, week_label: str, stories: list[WeeklyStory], route: str
) -> Notice:
    """The week's shortlist as one notice to the PR team: each story with its link and note."""
    items = tuple(
        NoticeItem(
            text=s.title or s.excerpt[:30] or f"帖子 #{s.post_id}",
            url=s.url,
            rating=s.rating,
            meta=(
                s.source + (f" · {s.rating} 星" if s.rating else ""),
                s.excerpt,
                f"备注：{s.note or '—'}（{s.picked_by}）",
            ),
        )
        for s in stories
    )
    return Notice(
        kind=AlertKind.DIGEST,
        dedup_key=f"stories:{week_key}",
        route=route,
        headline=f"好故事候选 · {week_label}（{len(stories)} 条，仅供公关跟进，未对外发布）",
        items=items,
        extra={"colour": STORY_COLOUR, "stories": True},
    )
