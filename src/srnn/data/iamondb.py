"""Online handwriting: the pen trajectories of the IAM On-Line Handwriting Database (IAM-OnDB).

Liwicki & Bunke (ICDAR 2005); the handwriting set of Chung et al.'s VRNN paper (2015) and of
Dai et al.'s re-examination (2019; 7.63 M steps), preprocessed as in Graves (2013), section 4.
The corpus is licensed: ``iamondb:PATH`` reads a user's copy.

**Files.** ``PATH/lineStrokes/**/*.xml`` (also ``PATH/data/lineStrokes``, or ``PATH`` itself
when it is the ``lineStrokes`` folder), one text line per file, e.g.
``lineStrokes/a01/a01-000/a01-000u-01.xml`` (line id ``a01-000u-01`` of form ``a01-000u``)::

    <WhiteboardCaptureSession>
      <WhiteboardDescription>...</WhiteboardDescription>
      <StrokeSet>
        <Stroke colour="black" start_time="769.05" end_time="769.64">
          <Point x="1073" y="1058" time="769.05"/>
          ...
        </Stroke>
        ...
      </StrokeSet>
    </WhiteboardCaptureSession>

**Steps.** The points of a line, stroke after stroke, p_1 .. p_N, become N steps

    x_i = (s_i, dx_i, dy_i),  s_i = 1 if the pen is lifted after p_i (the last point of a
    stroke) else 0,  (dx_i, dy_i) = p_i - p_{i-1}  (p_0 := p_1: the first offset is 0)

so the step after a pen lift carries the jump to the next stroke (Graves 2013). Inputs are
``u_t = x_{t-1}``. The offsets are normalised with the training set's per-coordinate mean and
standard deviation (the first, zero offset of each line left out of the statistics;
:class:`OffsetNormaliser`), kept in ``info["normaliser"]`` and in the run's ``data.json``, so a
run's samples are drawn without the corpus (:func:`decode`: un-normalise, cumulative sum, split
at the pen lifts). Column 0 is binary, columns 1 and 2 real: the set's emission is ``pen``
(:mod:`srnn.nn.pen`).

**Splits.** Where the standard lists of the IAM-OnDB-t1 task are found (``trainset.txt``,
``testset_v.txt``, ``testset_t.txt``, ``testset_f.txt`` in ``PATH`` or a folder one level
below it, one form id such as ``a01-000u``, or line id, per line): train = ``trainset.txt``,
valid = ``testset_v.txt`` and ``testset_t.txt`` (the two validation sets), test =
``testset_f.txt``; lines that no list names are left out (counted in ``info["unlisted"]``).
Otherwise a seeded split by group (``info["split_by"]``, ``info["groups"]``): by writer where
every line file carries a ``writerID`` attribute, else by form (a line's group is its
``writerID`` where its file has one, else its form). lineStrokes files normally carry no
``writerID``, and IAM-OnDB has ~1,700 forms by 221 writers, so the split by form is *not*
writer-disjoint (one writer's forms may be in train and test; a warning is logged): use the
standard lists for a writer-independent evaluation. The groups, sorted, are permuted by
``numpy.random.RandomState(seed)`` and the first ``k = max(1, round(0.05 n))`` are test, the
next ``k`` valid, the rest train (at least 3 groups needed).

**Checks.** Every file is parsed with a DTD or an entity declaration refused (nothing is
fetched or expanded), and every problem is a :class:`DataError` naming the file: malformed XML,
a root other than ``<WhiteboardCaptureSession>``, no ``<StrokeSet>``, no strokes, an empty
stroke, a point without x or y, a coordinate that is not a number, not finite or absurd
(:data:`MAX_COORDINATE`), a line of fewer than 2 points, an over-long file or line.
"""

from __future__ import annotations

import logging
import math
import os
import xml.parsers.expat as expat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, TreeBuilder

import numpy as np

from srnn.data.grid import Grid
from srnn.data.sequences import Modality, SequenceDataset, Split
from srnn.data.validate import check_length, reading
from srnn.errors import DataError

