"""Where a scene's objects go (sgbench.data.scenes): boxes apart by GAP px, every asked relation holding under
GenEval's position rule with a margin; anywhere on the canvas (`place`) or one per cell of a 2x2 grid (`place_grid`).
"""

from __future__ import annotations

import random

from sgbench.data.geneval_words import relation_components

MERGE_RADIUS = 1  # one object = the pixels connected after dilating by this many px (pieces of a silhouette
#                  that downsampling detached, a leg or a wing, stay one object; farther pieces are dropped)
GAP = 2 * MERGE_RADIUS + 1  # px of background between any two objects' boxes: dilated objects never touch
EDGE = 1  # px of background between an object and the canvas border
RELATION_MARGIN = 0.15  # an asked relation holds with |d| >= 0.5 + margin on its axis ...
CROSS_LIMIT = 0.35  # ... and |d| <= this on the other axis, so that it is the only relation that holds


def _clearly(relation: str, box_a, box_b) -> bool:
    """A holds `relation` to B under GenEval's rule with a margin, and no relation on the other axis."""
    dx, dy = relation_components(box_a, box_b)
    along, across = (dx, dy) if relation in ("left of", "right of") else (dy, dx)
    sign = -1.0 if relation in ("left of", "above") else 1.0
    return sign * along >= 0.5 + RELATION_MARGIN and abs(across) <= CROSS_LIMIT


def _apart(box, boxes) -> bool:
    x1, y1, x2, y2 = box
    return all(x1 >= b[2] + GAP or b[0] >= x2 + GAP or y1 >= b[3] + GAP or b[1] >= y2 + GAP for b in boxes)


def _corner_ranges(i: int, shapes, constraints, boxes, canvas: int) -> tuple[int, int, int, int]:
    """Inclusive ranges (x_lo, x_hi, y_lo, y_hi) of object i's top-left corner: inside the canvas, on the
    asked side of its placed targets, and leaving room on the far side for later objects that refer to it."""
    h, w = shapes[i]
    x_lo, x_hi, y_lo, y_hi = EDGE, canvas - EDGE - w, EDGE, canvas - EDGE - h
    for relation, j in constraints[i]:
        bx1, by1, bx2, by2 = boxes[j]
        if relation == "left of":
            x_hi = min(x_hi, bx1 - GAP - w)
        elif relation == "right of":
            x_lo = max(x_lo, bx2 + GAP)
        elif relation == "above":
            y_hi = min(y_hi, by1 - GAP - h)
        else:
            y_lo = max(y_lo, by2 + GAP)
    for k in range(i + 1, len(shapes)):
        hk, wk = shapes[k]
        for relation, j in constraints[k]:
            if j != i:
                continue
            if relation == "left of":
                x_lo = max(x_lo, EDGE + wk + GAP)
            elif relation == "right of":
                x_hi = min(x_hi, canvas - EDGE - wk - GAP - w)
            elif relation == "above":
                y_lo = max(y_lo, EDGE + hk + GAP)
            else:
                y_hi = min(y_hi, canvas - EDGE - hk - GAP - h)
    return x_lo, x_hi, y_lo, y_hi


def place(rng: random.Random, shapes, constraints, canvas: int) -> list[tuple[int, int, int, int]]:
    """Boxes for objects of `shapes` [(h, w)], apart by GAP, each satisfying constraints[i] = [(relation, j)].

    Rejection sampling of corners, uniform within _corner_ranges (restarted when stuck); after 20
    restarts, objects in no relation go one per canvas quadrant (four always fit, see _check_sizes).
    """
    related = {i for i, c in enumerate(constraints) if c} | {j for c in constraints for _, j in c}
    for attempt in range(40):
        quadrants = rng.sample(range(4), len(shapes)) if attempt >= 20 else None
        boxes: list[tuple[int, int, int, int]] = []
        for i, (h, w) in enumerate(shapes):
            if quadrants is None or i in related:
                x_lo, x_hi, y_lo, y_hi = _corner_ranges(i, shapes, constraints, boxes, canvas)
            else:  # GAP - GAP // 2 px of room before an object and GAP // 2 after it in its quadrant
                half = canvas // 2
                x_lo = (quadrants[i] % 2) * half + GAP - GAP // 2
                y_lo = (quadrants[i] // 2) * half + GAP - GAP // 2
                x_hi, y_hi = x_lo + half - GAP - w, y_lo + half - GAP - h
            if x_lo > x_hi or y_lo > y_hi:
                break
            for _ in range(30):  # int(random() * n) is randrange(n), several times faster
                x = x_lo + int(rng.random() * (x_hi - x_lo + 1))
                y = y_lo + int(rng.random() * (y_hi - y_lo + 1))
                box = (x, y, x + w, y + h)
                if _apart(box, boxes) and all(_clearly(rel, box, boxes[j]) for rel, j in constraints[i]):
                    boxes.append(box)
                    break
            else:
                break
        if len(boxes) == len(shapes):
            return boxes
    raise AssertionError(f"no placement found for {len(shapes)} objects on a {canvas} px canvas")


def place_grid(rng: random.Random, shapes, constraints, canvas: int) -> list[tuple[int, int, int, int]]:
    """Boxes for at most four objects, one per cell of a 2x2 grid, centred in it: a random assignment of
    cells among those that satisfy every constraint (left of / right of: same row; above / below: same column)."""
    half = canvas // 2
    cells = [(col, row) for row in range(2) for col in range(2)]
    for _ in range(200):
        chosen = rng.sample(cells, len(shapes))
        ok = True
        for i, cons in enumerate(constraints):
            for relation, j in cons:
                (ci, ri), (cj, rj) = chosen[i], chosen[j]
                ok &= {"left of": ri == rj and ci < cj, "right of": ri == rj and ci > cj,
                       "above": ci == cj and ri < rj, "below": ci == cj and ri > rj}[relation]
        if ok:
            break
    else:
        raise AssertionError("no grid placement found")
    boxes = []
    for (h, w), (col, row) in zip(shapes, chosen):
        x, y = col * half + (half - w) // 2, row * half + (half - h) // 2
        boxes.append((x, y, x + w, y + h))
    return boxes
