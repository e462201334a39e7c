"""``scenes review``: look at a queue of suspicious photos in the browser and decide, from the
keyboard, to keep, relabel or exclude each; the decisions go to ``RUN/review/decisions.csv``."""
