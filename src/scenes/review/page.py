"""The review page (Gradio ``gr.Blocks``): one queued photo at a time, decided by a click or a key.

Keys (``KEYS_HEAD``, a script in the page's head that clicks the matching button): 1-9 the
classes in the model's order, ``x`` exclude, space keep, ``u`` undo, the left and right
arrows move. A button whose previous click is still being answered ignores further clicks
(Gradio's ``trigger_mode="once"``): a key pressed too fast is dropped, never applied to the
wrong photo. Every decision is written to ``decisions.csv`` before the page moves on.
"""

from __future__ import annotations

import gradio as gr

from .decisions import EXCLUDE, KEEP
from .session import ReviewSession

ELEMENT = "review-"  # the prefix of every element id the keys and the tests find
MAX_KEYED_CLASSES = 9
# The photo and the heatmap fill their boxes: a 150-pixel photo is shown large, not as a stamp.
PAGE_CSS = """
#review-photo img, #review-heatmap img { width: 100%; height: 100%; object-fit: contain; }
#review-heatmap img { image-rendering: pixelated; }
"""
KEYS_HEAD = """
<script>
document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) return;
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const named = {x: "exclude", " ": "keep", u: "undo", ArrowLeft: "previous", ArrowRight: "next"};
  const id = /^[1-9]$/.test(event.key) ? "class-" + event.key : named[event.key];
  const button = id && document.getElementById("review-" + id);
  if (button) {
    event.preventDefault();
    // A button clicked with the mouse keeps the focus: space would click it a second time.
    if (document.activeElement && document.activeElement.tagName === "BUTTON") {
      document.activeElement.blur();
    }
    button.click();
  }
});
</script>
"""


def counter_text(session: ReviewSession) -> str:
    done, left, changed = session.counts()
    return f"**done {done}** · **left {left}** · **changed {changed}** of {len(session.items)}"


def item_text(session: ReviewSession, index: int) -> str:
    item = session.items[index]
    decision = session.decision(index)
    shown = session.show(index)
    lines = [
        f"### {index + 1} / {len(session.items)}: `{item.path.name}`",
        f"- given label: **{item.given or '(none: unlabelled)'}**",
        f"- queued because: {item.why}",
        f"- decision: **{decision.decision if decision else 'not decided yet'}**",
        f"- {session.near_text(index)}",
    ]
    if shown.problem:
        lines.append(f"- {shown.problem}")
    return "\n".join(lines)


def build_review_page(session: ReviewSession) -> gr.Blocks:
    """The page; the caller launches it with ``head=KEYS_HEAD`` and ``css=PAGE_CSS``
    (``serve_review``)."""
    names = session.class_names

    def view(index: int):
        shown = session.show(index)
        top = shown.top or None
        return (
            index,
            shown.photo,
            shown.heatmap,
            top,
            item_text(session, index),
            counter_text(session),
            session.near_photos(index) or None,
        )

    def opening():
        return view(session.first_undecided())

    def move(index: int, step: int):
        return view(min(max(index + step, 0), len(session.items) - 1))

    def after_deciding(index: int):
        # The next undecided photo after this one: a resumed review skips what is done.
        return view(session.first_undecided((index + 1) % len(session.items)))

    def choose(index: int, class_name: str):
        if session.choose_class(index, class_name) is not None and not session.multilabel:
            return after_deciding(index)
        return view(index)  # multi-label: stay, to add or take off more classes

    def decide(index: int, decision: str):
        session.decide(index, decision)
        return after_deciding(index)

    def undo(index: int):
        undone = session.undo()
        return view(index if undone is None else undone)

    with gr.Blocks(title="scenes review: fix the labels") as page:
        position = gr.State(0)
        counter = gr.Markdown(elem_id=f"{ELEMENT}counter")
        with gr.Row():
            photo = gr.Image(
                label="Photo",
                interactive=False,
                height=520,
                format="png",
                elem_id=f"{ELEMENT}photo",
            )
            with gr.Column():
                info = gr.Markdown(elem_id=f"{ELEMENT}item")
                top = gr.Label(
                    num_top_classes=session.top_k, label="Model", elem_id=f"{ELEMENT}top"
                )
                heatmap = gr.Image(
                    label="Where it saw its top class (Grad-CAM)",
                    interactive=False,
                    height=300,
                    format="png",
                    elem_id=f"{ELEMENT}heatmap",
                )
        near = gr.Gallery(
            label="Near-duplicates (label, split, exact or near)",
            columns=6,
            height=220,
            format="png",
            elem_id=f"{ELEMENT}near",
            visible=session.neighbours is not None,
        )
        keyed = "toggle " if session.multilabel else ""
        with gr.Row():
            class_buttons = [
                gr.Button(
                    f"{i} {keyed}{name}" if i <= MAX_KEYED_CLASSES else name,
                    elem_id=f"{ELEMENT}class-{i}",
                )
                for i, name in enumerate(names, 1)
            ]
        with gr.Row():
            keep = gr.Button("space: keep", elem_id=f"{ELEMENT}keep", variant="primary")
            exclude = gr.Button("x: exclude", elem_id=f"{ELEMENT}exclude", variant="stop")
            undo_button = gr.Button("u: undo", elem_id=f"{ELEMENT}undo")
            previous = gr.Button("← previous", elem_id=f"{ELEMENT}previous")
            following = gr.Button("→ next", elem_id=f"{ELEMENT}next")
        shown = [position, photo, heatmap, top, info, counter, near]
        for button, name in zip(class_buttons, names):
            button.click(lambda i, n=name: choose(i, n), position, shown, trigger_mode="once")
        keep.click(lambda i: decide(i, KEEP), position, shown, trigger_mode="once")
        exclude.click(lambda i: decide(i, EXCLUDE), position, shown, trigger_mode="once")
        undo_button.click(undo, position, shown, trigger_mode="once")
        previous.click(lambda i: move(i, -1), position, shown, trigger_mode="once")
        following.click(lambda i: move(i, 1), position, shown, trigger_mode="once")
        page.load(opening, None, shown)
    # One reviewer's clicks are answered in order, one at a time.
    page.queue(default_concurrency_limit=1, max_size=64)
    return page
