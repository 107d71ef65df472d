"""What the users routes take from the app: the outbox for set-password mails."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.users.service import Outbox


async def get_outbox(request: Request) -> Outbox:
    return Outbox(mailer=request.app.state.mailer, settings=request.app.state.settings)


OutboxDep = Annotated[Outbox, Depends(get_outbox)]