PROTOCOL = "iamondb"
GRID = Grid(label="pen point")  # one step per pen point, no fixed time between them
SPLITS = ("train", "valid", "test")
SPLIT_LISTS = {"train": ("trainset.txt",), "valid": ("testset_v.txt", "testset_t.txt"),
               "test": ("testset_f.txt",)}
PEN, DX, DY = 0, 1, 2  # the columns of a step
BINARY_COLUMNS = (PEN,)
EMISSION = "pen"
MAX_COORDINATE = 1e6  # |x|, |y| beyond this is corrupt (IAM-OnDB's whiteboard spans ~10^4)
MAX_FILE_BYTES = 16 * 2**20  # a line file is tens of kB
MAX_POINTS = 200_000  # points per line (a real line has about 700)
VALID_FRACTION = TEST_FRACTION = 0.05

PathLike = str | os.PathLike[str]

log = logging.getLogger("srnn.data.iamondb")


# --------------------------------------------------------------------------- normalisation


@dataclass(frozen=True)
class OffsetNormaliser:
    """Per-coordinate affine normalisation of the offsets, ``(d - mean) / std``, with training
    statistics: ``mean`` and ``std`` are (dx, dy) pairs."""

    mean: tuple[float, float]
    std: tuple[float, float]

    @classmethod
    def fit(cls, offsets: Sequence[np.ndarray]) -> OffsetNormaliser:
        """Mean and (population) standard deviation of the rows (dx, dy) of ``offsets``."""
        rows = np.concatenate([np.asarray(o, dtype=np.float64).reshape(-1, 2) for o in offsets]
                              ) if len(offsets) else np.zeros((0, 2))
        if not len(rows):
            raise DataError("iamondb normaliser: no training offsets to fit on")
        mean, std = rows.mean(0), rows.std(0)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std <= 0).any():
            raise DataError(f"iamondb normaliser: training offsets have standard deviation "
                            f"{tuple(std.tolist())} (every pen point in one place?)")
        return cls(mean=(float(mean[0]), float(mean[1])), std=(float(std[0]), float(std[1])))

    def apply(self, steps: np.ndarray) -> np.ndarray:
        """Raw steps (T, 3) with their offsets normalised (float32)."""
        out = np.array(steps, dtype=np.float64)
        out[:, DX:DY + 1] = (out[:, DX:DY + 1] - self.mean) / self.std
        return out.astype(np.float32)

    def invert(self, steps: np.ndarray) -> np.ndarray:
        """Normalised steps (..., 3) with their offsets in the corpus's units (float64)."""
        out = np.array(steps, dtype=np.float64)
        out[..., DX:DY + 1] = out[..., DX:DY + 1] * self.std + self.mean
        return out

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: Any) -> OffsetNormaliser:
        """Inverse of :meth:`to_dict`; anything else is a :class:`DataError`."""
        try:
            mean = tuple(float(v) for v in d["mean"])
            std = tuple(float(v) for v in d["std"])
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"iamondb normaliser: expected {{'mean': [dx, dy], 'std': [dx, dy]}}"
                            f", got {d!r}") from e
        if len(mean) != 2 or len(std) != 2 or not all(math.isfinite(v) for v in mean + std) \
                or min(std) <= 0:
            raise DataError(f"iamondb normaliser: invalid statistics mean={mean}, std={std}")
        return cls(mean=(mean[0], mean[1]), std=(std[0], std[1]))


# --------------------------------------------------------------------------- steps and strokes


def strokes_to_steps(strokes: Sequence[np.ndarray]) -> np.ndarray:
    """The steps (N, 3) (pen lift, dx, dy) of strokes of points (n_k, 2) (module docstring)."""
    points = np.concatenate([np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes])
    steps = np.zeros((len(points), 3))
    steps[1:, DX:DY + 1] = np.diff(points, axis=0)
    ends = np.cumsum([len(s) for s in strokes]) - 1
    steps[ends, PEN] = 1.0
    return steps


