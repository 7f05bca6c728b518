"""Object detection on Animal scenes: parts of non-background pixels, a class and score each, a colour each.

GenEval detects with Mask2Former and names colours with CLIP; on a flat grey canvas much less does:
1. Background: the image's per-channel median (objects cover well under half of any scene), so a
   generated image's slightly-off grey is still background. Foreground: pixels farther than
   FOREGROUND_DISTANCE from it in RGB (every drawn pixel is at least ALPHA_CUTOFF x 114 = 34 away:
   the purple tint is the palette's closest colour to the grey).
2. Objects: connected parts of the foreground after a 1 px dilation (sgbench.data.scenes.connected_parts,
   the rule the scenes are drawn by: a silhouette's detached leg stays with it, objects 3 px apart stay
   apart); parts under MIN_AREA px are specks, not objects. Box: the part's pixel box, x2/y2 exclusive.
3. Colour, in sRGB: scenes composite there (pixel = background + alpha (tint - background)), so the
   blends of each palette colour with the grey lie on a straight segment; the object's colour is the
   palette colour whose segment passes closest to its pixels (fit_color). A faint edge and a solid
   interior then name the same colour; a nearest-colour rule in any space cannot do that (half-alpha
   red on grey is nearer brown than red in CIELAB: the first version, which named the mean of each
   part's most saturated pixels in CIELAB, called small red and orange objects brown).
4. Class and score: ObjectClassifier, two small CNNs (ObjectNet, 288k parameters each), on the
   part's alpha map (each pixel's position along its colour's segment, so the tint drops out), centred
   and scaled to CROP x CROP; score = the top class's probability, the softmax of the members' logits
   averaged over ten views (1 px shifts and mirrors) and divided by a temperature fitted on held-out
   objects of the classifier's style.
   Weights: one file per object style (CLASSIFIER_WEIGHTS), each trained by
   sgbench.evaluation.geneval.train_classifier: for glyph scenes (sgbench.data.glyphs, the miniature's
   default style) sgbench/assets/scene_glyph_classifier.safetensors, for silhouette scenes
   sgbench/assets/scene_object_classifier.safetensors (trained on `train` silhouettes, held-out accuracy on
   `test` in its record). DEFAULT_WEIGHTS is the default style's (sgbench.data.scenes.DEFAULT_OBJECTS).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from scipy import ndimage

from sgbench.data.animal import CLASS_NAMES
from sgbench.data.geneval_words import COLORS
from sgbench.data.scenes import DEFAULT_OBJECTS, connected_parts
from sgbench.utils.errors import SgbenchError
from sgbench.models.checkpoint import read_record, read_weights

SILHOUETTE_WEIGHTS = Path(__file__).resolve().parents[2] / "assets" / "scene_object_classifier.safetensors"
GLYPH_WEIGHTS = SILHOUETTE_WEIGHTS.with_name("scene_glyph_classifier.safetensors")
CLASSIFIER_WEIGHTS = {"silhouettes": SILHOUETTE_WEIGHTS, "glyphs": GLYPH_WEIGHTS}  # scenes' objects -> shipped classifier
DEFAULT_WEIGHTS = CLASSIFIER_WEIGHTS[DEFAULT_OBJECTS]  # the judge of the miniature's default style
RECORD_KEY = "sgbench_scene_classifier"
FOREGROUND_DISTANCE = 24.0  # RGB distance from the background above which a pixel is part of an object
MIN_AREA = 6  # px; smaller parts are specks
CROP = 24  # classifier input side; the object's longest side is scaled to CROP - 2 * CROP_BORDER
CROP_BORDER = 2
SHIFTS = ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0))  # (rows, columns) px: the classifier's views of a crop


@dataclass(frozen=True)
class Detection:
    """One detected object: class, score in [0, 1], box (x1, y1, x2, y2) px with x2/y2 exclusive, colour."""

    class_name: str
    score: float
    box: tuple[float, float, float, float]
    color: str


# ---------------------------------------------------------------------------------------------------
# Parts of an image

_TINTS = np.array(list(COLORS.values()), np.float32)  # (10, 3), GenEval's colour order


def fit_color(offsets: np.ndarray, background: np.ndarray) -> tuple[str, np.ndarray]:
    """Name the colour of pixels given as offsets (P, 3) from the background; also return their alpha (P,).

    A scene pixel is background + alpha (tint - background): each palette colour's blends with the
    grey lie on a segment in sRGB. The object's colour is the palette colour whose segment passes
    closest to its pixels (sum of squared distances); alpha is each pixel's position along it.
    """
    directions = _TINTS - background                                                  # (10, 3)
    alphas = np.clip(offsets @ directions.T / (directions**2).sum(-1), 0.0, 1.0)      # (P, 10)
    residual = ((offsets[:, None, :] - alphas[..., None] * directions) ** 2).sum((0, 2))  # (10,)
    best = int(np.argmin(residual))
    return tuple(COLORS)[best], alphas[:, best]


@dataclass
class Part:
    """One object: box (x1, y1, x2, y2) px, x2/y2 exclusive; alpha float32 (y2 - y1, x2 - x1) in [0, 1],
    0 off the part; colour name."""

    box: tuple[int, int, int, int]
    alpha: np.ndarray
    color: str


def find_parts(image: np.ndarray) -> list[Part]:
    """image uint8 (H, W, 3) -> its objects, in raster order of their first pixel."""
    pixels = image.astype(np.float32)
    background = np.median(pixels.reshape(-1, 3), axis=0)
    offsets = pixels - background
    labels, n = connected_parts(np.linalg.norm(offsets, axis=-1) > FOREGROUND_DISTANCE)
    parts = []
    for index, (rows, cols) in enumerate(ndimage.find_objects(labels, max_label=n), 1):
        inside = labels[rows, cols] == index
        if inside.sum() < MIN_AREA:
            continue
        color, alpha = fit_color(offsets[rows, cols][inside], background)
        alpha_map = np.zeros(inside.shape, np.float32)
        alpha_map[inside] = alpha
        parts.append(Part((cols.start, rows.start, cols.stop, rows.stop), alpha_map, color))
    return parts


def crop_input(alpha: np.ndarray) -> np.ndarray:
    """A part's alpha (h, w) -> float32 (CROP, CROP): longest side scaled to CROP - 2 CROP_BORDER, centred."""
    h, w = alpha.shape
    inner = CROP - 2 * CROP_BORDER
    scale = inner / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = np.asarray(Image.fromarray(alpha, mode="F").resize(size, Image.Resampling.BILINEAR))
    out = np.zeros((CROP, CROP), np.float32)
    top, left = (CROP - size[1]) // 2, (CROP - size[0]) // 2
    out[top : top + size[1], left : left + size[0]] = resized
    return out


