"""Aligned 150x150 face chips made by dlib itself, plus the image->chip affine map.

`FaceChipper(shape_predictor_path).faces(rgb)` returns, for every face dlib's HOG detector
finds, dlib's chip (dlib.get_face_chip with size=150, padding=0.25, exactly what dlib's
face_recognition_model_v1 expects), the dlib.chip_details and the 5 landmark points.

Mapping an image point into the chip (dlib's get_mapping_to_chip, image_transforms/interpolation.h):
dlib sends the corners tl, tr, br of `details.rect`, each rotated by `details.angle` (radians)
around the rect's centre, to chip pixels (0,0), (cols-1,0), (cols-1,rows-1). In closed form,
with c = rect centre, w = rect.right-rect.left, h = rect.bottom-rect.top and R(a) the rotation
[[cos a, -sin a], [sin a, cos a]]:

    chip = diag((cols-1)/w, (rows-1)/h) @ R(-angle) @ (p - c) + ((cols-1)/2, (rows-1)/2)

`image_to_chip_matrix(details)` returns that map as a 2x3 matrix A (chip = A @ [x, y, 1]);
coordinates are in pixels with (0,0) the centre of the top-left pixel, as everywhere in dlib.
It is exactly dlib's own map (map_det_to_chip uses it), and exactly where the chip pixels are
sampled when the face is small (checked to 1e-13 px). Caveat, measured on dlib-bin 20.0.1 over
all 94 faces of shared/faces: when the face rect is big enough that extract_image_chip first
halves the image with its pyramid (rect side above about twice the chip size, ~290-300 px here),
the chip content is sampled at the nominal image point + (-0.5, +0.5) px, uniformly over the chip,
i.e. 0.5/scale chip px (0.14-0.27 px here); a synthetic RGB pattern confirms it. Larger faces (two
pyramid levels) were not in the photos. `check_mapping()` gives the map's max error (chip px) at
the points dlib samples and `sampling_offset()` the offset (image px), for any face.

Landmark check (`landmark_centroid_error()`): get_face_chip_details fits a similarity from dlib's
5-point template (DLIB_5PT_TEMPLATE, unit square; in chip units T = size*(padding+t)/(1+2*padding))
to the landmarks by least squares, so the landmark centroid equals the mapped template centroid.
With rect width = size*s - 1 (dlib's centered_drect), the map sends template point T to
k*(T - size/2) + (size-1)/2 with k = (size-1)*s/(size*s-1); the mapped landmarks' centroid must
equal that of the template, which holds to 2e-13 chip px on all 94 faces of shared/faces.
"""
from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np
from PIL import Image

CHIP_SIZE = 150
CHIP_PADDING = 0.25
# dlib's input_rgb_image_sized<150> (dnn/input.h): value = (pixel - mean_c)/256, means stored as
# float32 in the .dat (they equal dlib's defaults 122.782, 117.001, 104.298).
INPUT_MEAN = np.array([122.782, 117.001, 104.298], dtype=np.float32)
INPUT_SCALE = np.float32(256.0)
# dlib's 5-point alignment template (image_transforms/interpolation.h get_face_chip_details), in
# the unit square before padding; order = the 5-point predictor's parts 0..4.
DLIB_5PT_TEMPLATE = np.array([
    (0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848), (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475)])


@dataclass
class Face:
    chip: np.ndarray          # 150x150x3 uint8 RGB
    details: dlib.chip_details
    landmarks: np.ndarray     # 5x2 float64 image coordinates (x, y) from the 5-point predictor
    box: dlib.rectangle       # detector box


class FaceChipper:
    def __init__(self, shape_predictor_path, upsample=1):
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(shape_predictor_path))
        self.upsample = upsample

    def faces(self, rgb):
        """All faces of an HxWx3 uint8 RGB image, in detector order."""
        out = []
        for box in self.detector(rgb, self.upsample):
            shape = self.predictor(rgb, box)
            details = dlib.get_face_chip_details(shape, size=CHIP_SIZE, padding=CHIP_PADDING)
            chip = dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
            pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            out.append(Face(chip, details, pts, box))
        return out