def steps_to_strokes(steps: np.ndarray, origin: Sequence[float] = (0.0, 0.0)
                     ) -> list[np.ndarray]:
    """The strokes (lists of points (n, 2)) of raw steps (T, 3): the cumulative sum of the
    offsets from ``origin``, split after every step whose pen value is >= 0.5 (a sample's 0/1,
    a reconstruction's probability). The inverse of :func:`strokes_to_steps` up to the first
    point's position."""
    steps = np.asarray(steps, dtype=np.float64)
    if steps.ndim != 2 or steps.shape[1] != 3:
        raise ValueError(f"steps must be (T, 3) (pen lift, dx, dy), got shape {steps.shape}")
    points = np.asarray(origin, dtype=np.float64) + np.cumsum(steps[:, DX:DY + 1], axis=0)
    cuts = np.flatnonzero(steps[:, PEN] >= 0.5) + 1
    return [s for s in np.split(points, cuts) if len(s)]


def decode(steps: np.ndarray, normaliser: OffsetNormaliser) -> list[np.ndarray]:
    """The strokes drawn by model steps (T, 3): offsets un-normalised, summed, split at pen
    lifts (:func:`steps_to_strokes`)."""
    return steps_to_strokes(normaliser.invert(steps))


# --------------------------------------------------------------------------- reading a line


def _refuse(what: str) -> Any:
    def handler(*args: Any) -> Any:
        raise DataError(f"a {what} is refused (line stroke files need none)")
    return handler


def parse_xml(data: bytes, where: str) -> Element:
    """The element tree of an XML document, parsed by expat with every DTD, entity declaration
    and external entity refused (no entity is expanded, nothing fetched)."""
    builder = TreeBuilder()
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse("document type declaration (<!DOCTYPE>)")
    parser.EntityDeclHandler = _refuse("entity declaration (<!ENTITY>)")
    parser.UnparsedEntityDeclHandler = _refuse("entity declaration (<!ENTITY>)")
    parser.ExternalEntityRefHandler = _refuse("external entity")
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    try:
        with reading(where, "malformed XML"):
            parser.Parse(data, True)
    except DataError as e:
        text = str(e)
        raise DataError(text if text.startswith(where) else f"{where}: {text}") from None
    return builder.close()


def _coordinate(point: Element, key: str, where: str) -> float:
    text = point.get(key)
    if text is None:
        raise DataError(f"{where} has no {key} attribute")
    try:
        v = float(text)
    except ValueError:
        raise DataError(f"{where}: {key}={text[:40]!r} is not a number") from None
    if not math.isfinite(v) or abs(v) > MAX_COORDINATE:
        raise DataError(f"{where}: absurd coordinate {key}={text[:40]} (expected a finite "
                        f"|{key}| <= {MAX_COORDINATE:g})")
    return v


@dataclass(frozen=True)
class Line:
    """One text line of pen strokes: its id, its writer (the ``writerID`` its file carries,
    None where it carries none) and its strokes of points (n_k, 2)."""

    id: str
    writer: str | None
    strokes: list[np.ndarray]

    @property
    def points(self) -> int:
        return sum(len(s) for s in self.strokes)


def form_of(line_id: str) -> str:
    """The form of a line id: ``a01-000u-01`` -> ``a01-000u`` (the id itself if it has no
    ``-NN`` line number)."""
    head, sep, tail = line_id.rpartition("-")
    return head if sep and tail.isdigit() and head else line_id


