"""A service that is none of our examples: routers, sync routes, its own dictConfig and
an outgoing `requests` call. Used to show the distro needs nothing but env vars."""

import logging.config
import os

import requests
from fastapi import APIRouter, FastAPI, HTTPException

logging.config.dictConfig(
    {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "root": {"handlers": ["console"], "level": "INFO"},
    }
)
log = logging.getLogger("notes")

notes: dict[int, str] = {1: "buy milk"}
router = APIRouter(prefix="/api/v1")


@router.get("/notes/{note_id}")
def read_note(note_id: int) -> dict[str, object]:
    if note_id not in notes:
        raise HTTPException(404, "no such note")
    log.info("note read", extra={"note_id": note_id})
    return {"id": note_id, "text": notes[note_id]}


@router.get("/relay/{note_id}")
def relay(note_id: int) -> dict[str, object]:
    # Calls itself over HTTP, as a service would call a neighbour.
    base = os.environ["NOTES_SELF_URL"]
    upstream = requests.get(f"{base}/api/v1/notes/{note_id}", timeout=5)
    return {"upstream_status": upstream.status_code, **upstream.json()}


app = FastAPI()
app.include_router(router)
