"""Roles and phases: the two axes of the permission table."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    PRINCIPAL = "principal"
    INTERPRETER = "interpreter"
    AIDE = "aide"
    OPERATOR = "operator"
    PRESS = "press"


class Phase(StrEnum):
    PLANNED = "planned"
    OPEN = "open"  # the press window: press see and hear the opening minutes
    CLOSED = "closed"  # doors shut
    ENDED = "ended"


class MediaKind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"