def read_line(path: PathLike) -> Line:
    """The strokes of one ``lineStrokes`` XML file (checks in the module docstring)."""
    path = Path(path)
    where = str(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DataError(f"{where}: cannot read the file ({e.strerror or e})") from None
    if size > MAX_FILE_BYTES:
        raise DataError(f"{where}: {size} bytes, more than the {MAX_FILE_BYTES} a line stroke "
                        "file may have")
    root = parse_xml(path.read_bytes(), where)
    if root.tag != "WhiteboardCaptureSession":
        raise DataError(f"{where}: root element <{root.tag}>, expected "
                        "<WhiteboardCaptureSession> (an IAM-OnDB lineStrokes file)")
    stroke_set = root.find("StrokeSet")
    if stroke_set is None:
        raise DataError(f"{where}: no <StrokeSet> in <WhiteboardCaptureSession>")
    elements = stroke_set.findall("Stroke")
    if not elements:
        raise DataError(f"{where}: no strokes (the <StrokeSet> holds no <Stroke>)")
    strokes, total = [], 0
    for k, stroke in enumerate(elements):
        points = stroke.findall("Point")
        if not points:
            raise DataError(f"{where}: stroke {k} of {len(elements)} is empty (no <Point>)")
        total += len(points)
        if total > MAX_POINTS:
            raise DataError(f"{where}: more than {MAX_POINTS} points in one line")
        strokes.append(np.array([[_coordinate(p, c, f"{where}: point {i} of stroke {k}")
                                  for c in ("x", "y")] for i, p in enumerate(points)]))
    check_length(total, f"{where}: the line")
    tagged = next((e.get("writerID") for e in root.iter() if e.get("writerID")), None)
    return Line(id=path.stem, writer=tagged, strokes=strokes)


# --------------------------------------------------------------------------- the corpus


def strokes_folder(root: Path) -> Path:
    """Where the line files are: ``root/lineStrokes``, ``root/data/lineStrokes`` or ``root``
    when it is that folder."""
    for d in (root / "lineStrokes", root / "data" / "lineStrokes"):
        if d.is_dir():
            return d
    if root.name == "lineStrokes":
        return root
    raise DataError(f"{root}: no lineStrokes/ folder (the IAM-OnDB line strokes, "
                    "lineStrokes-all.tar.gz unpacked) here or in data/")


def _line_files(folder: Path) -> list[Path]:
    files = sorted((p for p in folder.rglob("*") if p.suffix.lower() == ".xml" and p.is_file()),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        raise DataError(f"{folder}: no *.xml line stroke files")
    return files


def split_lists(root: Path) -> dict[str, list[tuple[str, list[str]]]] | None:
    """The standard lists ``{split: [(file, entries), ...]}`` (module docstring) from the
    first of ``root`` and its sub-folders (sorted) holding ``trainset.txt``; None if none
    does. A list folder without ``testset_f.txt`` or without both validation lists is a
    :class:`DataError`."""
    folders = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    folder = next((d for d in folders if (d / "trainset.txt").is_file()), None)
    if folder is None:
        return None
    out: dict[str, list[tuple[str, list[str]]]] = {}
    for split, names in SPLIT_LISTS.items():
        present = [folder / n for n in names if (folder / n).is_file()]
        if not present:
            raise DataError(f"{folder}: trainset.txt is here but {' / '.join(names)} is not "
                            "(the IAM-OnDB-t1 lists come together)")
        out[split] = []
        for p in present:
            with reading(str(p), "unreadable split list"):
                text = p.read_text(encoding="utf-8", errors="strict")
            entries = [e.strip() for e in text.splitlines()]
            out[split].append((str(p), [e for e in entries if e and not e.startswith("#")]))
    return out


def _listed_split(lines: list[Line], lists: dict[str, list[tuple[str, list[str]]]]
                  ) -> tuple[dict[str, list[Line]], int]:
    owner: dict[str, tuple[str, str]] = {}  # entry -> (split, list file)
    for split, files in lists.items():
        for name, entries in files:
            for e in entries:
                if e in owner and owner[e][0] != split:
                    raise DataError(f"{name}: {e!r} is also listed in {owner[e][1]} "
                                    f"({owner[e][0]}), expected disjoint lists")
                owner.setdefault(e, (split, name))
    chosen: dict[str, list[Line]] = {s: [] for s in SPLITS}
    unlisted = 0
    for line in lines:
        hit = owner.get(line.id) or owner.get(form_of(line.id))
        if hit is None:
            unlisted += 1
        else:
            chosen[hit[0]].append(line)
    return chosen, unlisted


def _group_split(lines: list[Line], seed: int, where: Path
                 ) -> tuple[dict[str, list[Line]], dict[str, list[str]], str]:
    """The seeded split by group (module docstring): ``(lines by split, groups by split,
    "writer" or "form")``."""
    by = "writer" if all(line.writer for line in lines) else "form"
    group = {line.id: line.writer or form_of(line.id) for line in lines}
    names = sorted(set(group.values()))
    n = len(names)
    if n < 3:
        raise DataError(f"{where}: a split by {by} needs lines of at least 3 {by}s, found "
                        f"{n} (or give the standard lists trainset.txt, testset_v.txt, "
                        "testset_t.txt, testset_f.txt)")
    if by == "form":
        log.warning("%s: no standard split lists and not every line file carries a writerID: "
                    "the lines are split by form, so one writer's forms may be in train and "
                    "test (the split is not writer-disjoint)", where)
    k = min(max(1, round(TEST_FRACTION * n)), (n - 1) // 2)
    order = [names[i] for i in np.random.RandomState(seed).permutation(n)]
    groups = {"test": order[:k], "valid": order[k:2 * k], "train": order[2 * k:]}
    of = {g: s for s, gs in groups.items() for g in gs}
    chosen: dict[str, list[Line]] = {s: [] for s in SPLITS}
    for line in lines:
        chosen[of[group[line.id]]].append(line)
    return chosen, {s: sorted(gs) for s, gs in groups.items()}, by


def load_iamondb(root: PathLike, seed: int = 0, limit: int | None = None) -> SequenceDataset:
    """IAM-OnDB pen trajectories as steps (pen lift, dx, dy) (see the module docstring).

    ``root`` holds ``lineStrokes/`` and, optionally, the standard split lists; without them
    the lines are split by writer, or by form where the files carry no ``writerID``, with
    ``seed``. ``limit`` keeps the first ``limit`` lines of
    each split (quick runs and tests). Every problem is a :class:`DataError` naming the file.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    folder = strokes_folder(root)
    lines = [read_line(p) for p in _line_files(folder)]
    lists = split_lists(root)
    info: dict[str, Any] = {"path": str(root), "seed": seed, "limit": limit}
    if lists is not None:
        chosen, unlisted = _listed_split(lines, lists)
        info["unlisted"] = unlisted
        info["split_rule"] = ("the IAM-OnDB-t1 lists: train trainset.txt, valid testset_v.txt "
                              "and testset_t.txt, test testset_f.txt")
    else:
        chosen, groups, by = _group_split(lines, seed, folder)
        info["split_by"], info["groups"] = by, groups
        n = sum(len(g) for g in groups.values())
        detail = "writerID" if by == "writer" else "writerID where given, else form; " \
            "not writer-disjoint"
        info["split_rule"] = (f"by {by} ({detail}), RandomState({seed}) permutation of {n} "
                              f"{by}s: {len(groups['test'])} test, {len(groups['valid'])} "
                              "valid, the rest train")
    for s in SPLITS:
        chosen[s] = chosen[s][:limit]
        if not chosen[s]:
            raise DataError(f"{root}: no {s} lines ({info['split_rule']})")
    raw = {s: [strokes_to_steps(line.strokes) for line in chosen[s]] for s in SPLITS}
    norm = OffsetNormaliser.fit([x[1:, DX:DY + 1] for x in raw["train"]])
    splits = {s: Split.from_targets([norm.apply(x) for x in raw[s]]) for s in SPLITS}
    info.update({"normaliser": norm.to_dict(),
                 "lines": {s: [line.id for line in chosen[s]] for s in SPLITS}})
    return SequenceDataset(name="iamondb", protocol=PROTOCOL, time_step=GRID.time_step,
                           binary=False, info=info, grid=GRID, modality=Modality.HANDWRITING,
                           binary_columns=BINARY_COLUMNS, emission=EMISSION, **splits)
