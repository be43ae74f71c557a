"""/users: an admin adds accounts, changes roles, and turns accounts off."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from monitor.store.tables import UserRow
from monitor.store.users import ROLES, AccountError, add_user, all_users, update_user
from monitor.web.auth import check_csrf, flash, role
from monitor.web.pages import board_of, render

router = APIRouter()
Text = Annotated[str, Form()]
Admin = Annotated[UserRow, role("admin")]


@router.get("/users")
def users_page(request: Request, user: Admin) -> Response:
    with Session(board_of(request).engine) as session:
        people = all_users(session)
        session.expunge_all()
    return render(request, "users.html", people=people, roles=ROLES)


@router.post("/users", dependencies=[Depends(check_csrf)])
def add(
    request: Request,
    user: Admin,
    name: Text = "",
    role_name: Annotated[str, Form(alias="role")] = "",
    password: Text = "",
    slack_id: Text = "",
    display_name: Text = "",
) -> Response:
    board = board_of(request)
    try:
        with Session(board.engine) as session, session.begin():
            add_user(
                session,
                name.strip(),
                role_name,
                board.clock.now(),
                password=password or None,
                slack_id=slack_id.strip() or None,
                display_name=display_name.strip(),
            )
        flash(request, f"已添加账户 {name.strip()}")
    except AccountError as exc:
        flash(request, f"未添加：{exc}")
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{user_id}", dependencies=[Depends(check_csrf)])
def change(
    request: Request,
    user_id: int,
    user: Admin,
    role_name: Annotated[str, Form(alias="role")] = "",
    active: Text = "",
) -> Response:
    if user_id == user.id:
        # An admin who demotes or disables themselves may leave nobody to undo it.
        flash(request, "不能修改自己的角色或停用自己")
        return RedirectResponse("/users", status_code=303)
    with Session(board_of(request).engine) as session, session.begin():
        target = session.get(UserRow, user_id)
        if target is None:
            flash(request, f"没有账户 #{user_id}")
            return RedirectResponse("/users", status_code=303)
        try:
            update_user(
                session, target, role=role_name or None, active=active == "1" if active else None
            )
        except AccountError as exc:
            flash(request, f"未修改：{exc}")
            return RedirectResponse("/users", status_code=303)
        flash(request, f"已更新账户 {target.name}")
    return RedirectResponse("/users", status_code=303)
