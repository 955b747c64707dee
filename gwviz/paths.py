"""Allowed roots: the only folders the app reads from or writes to, and how page text maps into them.

The roots come from the environment (set by whoever starts the server), never from the page:

======================  ==============================================  =========================
variable                what                                            default
======================  ==============================================  =========================
``GWVIZ_DATA_DIR``      real strain files (read)                        none: real data is off
``GWVIZ_GALLERY_DIR``   Grad-CAM galleries (read, and written by the    ``gallery/`` in the
                        app's *Generate* button)                        repository
``GWVIZ_CACHE``         GWOSC downloads (read and written)              ``~/.cache/gwviz/gwosc``
======================  ==============================================  =========================

Anything a visitor chooses on a page is a path *relative* to one of these roots and goes through
:func:`resolve_within`, which resolves ``..`` and symlinks and refuses what lands outside. Messages
that may reach the page name paths relative to a root (``$GWVIZ_GALLERY_DIR/small``), never the
server's absolute paths; :func:`redact` cleans messages that come from deeper layers.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

DATA_ENV = "GWVIZ_DATA_DIR"
GALLERY_ENV = "GWVIZ_GALLERY_DIR"
CACHE_ENV = "GWVIZ_CACHE"
REPO = Path(__file__).resolve().parents[1]
#: Example strain shipped inside the package (GWOSC, CC BY 4.0; see gwviz/data/o3/README.md):
#: GW190521 H1/L1/V1 and GW190425 L1, 32 s each at 4096 Hz. Read-only; used when no data folder is set.
BUNDLED_DATA = Path(__file__).resolve().parent / "data" / "o3"
_DEFAULTS = {GALLERY_ENV: REPO / "gallery", CACHE_ENV: Path.home() / ".cache" / "gwviz" / "gwosc"}
#: Walks are bounded so that a huge root cannot stall a page (the issue: "/" took 23 s).
MAX_DEPTH = 6
MAX_FILES = 500


def root(env: str) -> Path | None:
    """The root named by environment variable ``env``, symlinks resolved.

    Parameters
    ----------
    env : str
        One of :data:`DATA_ENV`, :data:`GALLERY_ENV`, :data:`CACHE_ENV`.

    Returns
    -------
    pathlib.Path or None
        The real path of ``$env`` (``~`` expanded: it is the server owner's text), else the
        default (none for the data directory). The folder need not exist.
    """
    raw = os.environ.get(env, "").strip()
    if raw:
        return Path(os.path.realpath(os.path.expanduser(raw)))
    default = _DEFAULTS.get(env)
    return Path(os.path.realpath(default)) if default is not None else None


def _inside(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)


def resolve_within(user_text: str | os.PathLike, base: str | os.PathLike, label: str = "the folder",
                   must_exist: bool = True) -> Path:
    """Map a path typed or chosen on a page into ``base``, refusing anything that escapes it.

    Parameters
    ----------
    user_text : str or os.PathLike
        A path relative to ``base`` ("" or "." is ``base`` itself). Absolute paths are refused
        even when they point inside ``base``: the page never needs to know where roots live.
    base : str or os.PathLike
        The allowed root (from :func:`root`, never from the page).
    label : str, optional
        How messages name the root, e.g. ``"$GWVIZ_GALLERY_DIR"``. Default ``"the folder"``.
    must_exist : bool, optional
        Also refuse a target that does not exist (set False for a folder about to be written).
        Default True.

    Returns
    -------
    pathlib.Path
        The real path (``..`` and symlinks resolved), inside the real path of ``base``.

    Raises
    ------
    ValueError
        The root does not exist, the text is absolute, contains a NUL byte, or resolves outside
        the root (``..``, or a symlink pointing out), or the target is missing. Messages name
        only the text as given (relative) and ``label``, never a resolved server path.
    """
    text = os.fspath(user_text).strip()
    base_real = os.path.realpath(base)
    if not os.path.isdir(base_real):
        raise ValueError(f"{label} does not exist on the server (ask whoever runs the app to create it or set "
                         "the variable)")
    if "\x00" in text:
        raise ValueError("a path cannot contain a NUL byte")
    if os.path.isabs(text):
        raise ValueError(f"absolute paths are not accepted: give a path relative to {label}")
    target = os.path.realpath(os.path.join(base_real, text or "."))
    if not _inside(target, base_real):
        why = "through a symbolic link" if ".." not in Path(text).parts else "with '..'"
        raise ValueError(f"{text!r} leaves {label} ({why}); only paths inside it are allowed")
    if must_exist and not os.path.exists(target):
        raise ValueError(f"{label}/{text} does not exist")
    return Path(target)


def _walk(base: Path, max_depth: int):
    """os.walk that never follows directory symlinks and stops at ``max_depth`` levels below ``base``."""
    for here, dirs, files in os.walk(base, followlinks=False):
        depth = len(Path(here).relative_to(base).parts)
        # os.walk lists symlinked folders without entering them; drop them so nobody lists them either
        dirs[:] = [] if depth >= max_depth else sorted(d for d in dirs if not os.path.islink(os.path.join(here, d)))
        yield Path(here), dirs, sorted(files)


def subfolders(base: str | os.PathLike, max_depth: int = 2, limit: int = 200) -> list[str]:
    """Folders below ``base`` (relative, '/'-separated, sorted), for a page's select box.

    Parameters
    ----------
    base : str or os.PathLike
        An allowed root; a missing one gives [].
    max_depth : int, optional
        How many levels to descend. Default 2.
    limit : int, optional
        At most this many are listed (the walk stops there). Default 200.

    Returns
    -------
    list of str
        Relative folder names; symlinked folders are not followed or listed.
    """
    base = Path(os.path.realpath(base))
    if not base.is_dir():
        return []
    out: list[str] = []
    for here, dirs, _ in _walk(base, max_depth):
        for d in dirs:
            if len(out) >= limit:
                return out
            out.append((here / d).relative_to(base).as_posix())
    return sorted(out)


def files_within(base: str | os.PathLike, suffixes: tuple[str, ...] | None = None, pattern: str | None = None,
                 max_depth: int = MAX_DEPTH, max_files: int = MAX_FILES) -> list[Path]:
    """Files under ``base`` (sorted real paths), none of them escaping it through a symlink.

    Parameters
    ----------
    base : str or os.PathLike
        An allowed root (must exist).
    suffixes : tuple of str, optional
        Keep only these suffixes (e.g. ``(".hdf5", ".gwf")``). Default None: all.
    pattern : str, optional
        Keep only relative paths matching this glob, matched from the right like
        :meth:`pathlib.PurePath.match` (``"*GW190521*/H1_data_32s.hdf5"``). Default None: all.
    max_depth, max_files : int, optional
        Bounds of the walk (default :data:`MAX_DEPTH` = 6 levels, :data:`MAX_FILES` = 500); more
        matching files than ``max_files`` is an error.

    Returns
    -------
    list of pathlib.Path
        Symlinks pointing out of ``base`` and dangling ones are skipped.

    Raises
    ------
    ValueError
        More than ``max_files`` matches (the message asks for a narrower folder).
    """
    base = Path(os.path.realpath(base))
    hits: list[Path] = []
    for here, _, files in _walk(base, max_depth):
        for name in files:
            p = here / name
            rel = p.relative_to(base)
            if (suffixes and p.suffix not in suffixes) or (pattern and not rel.match(pattern)):
                continue
            real = os.path.realpath(p)
            if not _inside(real, str(base)) or not os.path.isfile(real):
                continue  # a symlink out of the root (or a dangling one) is not ours to read
            hits.append(Path(real))
            if len(hits) > max_files:
                raise ValueError(f"more than {max_files} matching files under the folder; choose a narrower one")
    return sorted(hits)


def display(path: str | os.PathLike, base: str | os.PathLike, label: str) -> str:
    """``path`` as ``label/relative`` (e.g. ``$GWVIZ_GALLERY_DIR/small``) for the page.

    Parameters
    ----------
    path, base : str or os.PathLike
        A path inside ``base``.
    label : str
        How the root is named.

    Returns
    -------
    str
        ``label`` alone for ``base`` itself, ``"(outside label)"`` for a path outside it.
    """
    real, b = os.path.realpath(path), os.path.realpath(base)
    if not _inside(real, b):
        return f"(outside {label})"
    rel = os.path.relpath(real, b)
    return label if rel == "." else f"{label}/{Path(rel).as_posix()}"


# An absolute path in free text: starts with '/', not inside a word, a URL ('https://'), a glob
# ('*GW190521*/H1*') or a ratio ('1/√Hz').
_ABSOLUTE = re.compile(r"(?<![\w/.:~\\*?])/[^\s'\"`,;:()\[\]<>|]+")


def redact(text: str, known: dict[str, str] | None = None) -> str:
    """Remove server paths from a message before it is shown on a page.

    Parameters
    ----------
    text : str
        A message, e.g. ``str(err)`` of an exception from gwviz, gwpy or h5py.
    known : dict of str to str, optional
        Extra ``{path: label}`` replacements (e.g. the weights file -> ``$GWVIZ_WEIGHTS``).

    Returns
    -------
    str
        Paths inside the roots become ``$GWVIZ_...`` labels; any other absolute path is cut to
        ``…/name`` (its last component only); ``/path/to/...`` examples are kept.
    """
    pairs = dict(known or {})
    for env in (DATA_ENV, GALLERY_ENV, CACHE_ENV):
        r = root(env)
        if r is not None:
            pairs[str(r)] = f"${env}"
            raw = os.environ.get(env, "").strip().rstrip("/")
            if raw and os.path.isabs(raw):
                pairs[raw] = f"${env}"
    # longest first: a root inside another root gets its own label
    for path in sorted((p for p in pairs if p and p != "/"), key=len, reverse=True):
        text = re.sub(re.escape(path.rstrip("/")) + r"(?=/|\b|$)", lambda _m, lab=pairs[path]: lab, text)

    def cut(m: re.Match) -> str:
        s = m.group(0)
        return s if s.startswith("/path/to/") else "…/" + s.rstrip("/").rsplit("/", 1)[-1]

    return _ABSOLUTE.sub(cut, text)


# --- command lines: where they write, and how they fail ------------------------------------------

def writable_dir(path: str | os.PathLike, flag: str = "--out", results: tuple[str, ...] = (),
                 overwrite: bool = False) -> Path:
    """Create folder ``path`` if needed and prove it writable before any work is done.

    Parameters
    ----------
    path : str or os.PathLike
        The output folder (parents are created too).
    flag : str, optional
        The command-line option that named it, for the messages. Default ``"--out"``.
    results : tuple of str, optional
        The files the command will write there. If one exists already (an earlier run's results), the
        folder is refused unless ``overwrite``: an hour of evaluation is not replaced by a typo.
    overwrite : bool, optional
        Allow replacing ``results`` (the command's ``--overwrite``). Default False.

    Returns
    -------
    pathlib.Path
        ``path``, proven writable by a probe file written and removed.

    Raises
    ------
    ValueError
        Naming ``flag``, when ``path`` is a file or cannot be created or written, or holds ``results``
        and ``overwrite`` is False.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out}: it is a file, not a folder; choose a folder")
    there = [r for r in results if (out / r).exists()]
    if there and not overwrite:
        raise ValueError(f"{flag} {out} already holds {', '.join(there)} from an earlier run; choose another "
                         "folder, or add --overwrite to replace them")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".gwviz-write-test-{os.getpid()}"  # per process: parallel workers never collide
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"{flag} {out}: cannot write there ({err.strerror or err}); choose a writable folder") from None
    return out


def run_cli(main, prog: str) -> None:
    """Run a command line's ``main()``, turning its expected errors into a one-line exit.

    Bad arguments, files or paths (ValueError) and a diverged computation (FloatingPointError) end
    with ``prog: error: …`` and exit status 1, not a traceback.

    Parameters
    ----------
    main : callable
        Called with no arguments.
    prog : str
        Program name for the message, e.g. ``"python -m gwviz.scan"``.
    """
    import sys
    try:
        main()
    except (ValueError, FloatingPointError) as err:
        sys.exit(f"{prog}: error: {err}")


def snr_arg(text: str) -> float:
    """argparse type: a network optimal SNR, checked by :func:`gwviz.data.params.check_snr` (finite, in
    (0, MAX_SNR]); argparse reports a bad one with its reason (exit status 2)."""
    import argparse
    from .data.params import check_snr
    value = float(text)  # a ValueError here: argparse says "invalid network SNR value: 'x'"
    try:
        return check_snr(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("network SNR ")) from None


snr_arg.__name__ = "network SNR"


def int_at_least(lo: int):
    """argparse type: an integer >= ``lo``, with a message saying so (argparse reports it, exit status 2).

    Parameters
    ----------
    lo : int
        Smallest value accepted.

    Returns
    -------
    callable
        ``parse(text) -> int``, raising ``argparse.ArgumentTypeError`` for a non-integer or a value below ``lo``.
    """
    import argparse

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v
    parse.__name__ = f"integer >= {lo}"
    return parse


#: Help text of every command's ``--overwrite`` (see :func:`writable_dir`).
OVERWRITE_HELP = "replace the results of an earlier run in --out (refused by default)"


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through ``<path>.tmp`` and a rename: a reader never sees half a file,
    and a run killed while writing leaves the earlier file intact. Returns ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