# ---------------------------------------------------------------------------------------------------
# The classifier

def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ObjectNet(nn.Module):
    """Three stages of two 3x3 convs (32, 64, 128 channels; 24 -> 12 -> 6 px) -> avgpool -> linear -> 10 logits.

    Two convs a stage rather than one (the first version, 99k parameters) because the one-conv net
    could not fit its own training silhouettes (99.0% right, 95.5% above 0.9 on them); at 288k
    parameters two nets reach 99.3% right, 98.0% above 0.9 on held-out silhouettes (the shipped record).
    """

    def __init__(self, num_classes: int = len(CLASS_NAMES)):
        super().__init__()
        self.body = nn.Sequential(
            _conv(1, 32), _conv(32, 32), nn.MaxPool2d(2),        # 24 -> 12
            _conv(32, 64), _conv(64, 64), nn.MaxPool2d(2),       # 12 -> 6
            _conv(64, 128), _conv(128, 128),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),               # (B, 128)
        )
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float (B, 1, CROP, CROP), alpha in [0, 1] -> logits (B, 10)."""
        return self.head(self.body(x * 2.0 - 1.0))


class ObjectClassifier(nn.Module):
    """The score: an ensemble of ObjectNets over views of the crop, calibrated.

    Logits are averaged over the members and over ten views (the crop shifted by SHIFTS, where a part's
    centring is arbitrary to a pixel, each also mirrored, as scenes mirror silhouettes at random),
    then divided by a temperature fitted on held-out objects none of the members saw; the softmax of the
    result is a calibrated class probability (sgbench.evaluation.geneval.train_classifier).
    """

    def __init__(self, members: int = 2):
        super().__init__()
        self.members = nn.ModuleList(ObjectNet() for _ in range(members))
        self.register_buffer("temperature", torch.ones(()))

    def forward(self, x: torch.Tensor, calibrated: bool = True) -> torch.Tensor:
        """x: float (B, 1, CROP, CROP), alpha in [0, 1] -> logits (B, 10), over the temperature if calibrated."""
        views = [torch.roll(x, shift, dims=(-2, -1)) for shift in SHIFTS]   # the border keeps the part whole
        views += [view.flip(-1) for view in views]
        logits = torch.stack([net(view) for net in self.members for view in views]).mean(0)
        return logits / self.temperature if calibrated else logits


@torch.no_grad()
def classify(classifier: ObjectClassifier, crops: np.ndarray, *, calibrated: bool = True,
             batch_size: int = 1024) -> np.ndarray:
    """crops float32 (B, CROP, CROP) -> class probabilities (B, 10) (uncalibrated: logits (B, 10))."""
    out = [np.zeros((0, len(CLASS_NAMES)), np.float32)]
    for start in range(0, len(crops), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(crops[start : start + batch_size], np.float32))[:, None]
        logits = classifier(x, calibrated)
        out.append((logits.softmax(-1) if calibrated else logits).numpy())
    return np.concatenate(out)


def load_object_classifier(path: str | Path = DEFAULT_WEIGHTS) -> ObjectClassifier:
    """The given classifier, by default the default style's shipped one (DEFAULT_WEIGHTS), float32, in eval mode."""
    state = read_weights(path, what="scene object classifier", rebuild="`sgbench geneval train-classifier`")
    classifier = ObjectClassifier(len({key.split(".")[1] for key in state if key.startswith("members.")}))
    try:
        classifier.load_state_dict(state)
    except RuntimeError as e:
        raise SgbenchError(f"Expected ObjectClassifier weights in {path} but they do not fit: {e}") from None
    return classifier.eval()


def read_training_record(path: str | Path = DEFAULT_WEIGHTS) -> dict:
    """The training record stored in the weights' metadata (accuracies, seed, command...)."""
    return read_record(path, RECORD_KEY)


# ---------------------------------------------------------------------------------------------------
# Detection

def detect(images: np.ndarray, classifier: ObjectClassifier) -> list[list[Detection]]:
    """images uint8 (N, H, W, 3) -> for each image its detections (one per part, any order)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise SgbenchError(f"Expected images uint8 (N, H, W, 3) but got {images.dtype} {tuple(images.shape)}")
    parts = [find_parts(image) for image in images]
    crops = [crop_input(p.alpha) for ps in parts for p in ps]
    probs = classify(classifier, np.stack(crops) if crops else np.zeros((0, CROP, CROP), np.float32))
    detections, k = [], 0
    for ps in parts:
        found = []
        for part in ps:
            best = int(probs[k].argmax())
            found.append(Detection(CLASS_NAMES[best], float(probs[k, best]), tuple(map(float, part.box)), part.color))
            k += 1
        detections.append(found)
    return detections
