"""Log-in request and answer."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.validation import StorableText


class TokenRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "admin@example.com", "password": "s3cret!!"}]}
    )

    email: StorableText = Field(max_length=255)
    password: StorableText = Field(max_length=1024)


class TokenOut(BaseModel):
    auth_token: str = Field(description="Send it as the Authorization header.")
    user_id: int = Field(examples=[1])
