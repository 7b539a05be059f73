"""Published results of other work on a profile's dataset, quoted beside the measured ones.

Never measured here: every row names where it is quoted from.  Fashion-MNIST: the benchmark
table of the dataset's README (github.com/zalandoresearch/fashion-mnist, "Benchmark"), whose
own note says the submitted results were not tested by the dataset's authors.
"""

from __future__ import annotations

FASHION_MNIST_SOURCE = (
    "quoted: Fashion-MNIST README benchmark table (zalandoresearch/fashion-mnist; untested submissions)"
)

#: dataset → (classifier, preprocessing, test accuracy) rows, in the README's words
QUOTED = {
    "fashion-mnist": (
        ("2 Conv Layers net <100K parameters", "None", 0.925),
        ("2 Conv Layers with 3 FC 1.8M parameters", "Normalization", 0.932),
        ("3 Conv+pooling and 2 FC+dropout", "None", 0.926),
        ("GoogleNet with cross-entropy loss", "None", 0.937),
        ("ResNet18", "normalization, flips, translation, rotation", 0.949),
        ("DenseNet-BC 768K params", "mean/std, random crops/horizontal flips", 0.954),
        ("WRN40-4 8.9M params", "mean/std, random crops/horizontal flips", 0.967),
        ("Human Performance", "1000 test images, 3 labels each, majority", 0.835),
    ),
}
SOURCES = {"fashion-mnist": FASHION_MNIST_SOURCE}