def load_rgb(path):
    # RGBA/greyscale/palette files become plain RGB; EXIF orientation is ignored, like dlib.load_rgb_image.
    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def normalise(chips):
    """uint8 chips [N,150,150,3] (or one chip) -> float32 NCHW network input, as dlib computes it."""
    chips = np.asarray(chips)
    if chips.ndim == 3:
        chips = chips[None]
    x = (chips.astype(np.float32) - INPUT_MEAN) / INPUT_SCALE
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def image_to_chip_matrix(details):
    r = details.rect
    w, h = r.right() - r.left(), r.bottom() - r.top()
    cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
    ca, sa = np.cos(details.angle), np.sin(details.angle)
    scale = np.diag([(details.cols - 1) / w, (details.rows - 1) / h])
    lin = scale @ np.array([[ca, sa], [-sa, ca]])  # scale @ R(-angle)
    offset = np.array([(details.cols - 1) / 2, (details.rows - 1) / 2]) - lin @ np.array([cx, cy])
    return np.hstack([lin, offset[:, None]])


def map_to_chip(details, points):
    """Nx2 image points (x, y) -> Nx2 chip points."""
    a = image_to_chip_matrix(details)
    return np.asarray(points, dtype=np.float64) @ a[:, :2].T + a[:, 2]


def landmark_centroid_error(face):
    """|centroid of the mapped landmarks - centroid of dlib's template as the map places it| (chip px)."""
    d, size = face.details, face.details.cols
    template = size * (CHIP_PADDING + DLIB_5PT_TEMPLATE) / (1 + 2 * CHIP_PADDING)
    s = (d.rect.right() - d.rect.left() + 1) / size  # image px per template unit
    k = (size - 1) * s / (size * s - 1)
    expected = k * (template - size / 2) + (size - 1) / 2
    return float(np.abs(map_to_chip(d, face.landmarks).mean(axis=0) - expected.mean(axis=0)).max())


def _dlib_sample_points(details, image_shape, margin):
    """Image points dlib's chip extraction really samples, and their chip pixels (both Nx2 x,y).

    dlib resamples images whose values are the x and y coordinates; bilinear interpolation (and
    dlib's pyramid smoothing) reproduce a linear ramp exactly, so each chip pixel holds the image
    point dlib sampled for it. Chip pixels within `margin` of the border, or that sampled near the
    image edge, are skipped.
    """
    h, w = image_shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    src_x = np.asarray(dlib.extract_image_chip(np.ascontiguousarray(xs), details))
    src_y = np.asarray(dlib.extract_image_chip(np.ascontiguousarray(ys), details))
    rows, cols = np.mgrid[0:details.rows, 0:details.cols]
    inside = ((src_x > margin) & (src_x < w - 1 - margin) & (src_y > margin) & (src_y < h - 1 - margin)
              & (rows >= margin) & (rows < details.rows - margin) & (cols >= margin) & (cols < details.cols - margin))
    return np.stack([src_x[inside], src_y[inside]], axis=1), np.stack([cols[inside], rows[inside]], axis=1)


def check_mapping(details, image_shape, margin=8):
    """Max error (chip px) of image_to_chip_matrix at the points dlib really samples; None if none qualify."""
    sampled, chip_px = _dlib_sample_points(details, image_shape, margin)
    if not len(sampled):
        return None
    return float(np.abs(map_to_chip(details, sampled) - chip_px).max())


def sampling_offset(details, image_shape, margin=8):
    """Mean (dx, dy) in image px of the points dlib samples minus the nominal map's; None if none qualify.

    (0, 0) when dlib resamples the image directly, (-0.5, +0.5) after one pyramid level (see module doc).
    """
    sampled, chip_px = _dlib_sample_points(details, image_shape, margin)
    if not len(sampled):
        return None
    a = image_to_chip_matrix(details)
    nominal = np.linalg.solve(a[:, :2], (chip_px - a[:, 2]).T).T
    return tuple(float(v) for v in (sampled - nominal).mean(axis=0))


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def photos(faces_dir):
    """Sorted image paths under faces_dir (every set), relative paths with '/' separators."""
    faces_dir = Path(faces_dir)
    return sorted(p.relative_to(faces_dir).as_posix() for p in faces_dir.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def identity(rel_path):
    """Person name for sets laid out as <set>/<identity>/<image>; None for flat sets (multi_face...)."""
    parts = rel_path.split("/")
    return f"{parts[0]}/{parts[1]}" if len(parts) == 3 else None
