"""Draw the augmentation sheet of a preset for one image, as training writes it to
RUN_DIR/figures/augmentations.png (each operation of the preset alone, at probability 1).

    python benchmarks/augmentation_sheet.py IMAGE [--preset classic] [--size 150] [--out FILE]
"""

from __future__ import annotations

import argparse

from scenes.data.images import load_image
from scenes.training.figures import plot_augmentations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--preset", default="classic")
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default="augmentations.png")
    args = parser.parse_args()
    image = load_image(args.image, args.size)  # decoded exactly as training decodes it
    print(plot_augmentations(image, args.preset, args.out, args.seed))


if __name__ == "__main__":
    main()
