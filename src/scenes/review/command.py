"""``scenes review``: serve the review page of a run's queue until stopped."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..console import plural
from ..models.bundle import bundle_run_dir, resolve_bundle_dir
from ..serve.app import launch_page
from ..serve.app_files import own_upload_folder
from ..serve.predictor import Predictor
from .decisions import DecisionStore
from .page import KEYS_HEAD, PAGE_CSS, build_review_page
from .queues import load_queue, only_under
from .session import ReviewSession

REVIEW_FOLDER = "review"  # RUN/review/decisions.csv


def review_folder(run: str | Path) -> Path:
    return Path(bundle_run_dir(run)) / REVIEW_FOLDER


def serve_review(page: gr.Blocks, host: str, port: int, share: bool, block: bool = True) -> str:
    """Launch the page (with its keys) and, with ``block``, serve until stopped; its address."""
    local_url = launch_page(page, host, port, share, quiet=not block, head=KEYS_HEAD, css=PAGE_CSS)
    if block:
        page.block_thread()
    return local_url


def find_neighbours(items, near: str) -> dict:
    """The queued photos' near-duplicates in the folder ``near``, with a line on what was
    found (the folder is embedded once: its features are cached by content)."""
    from ..config import default_cache_dir
    from ..errors import MissingPathError
    from .neighbours import labelled_otherwise, near_neighbours

    if not Path(near).is_dir():
        raise MissingPathError(f"--near {near}: no such folder (the labelled data folder)")
    print(f"looking for the queued photos' near-duplicates in {near} ...")
    found = near_neighbours(items, near, default_cache_dir())
    conflicting = sum(
        bool(labelled_otherwise(item.given, found.get(item.path.resolve(), []))) for item in items
    )
    print(
        f"{plural(len(found), 'queued photo')} with near-duplicates in {near}, "
        f"{conflicting} of them labelled otherwise there"
    )
    return found


def run_review(
    run: str,
    queue: str = "issues",
    data: str | None = None,
    predictions: str | None = None,
    selection: str | None = None,
    paths: list[str] | None = None,
    near: str | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    device: str = "auto",
) -> int:
    resolve_bundle_dir(run)  # fail early, with the bundle's own message
    items = only_under(load_queue(run, queue, data, predictions, selection), paths or [])
    if not items:
        print(f"the {queue} queue of {run} is empty: nothing to review")
        return 0
    neighbours = None
    if near is not None:
        neighbours = find_neighbours(items, near)
    store = DecisionStore(review_folder(run))
    predictor = Predictor.load(run, device=device)
    session = ReviewSession(predictor, items, store, neighbours, Path(near) if near else None)
    done, left, _ = session.counts()
    print(
        f"{plural(len(items), 'photo')} in the {queue} queue, {done} decided, {left} left; "
        f"decisions are written to {store.path}"
    )
    with own_upload_folder():
        page = build_review_page(session)
        serve_review(page, host, port, share)
    return 0
