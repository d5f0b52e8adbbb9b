"""``srnn report``: a run, or a folder of runs, as self-contained HTML pages.

A run's page (``RUN_DIR/report/index.html`` by default) gathers what the run holds and what
its model makes of the data:

- its test figures (``results.json``) and training curves (``metrics.jsonl``);
- the figures of :func:`srnn.gallery.plot_run` (what ``srnn plot`` draws): a music run's test
  piece with its reconstruction (:func:`srnn.sampling.reconstruct`) and its KL per step, a
  speech run's test waveform with its KL per frame and the reconstruction's mean and
  log-variance;
- the test piece and its reconstruction as audio, and ``num`` samples and ``num``
  continuations of the piece's opening (its first half, at most :data:`MAX_PRIMER` steps),
  each as a piano roll with its rendering in an ``<audio controls>`` element (MIDI written
  by :func:`srnn.music.midi.write_midi`, rendered by :func:`srnn.music.audio.render_wav`:
  FluidSynth where installed, else the built-in synthesiser); a speech run's test utterance,
  its reconstruction and its samples as WAV files, the samples with their waveforms;
- the settings that made the run (``config.json``, its command, a sweep's ``job.json``).

What needs the data set (the test piece, continuations, statistics) is left out with a note
when the data cannot be read; what needs the model, when there is no best checkpoint yet.

A folder of runs (the output of ``srnn reproduce`` or ``srnn compare``: ``plan.json`` and its
run directories, ``jobs/<id>/`` or ``<model>/``) gets an index page (``FOLDER/report/
index.html``) that lists its runs, links each run's page (written under ``runs/<the run's
path in the folder>/`` beside it), and shows the folder's tables (its Markdown and CSV files)
and plots.

Every asset lies beside its page and is linked by a relative path; a page names no external
URL and loads no script, so the report folder can be copied, served or opened as it is. All
text put in a page is escaped (:func:`html.escape`); every file is written atomically
(:func:`srnn.io.atomic_write`).
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import math
import os
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import numpy as np
import torch
from tqdm import tqdm

from srnn.data.card import DataCard
from srnn.data.sequences import Modality, SequenceDataset
from srnn.errors import ConfigError, DataError, SRNNError
from srnn.evaluate import BOUND_SUFFIXES
from srnn.io import atomic_write
from srnn.models import SequenceModel
from srnn.progress import progress_bar
from srnn.train.checkpoint import BEST
from srnn.train.run_dir import (
    CONFIG,
    DATA_CARD,
    JOB,
    PLAN,
    REPORT,
    RESULTS,
    RunDirectory,
    read_plan,
    runs_in,
)

log = logging.getLogger("srnn.report")

PAGE = "index.html"
RUNS = "runs"  # the run pages of a folder's report, under its index page
DEFAULT_LENGTH = 64  # steps per sample where there is no test piece to take the length of
STATS_SAMPLES = 20  # samples in the statistics of a music run (as srnn plot)
MAX_PRIMER = 32  # steps of the test piece a continuation starts from, at most

RENDERERS = {"fluidsynth": "FluidSynth with a General MIDI sound font",
             "python": "the built-in additive synthesiser (no FluidSynth, or it failed)"}


@dataclass(frozen=True)
class PageOptions:
    """What a run's page shows of its model: the test piece ``piece`` (an index into the test
    split), ``num`` samples and ``num`` continuations of ``length`` steps (default: the test
    piece's length, or :data:`DEFAULT_LENGTH` without the data), drawn from ``seed``; the data
    are read from ``data_dir`` (default: the run's)."""

    piece: int = 0
    num: int = 2
    length: int | None = None
    seed: int = 0
    data_dir: str | None = None

    def check(self) -> None:
        if self.piece < 0:
            raise ConfigError(f"--piece must be at least 0, not {self.piece}")
        if self.num < 1:
            raise ConfigError("--num must be at least 1")
        if self.length is not None and self.length < 1:
            raise ConfigError("--length must be at least 1")


def report(path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
           options: PageOptions | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Write the page of the run directory ``path``, or the index page of the folder of runs
    ``path`` with a page per run, into ``out`` (default ``path/report``); returns the page's
    path and the files written. ``progress``: whether to draw progress bars (the ``enabled``
    of :func:`srnn.progress.progress_bar`)."""
    opts = options or PageOptions()
    opts.check()
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such folder")
    target = Path(out) if out is not None else path / REPORT
    if RunDirectory(path).holds_config():
        return write_run_page(path, target, opts, progress)
    runs = runs_in(path, jobs=True)
    if not runs:
        raise ConfigError(f"{path}: neither a run directory (no {CONFIG}) nor a folder of runs "
                          "(the output of srnn reproduce or srnn compare)")
    return write_index_page(path, runs, target, opts, progress)


# -- HTML ----------------------------------------------------------------------------------
STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #fafafa; }
main { max-width: 1150px; margin: 0 auto; padding: 1em 2em 3em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px
solid #ccc; } h3 { margin-top: 1.2em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; background: white; }
th, td { border: 1px solid #d0d0d0; padding: 0.25em 0.6em; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f0f0f0; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
code { background: #f0f0f0; padding: 0 0.2em; }
figure { margin: 0.8em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; margin: 0.2em 0; }
audio { width: 100%; max-width: 560px; display: block; }
.note { color: #7a4b00; background: #fff6e0; padding: 0.4em 0.8em; border-left: 3px solid
#e0a000; } .meta { color: #555; } .scroll { overflow-x: auto; }
nav a { margin-right: 1em; }
"""


def esc(text: object) -> str:
    """``text`` made safe inside an HTML element or a quoted attribute value."""
    return html.escape(str(text), quote=True)


def href(relative: str | PurePosixPath) -> str:
    """A relative link to ``relative`` (a POSIX path below or beside the page), URL-quoted and
    escaped for an attribute."""
    return esc(quote(str(relative)))


def _format_number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.0f}" if value == int(value) and abs(value) >= 1e4 else f"{value:.6g}"


def cell(value: object) -> str:
    """The text of a table cell: numbers rounded, None as a dash, lists and objects as JSON."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 1e4 else str(value)
    if isinstance(value, float):
        return _format_number(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _is_number(text: object) -> bool:
    if isinstance(text, bool):
        return False
    if isinstance(text, int | float):
        return True
    try:
        float(str(text).replace(",", ""))
        return True
    except ValueError:
        return False


def table(header: Sequence[object], rows: Iterable[Sequence[object]],
          links: dict[int, Sequence[str | None]] | None = None) -> str:
    """An HTML table of ``rows`` (already the cells' text or values, see :func:`cell`);
    ``links[j][i]``: the relative link of column ``j`` in row ``i``."""
    rows = [list(r) for r in rows]
    links = links or {}
    numeric = [bool(rows) and all(_is_number(r[j]) or r[j] in ("", None) for r in rows)
               and any(_is_number(r[j]) for r in rows) for j in range(len(header))]
    head = "".join(f'<th{" class=num" if numeric[j] else ""}>{esc(h)}</th>'
                   for j, h in enumerate(header))
    body = []
    for i, r in enumerate(rows):
        cells = []
        for j, v in enumerate(r):
            text = esc(v if isinstance(v, str) else cell(v))
            target = links.get(j, [None] * len(rows))[i]
            if target:
                text = f'<a href="{href(target)}">{text}</a>'
            cells.append(f'<td{" class=num" if numeric[j] else ""}>{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>'
            + "".join(body) + "</tbody></table></div>")


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def details(summary: str, inner_html: str, open_: bool = False) -> str:
    return (f'<details{" open" if open_ else ""}><summary>{esc(summary)}</summary>'
            f"{inner_html}</details>")


def _inline(text: str) -> str:
    """Markdown inline markup of ``text`` (code spans, bold, emphasis), everything escaped;
    a link becomes its text (a page names no external URL)."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unclosed backtick stays text
        parts = [*parts[:-2], parts[-2] + "`" + parts[-1]]
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # inside a code span
            out.append(f"<code>{esc(part)}</code>")
            continue
        s = esc(re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", part))
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", s)
        out.append(s)
    return "".join(out)


def _split_row(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", body)]


def markdown(text: str) -> str:
    """HTML of the Markdown the project writes (``tables.md``, ``comparison.md``): headings,
    pipe tables, bulleted lists, paragraphs and inline code, bold and emphasis; all escaped."""
    lines = text.splitlines()
    out: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append("<p>" + _inline(" ".join(para)) + "</p>")
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        heading = re.match(r"(#{1,6})\s+(.*)", line)
        if not line.strip():
            flush()
        elif heading:
            flush()
            level = min(len(heading.group(1)) + 2, 6)  # below the page's section heading
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif line.lstrip().startswith("|"):
            flush()
            block = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                block.append(_split_row(lines[i]))
                i += 1
            out.append(_markdown_table(block))
            continue
        elif re.match(r"\s*[-*]\s+", line):
            flush()
            items = []
            while i < len(lines) and re.match(r"\s*[-*]\s+", lines[i]):
                items.append("<li>" + _inline(re.sub(r"^\s*[-*]\s+", "", lines[i])) + "</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        else:
            para.append(line.strip())
        i += 1
    flush()
    return "\n".join(out)


def _markdown_table(block: list[list[str]]) -> str:
    rule = len(block) > 1 and all(re.fullmatch(r":?-{2,}:?", c) for c in block[1] if c)
    header, body = (block[0], block[2:]) if rule else ([""] * len(block[0]), block)
    right = [c.endswith(":") for c in block[1]] if rule else [False] * len(header)
    right += [False] * (max(len(r) for r in block) - len(right))

    def row(cells: list[str], tag: str) -> str:
        return "<tr>" + "".join(f'<{tag}{" class=num" if right[j] else ""}>{_inline(c)}</{tag}>'
                                for j, c in enumerate(cells)) + "</tr>"

    return ('<div class="scroll"><table><thead>' + row(header, "th") + "</thead><tbody>"
            + "".join(row(r, "td") for r in body) + "</tbody></table></div>")


def csv_table(text: str) -> str:
    """An HTML table of CSV text (the first row is the header)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return "<p>(empty)</p>"
    width = len(rows[0])
    body = [(r + [""] * width)[:width] for r in rows[1:]]
    return table(rows[0], [[_csv_cell(c) for c in r] for r in body])


def _csv_cell(text: str) -> str:
    try:
        value = float(text)
    except ValueError:
        return text
    return text if re.fullmatch(r"-?\d+", text) else _format_number(value)


@dataclass
class Page:
    """One HTML page being built in the folder ``out``: its sections, and the files written
    beside it (``assets``, names relative to ``out``)."""

    out: Path
    title: str
    parts: list[str] = field(default_factory=list)
    assets: list[str] = field(default_factory=list)

    def add(self, html_text: str) -> None:
        self.parts.append(html_text)

    def heading(self, text: str, level: int = 2) -> None:
        self.add(f"<h{level}>{esc(text)}</h{level}>")

    def text(self, text: str, cls: str | None = None) -> None:
        attr = f' class="{cls}"' if cls else ""
        self.add(f"<p{attr}>{esc(text)}</p>")

    def note(self, text: str) -> None:
        self.text(text, "note")

    def asset(self, name: str) -> str:
        """Record ``name`` (written under ``out``) as a file of the page; returns it."""
        if name not in self.assets:
            self.assets.append(name)
        return name

    def figure(self, name: str, caption: str, alt: str | None = None) -> None:
        self.asset(name)
        self.add(f'<figure><img src="{href(name)}" alt="{esc(alt or caption)}">'
                 f"<figcaption>{esc(caption)}</figcaption></figure>")

    def audio(self, name: str, caption: str, midi: str | None = None,
              image: str | None = None) -> None:
        """An ``<audio controls>`` element for the sound ``name``, below its ``image`` (a
        piano roll, a waveform) if given, with a link to its ``midi`` file."""
        self.asset(name)
        link = img = ""
        if midi:
            link = f' (<a href="{href(self.asset(midi))}">MIDI</a>)'
        if image:
            img = f'<img src="{href(self.asset(image))}" alt="{esc(caption)}">'
        self.add(f"<figure>{img}<figcaption>{esc(caption)}{link}</figcaption>"
                 f'<audio controls preload="metadata" src="{href(name)}"></audio></figure>')

    def contents(self, at: int) -> None:
        """Insert at ``at`` a line of links to the sections (the ``<h2>`` headings) after it."""
        links = []
        for i in range(at, len(self.parts)):
            m = re.fullmatch(r"<h2>(.*)</h2>", self.parts[i])
            if m:
                self.parts[i] = f'<h2 id="s{i}">{m.group(1)}</h2>'
                links.append(f'<a href="#s{i}">{m.group(1)}</a>')
        if links:
            self.parts.insert(at, "<nav>" + "".join(links) + "</nav>")

    def html(self) -> str:
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<link rel="icon" href="data:,">\n'
            f"<title>{esc(self.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(self.parts)
            + "\n</main>\n</body>\n</html>\n")

    def write(self) -> Path:
        path = self.out / PAGE
        data = self.html().encode("utf-8")
        atomic_write(path, lambda f: f.write(data))
        return path


def copy_file(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically."""
    data = src.read_bytes()
    atomic_write(dst, lambda f: f.write(data))


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _bar(total: int, desc: str, progress: bool | None, leave: bool = True) -> tqdm:
    """A run page's bar over the files it writes, under :mod:`srnn.progress`'s policy."""
    return progress_bar(desc=desc, enabled=progress, total=total, unit="file", leave=leave)


# -- a run's page --------------------------------------------------------------------------
def write_run_page(run_dir: str | os.PathLike[str], out: str | os.PathLike[str],
                   options: PageOptions | None = None, progress: bool | None = None,
                   index: str | None = None) -> dict[str, Any]:
    """Write the page of the run ``run_dir`` and its assets into ``out`` (see the module
    docstring); ``index``: a relative link back to the index page it is listed on. Returns
    ``{"page", "written", "notes"}``."""
    opts = options or PageOptions()
    opts.check()
    run = RunDirectory(run_dir)
    cfg = run.config()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    page = Page(out, f"{run.path.name}: {cfg.model} on {cfg.dataset}")
    notes: list[str] = []
    if index:
        page.add(f'<nav><a href="{href(index)}">← all runs</a></nav>')
    page.heading(f"{cfg.model} on {cfg.dataset}", 1)
    results = _safe(run.results, {}, notes)
    card = _safe(run.card, None, notes)
    meta = [f"run {run.path.name}", f"status: {run.status}"]
    if card is not None:
        meta.append(f"data: {card.name} ({card.protocol}, one step = {card.time_step}"
                    f"{', flat view' if card.flat else ''})")
    if "parameters" in results:
        meta.append(f"{results['parameters']:,} parameters")
    page.text(" · ".join(meta), "meta")
    start = len(page.parts)
    _results_section(page, run, results)
    with _bar(0, run.path.name, progress, leave=index is None) as bar:
        _model_sections(page, run, card, opts, notes, bar)
    _settings_section(page, run)
    page.contents(start)
    for n in notes:
        log.info("%s: %s", run.path, n)
    path = page.write()
    return {"page": str(path), "written": [str(out / a) for a in page.assets] + [str(path)],
            "notes": notes}


def _safe(read: Callable[[], Any], default: Any, notes: list[str]) -> Any:
    """``read()``, or ``default`` with the error noted."""
    try:
        return read()
    except SRNNError as e:
        notes.append(str(e))
        return default


RESULT_KEYS = ("elbo_per_step", "recon_per_step", "kl_per_step", "elbo_mean_of_sequences",
               "elbo_per_sequence", "valid_elbo_per_step", "bound", "split", "steps",
               "sequences", "epochs", "best_epoch", "parameters", "train_seconds")


def _results_section(page: Page, run: RunDirectory, results: dict[str, Any]) -> None:
    page.heading("Results")
    if not results:
        page.note(f"No {RESULTS} yet: the run has not been tested (status: {run.status}).")
        return
    # srnn evaluate's IWAE and FIVO figures (srnn.evaluate.bound_figures)
    bounds = sorted(k for k in results if k not in RESULT_KEYS and k.endswith(BOUND_SUFFIXES))
    main = [(k, results[k]) for k in (*RESULT_KEYS, *bounds) if k in results]
    page.text(f"Test figures of the best checkpoint ({RESULTS}), in nats per time step "
              "unless named otherwise.")
    page.add(table(["figure", "value"], main))
    rest = {k: v for k, v in results.items() if k not in RESULT_KEYS and k not in bounds}
    scalars = [(k, v) for k, v in rest.items() if not isinstance(v, dict | list)]
    nested = {k: v for k, v in rest.items() if isinstance(v, dict | list)}
    if scalars or nested:
        page.add(details(f"everything else in {RESULTS}", table(["entry", "value"], scalars)
                         + (pre(_json(nested)) if nested else "")))


def _curves(page: Page, run: RunDirectory, written: set[str], notes: list[str]) -> None:
    """The training curves: ``curves.png`` (by :func:`srnn.gallery.plot_run`, or drawn here)."""
    from srnn.plots import plot_training_curves

    page.heading("Training curves")
    if "curves.png" not in written:
        try:
            plot_training_curves(run.path, page.out / "curves.png")
        except SRNNError as e:
            notes.append(str(e))
            page.note(f"No training curves: {e}")
            return
    rows = run.metrics()
    page.figure("curves.png", f"ELBO per step on the training and validation splits over "
                f"{len(rows)} epoch{'s' if len(rows) != 1 else ''} (metrics.jsonl); the best "
                "validation epoch starred, the test ELBO of the best checkpoint dashed.")


def _model_sections(page: Page, run: RunDirectory, card: DataCard | None, opts: PageOptions,
                    notes: list[str], bar: tqdm) -> None:
    """Curves, then the test piece, samples and continuations of the model, by modality."""
    from srnn.gallery import plot_run

    music = (card is not None and card.modality == Modality.MUSIC and card.grid.is_musical)
    speech = card is not None and card.modality == Modality.SPEECH and card.speech is not None
    has_model = run.has_checkpoint(BEST)
    written: set[str] = set()
    figures: dict[str, Any] | None = None
    why_no_data = None
    if has_model:
        try:  # the figures srnn plot draws, into the page's folder; for music its sample
            # (beside the piece) and statistics of the piece's length, the page's own below
            figures = plot_run(run.path, page.out, piece=opts.piece,
                               num=STATS_SAMPLES if music else opts.num,
                               length=None if music else opts.length, seed=opts.seed,
                               data_dir=opts.data_dir)
            written = {Path(p).name for p in figures["written"]}
        except DataError as e:  # no data here: what needs only the run
            why_no_data = str(e)
            notes.append(why_no_data)
        except ConfigError as e:  # srnn plot knows no figures of such a run either
            if music or speech:
                raise
            notes.append(str(e))
    _curves(page, run, written, notes)
    if not has_model:
        page.heading("Samples")
        page.note(f"No best checkpoint ({BEST}) yet: nothing to sample (status: "
                  f"{run.status}).")
        return
    if not (music or speech):
        _plotted_sections(page, card, figures, why_no_data or (notes[-1] if notes else None))
        return
    assert card is not None
    model, data = _load(run, opts, figures is not None)
    with_piece = data is not None  # the test piece, its reconstruction and continuations
    bar.reset(total=(2 if with_piece else 0) + opts.num * (2 if music and with_piece else 1))
    if music:
        _music_sections(page, card, model, data, figures, opts, why_no_data, bar)
    else:
        _speech_sections(page, card, model, data, figures, opts, why_no_data, bar)


def _plotted_sections(page: Page, card: DataCard | None, figures: dict[str, Any] | None,
                      why: str | None) -> None:
    """A run of another modality: what :func:`srnn.gallery.plot_run` wrote of it, as it is
    (images shown, sounds played, other files linked)."""
    page.heading("Figures and samples")
    what = card.modality.value if card is not None else "unknown"
    if figures is None:
        page.note(f"No figures or samples of this run (modality {what}): {why}")
        return
    page.text(f"What srnn plot draws of a run of modality {what}.")
    for path in map(Path, figures["written"]):
        if path.name == "curves.png":
            continue
        if path.suffix in (".png", ".svg"):
            page.figure(path.name, path.name)
        elif path.suffix == ".wav":
            page.audio(path.name, path.name)
        else:
            page.add(f'<p><a href="{href(page.asset(path.name))}">{esc(path.name)}</a></p>')


def _load(run: RunDirectory, opts: PageOptions, with_data: bool
          ) -> tuple[SequenceModel, SequenceDataset | None]:
    from srnn.train.trainer import load_model, load_trained

    if with_data:
        model, _, data = load_trained(run.path, data_dir=opts.data_dir)
    else:
        (model, _), data = load_model(run.path), None
    model.eval()
    return model, data


def _test_pieces(data: SequenceDataset, steps_per_step: int) -> list[np.ndarray]:
    """The test split's pieces in original steps (as :func:`srnn.gallery.plot_run` takes
    them: streams joined, the flat view folded)."""
    from srnn.data.flat import fold_steps

    return [fold_steps(x, steps_per_step) for x in data.test.joined_streams().x]


def _music_sections(page: Page, card: DataCard, model: SequenceModel,
                    data: SequenceDataset | None, figures: dict[str, Any] | None,
                    opts: PageOptions, why_no_data: str | None, bar: tqdm) -> None:
    from srnn.music.audio import render_wav
    from srnn.music.midi import write_midi
    from srnn.plots import plot_piano_rolls
    from srnn.sampling import continuation, generate_steps, reconstruct

    out, step, k = page.out, card.grid.write_seconds, card.steps_per_step
    renderers: set[str] = set()

    def render(roll: np.ndarray, name: str, caption: str, image: str | None = None) -> None:
        write_midi(roll, out / f"{name}.mid", step)
        renderers.add(render_wav(out / f"{name}.mid", out / f"{name}.wav"))
        page.audio(f"{name}.wav", caption, midi=f"{name}.mid", image=image)
        bar.update()

    roll = None
    page.heading("Test piece and its reconstruction")
    if data is None or figures is None:
        page.note(f"The test piece, its reconstruction and the continuations need the data "
                  f"set, which could not be read: {why_no_data}")
    else:
        pieces = _test_pieces(data, k)
        roll = pieces[opts.piece]
        page.text(f"Test piece {opts.piece} of {len(pieces)}: {len(roll)} steps of "
                  f"{card.time_step} ({len(roll) * step:.1f} s); its ELBO "
                  f"{figures['piece_elbo_per_step']:.3f} nats per step.")
        page.figure("rolls.png", "The test piece, its reconstruction through the posterior (the "
                    "note probabilities E_q p(x_t | z_t, ...), 16 draws of z) and a sample.")
        render(roll, "piece", f"test piece {opts.piece}")
        rec = reconstruct(model, roll, generator=torch.Generator().manual_seed(opts.seed),
                          steps_per_step=k)
        render((rec.probabilities > 0.5).astype(np.float32), "reconstruction",
               "its reconstruction (the notes of probability > 0.5)")
        page.figure("kl.png", "KL(q || p) per step over the test piece (Figure 3 of Fraccaro "
                    "et al., 2016): large where the music surprises the model.")
    length = opts.length or (len(roll) if roll is not None else DEFAULT_LENGTH)
    page.heading("Samples")
    page.text(f"{opts.num} ancestral sample{'s' if opts.num > 1 else ''} of {length} steps "
              f"(seed {opts.seed}).")
    torch.manual_seed(opts.seed)
    for i, sample in enumerate(generate_steps(model, opts.num, length, k)):
        plot_piano_rolls({f"sample {i}": sample}, out / f"sample-{i}.png", step_seconds=step)
        render(sample, f"sample-{i}", f"sample {i}", image=f"sample-{i}.png")
    if roll is not None:
        primer = roll[:max(1, min(len(roll) // 2, MAX_PRIMER))]
        page.heading("Continuations")
        page.text(f"The first {len(primer)} steps of test piece {opts.piece} read by the "
                  f"posterior, then continued by the model for {length} steps.")
        conts = continuation(model, primer, opts.num, length,
                             torch.Generator().manual_seed(opts.seed), k)
        for i, cont in enumerate(conts):
            plot_piano_rolls({f"continuation {i} (the first {len(primer)} steps are the "
                              "primer)": cont}, out / f"continuation-{i}.png", step_seconds=step)
            render(cont, f"continuation-{i}", f"continuation {i}",
                   image=f"continuation-{i}.png")
        _statistics_section(page)
    page.text("Audio rendered with " + " and ".join(RENDERERS[r] for r in sorted(renderers))
              + ".", "meta")


def _statistics_section(page: Page) -> None:
    """Sample statistics against the test set, from ``sample_stats.json``."""
    stats = _read_json(page.out / "sample_stats.json")
    if not isinstance(stats, dict):
        return
    page.heading("Sample statistics")
    s, r = stats.get("samples", {}), stats.get("reference", {})
    keys = [k for k, v in s.items() if not isinstance(v, list | dict)]
    page.add(f"<p>{esc(stats.get('num_samples'))} samples of "
             f"{esc(stats.get('sample_length'))} steps against the test set "
             f'(<a href="{href(page.asset("sample_stats.json"))}">sample_stats.json</a>, as '
             "srnn plot writes it).</p>")
    page.add(table(["statistic", "samples", "test set"], [(k, s[k], r.get(k)) for k in keys]))
    dist = stats.get("distances", {})
    if dist:
        page.add(table(["distance", "value"], list(dist.items())))


def _speech_sections(page: Page, card: DataCard, model: SequenceModel,
                     data: SequenceDataset | None, figures: dict[str, Any] | None,
                     opts: PageOptions, why_no_data: str | None, bar: tqdm) -> None:
    from srnn.data.wav import read_wav, write_wav
    from srnn.plots import plot_waveform
    from srnn.sampling import reconstruct, write_speech

    out, info, k = page.out, card.speech, card.steps_per_step
    assert info is not None  # a speech run's card: its rate and normaliser
    page.heading("Test utterance and its reconstruction")
    if data is None or figures is None:
        page.note(f"The test utterance and its reconstruction need the data set, which could "
                  f"not be read: {why_no_data}")
        samples = write_speech(model, card, out / "sample.wav", opts.length or DEFAULT_LENGTH,
                               opts.num, opts.seed)
    else:
        frames = _test_pieces(data, k)[opts.piece]
        page.text(f"Test utterance {opts.piece}: {len(frames)} frames of {card.time_step} "
                  f"({len(frames) * info.frame_size / info.rate:.2f} s); its ELBO "
                  f"{figures['piece_elbo_per_step']:.3f} nats per frame.")
        page.figure("speech.png", "The test waveform, the KL per frame, and the "
                    "reconstruction's mean and log-variance per sample (Figure 3 of Fraccaro "
                    "et al., 2016, for speech).")
        write_wav(info.decode(frames), out / "piece.wav", info.rate)
        page.audio("piece.wav", f"test utterance {opts.piece}")
        bar.update()
        rec = reconstruct(model, frames, generator=torch.Generator().manual_seed(opts.seed),
                          steps_per_step=k)
        write_wav(info.decode(rec.probabilities.astype(np.float32)), out / "reconstruction.wav",
                  info.rate)
        page.audio("reconstruction.wav", "its reconstruction (the emission's mean)")
        bar.update()
        samples = [Path(p) for p in figures["written"] if p.endswith(".wav")]
    page.heading("Samples")
    page.text(f"{len(samples)} ancestral sample{'s' if len(samples) != 1 else ''} at "
              f"{info.rate} Hz (seed {opts.seed}).")
    for i, wav in enumerate(samples):
        png = f"{wav.stem}.png"
        plot_waveform(read_wav(wav, info.rate), out / png, info.rate, title=f"sample {i}")
        page.audio(wav.name, f"sample {i}", image=png)
        bar.update()


def _settings_section(page: Page, run: RunDirectory) -> None:
    page.heading("Settings")
    config = run.file(CONFIG)
    page.text(f"The run's settings ({CONFIG}, below); a new run with the same settings:")
    page.add(pre(f"srnn train --config {shlex.quote(str(config))} --out NEW_RUN_DIR"))
    job = run.job()
    if job:
        page.add(details(f"the job of the sweep ({JOB})", pre(_json(job)), open_=True))
    page.add(details(CONFIG, pre(run.config_text()), open_=True))
    card = _safe(run.data_card, {}, [])
    if card:
        page.add(details(f"the data card ({DATA_CARD})", pre(_json(card))))


# -- a folder's index page -----------------------------------------------------------------
def _title(folder: Path, plan: Any) -> str:
    if isinstance(plan, dict) and plan.get("experiment"):
        return f"srnn reproduce {plan['experiment']}: {folder.name}"
    if isinstance(plan, dict) and plan.get("dataset"):
        return f"srnn compare on {plan['dataset']}: {folder.name}"
    return f"runs in {folder.name}"


def _command(folder: Path, plan: Any) -> str | None:
    """The command that made the folder, where one of its files records it."""
    for source in (plan, *(_read_json(p) for p in sorted(folder.glob("*.json")))):
        if isinstance(source, dict) and isinstance(source.get("command"), str):
            return source["command"]
    return None


def write_index_page(folder: str | os.PathLike[str], runs: list[Path],
                     out: str | os.PathLike[str], options: PageOptions | None = None,
                     progress: bool | None = None) -> dict[str, Any]:
    """Write the index page of the folder of runs ``folder`` into ``out``, and the page of each
    of ``runs`` under ``out/runs/``; see the module docstring."""
    opts = options or PageOptions()
    folder, out = Path(folder), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = read_plan(folder)
    page = Page(out, _title(folder, plan))
    page.heading(page.title, 1)
    start = len(page.parts)
    command = _command(folder, plan)
    if command:
        page.add(f"<p class=meta>Command: <code>{esc(command)}</code></p>")
    rows, links, written, failed = [], [], [], []
    for run_dir in progress_bar(runs, desc="runs", enabled=progress, unit="run"):
        rel = PurePosixPath(run_dir.relative_to(folder).as_posix())
        target = out / RUNS / rel
        back = PurePosixPath(*[".."] * (len(rel.parts) + 1), PAGE)
        run = RunDirectory(run_dir)
        link = None
        if run.holds_config():
            try:
                res = write_run_page(run_dir, target, opts, progress=progress, index=str(back))
                written += res["written"]
                link = str(PurePosixPath(RUNS) / rel / PAGE)
            except SRNNError as e:
                failed.append((str(rel), str(e)))
        rows.append(_run_row(str(rel), run))
        links.append(link)
    page.heading("Runs")
    page.add(table(["run", "model", "data set", "status", "bound", "test per step", "valid per "
                    "step", "epochs (best)", "parameters"], rows, links={0: links}))
    for rel_name, error in failed:
        page.note(f"{rel_name}: no page ({error})")
    for md in sorted(folder.glob("*.md")):
        page.heading(f"Tables ({md.name})")
        page.add(markdown(md.read_text(encoding="utf-8")))
    for i, png in enumerate(sorted(folder.glob("*.png"))):
        if i == 0:
            page.heading("Plots")
        copy_file(png, out / png.name)
        page.figure(png.name, png.name)
    for table_file in sorted(folder.glob("*.csv")):
        page.heading(f"Every row ({table_file.name})")
        page.add(csv_table(table_file.read_text(encoding="utf-8")))
    if plan is not None:
        page.heading("Plan")
        page.add(details(PLAN, pre(_json(plan))))
    page.contents(start)
    path = page.write()
    return {"page": str(path), "runs": len(runs), "pages": sum(x is not None for x in links),
            "written": [str(out / a) for a in page.assets] + written + [str(path)],
            "failed": [f"{r}: {e}" for r, e in failed]}


def _run_row(name: str, run: RunDirectory) -> list[object]:
    try:
        cfg = run.config()
        model, dataset = cfg.model, cfg.dataset
    except SRNNError:
        job = run.job()
        model, dataset = job.get("model", "?"), job.get("dataset", "?")
    res = _safe(run.results, {}, [])
    epochs = f"{res['epochs']} ({res.get('best_epoch', '?')})" if "epochs" in res else ""
    return [name, model, dataset, run.status, res.get("bound", ""), res.get("elbo_per_step", ""),
            res.get("valid_elbo_per_step", ""), epochs, res.get("parameters", "")]
