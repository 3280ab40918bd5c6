"""Every exception and warning ecopatch raises, under one root.

Each class also inherits the builtin it refines, so ``except ValueError`` or
``except OSError`` in calling code keeps working.  Messages say what failed,
on which object (file, field, patch ID, band), the likely cause and the fix.

Hierarchy::

    EcopatchError(Exception)
    ├── InputDataError(ValueError)          bad values in a user's file or array
    │   ├── MissingBandError                a scene lacks a band an index needs
    │   ├── NoValidPixelsError              all nodata / all cloud
    │   ├── DateOrderError                  the after scene is older than the before scene
    │   ├── GeometryError                   empty layer, wrong geometry type
    │   ├── DuplicateIDError                repeated or missing patch IDs
    │   ├── SpreadsheetError                a workbook/CSV that is damaged, crafted or too large
    │   └── TooManyCasesError               a detection run would open implausibly many cases
    ├── CRSError(ValueError)
    │   ├── MissingCRSError
    │   ├── CRSMismatchError
    │   └── SuspiciousCoordinatesError      coordinates do not fit the stated CRS
    ├── AlignmentError(ValueError)          grids that cannot be brought together
    │   └── NoOverlapError                  disjoint extents
    ├── RasterReadError(OSError)            not a raster, truncated, unreadable
    ├── VectorReadError(OSError)            polygon file cannot be opened
    ├── ConfigError(ValueError)             bad run configuration or parameter
    ├── OutputError(OSError)                cannot write a result
    │   └── OutputExistsError(FileExistsError)
    ├── MissingDependencyError(ImportError) optional extra not installed
    ├── FieldCheckError(ValueError)         a field-results file of the wrong shape
    └── LedgerError
        ├── LedgerTransitionError(ValueError)
        ├── LedgerIntegrityError
        └── LedgerLockedError               another process holds the ledger / run
            └── RunLockedError              another scheduled run holds the run lock

    EcopatchWarning(UserWarning)
    ├── GeometryRepairedWarning
    ├── TextRepairedWarning                 control characters removed from attributes
    ├── LowCoverageWarning
    ├── FontWarning
    └── ProductWarning                      how a product was read: an assumption, a gap
        ├── AssumptionWarning               identified on thin evidence; what was assumed
        ├── MissingMaskWarning              no cloud mask: clouds count as observed ground
        ├── DegradedAnalysisWarning         band roles missing: some analyses degraded
        └── SameSceneWarning                the same scene given as both dates
"""

from __future__ import annotations

import errno as _errno

__all__ = [
    "AlignmentError",
    "CRSError",
    "CRSMismatchError",
    "DateOrderError",
    "DegradedAnalysisWarning",
    "AssumptionWarning",
    "ConfigError",
    "DuplicateIDError",
    "EcopatchError",
    "EcopatchWarning",
    "FieldCheckError",
    "FontWarning",
    "GeometryError",
    "GeometryRepairedWarning",
    "InputDataError",
    "LedgerError",
    "LedgerIntegrityError",
    "LedgerLockedError",
    "LedgerTransitionError",
    "LowCoverageWarning",
    "MissingBandError",
    "MissingCRSError",
    "MissingDependencyError",
    "MissingMaskWarning",
    "NoOverlapError",
    "NoValidPixelsError",
    "OutputError",
    "OutputExistsError",
    "ProductWarning",
    "RasterReadError",
    "RunLockedError",
    "SameSceneWarning",
    "SlowInputWarning",
    "SpreadsheetError",
    "SuspiciousCoordinatesError",
    "TextRepairedWarning",
    "TooManyCasesError",
    "VectorReadError",
    "describe_os_error",
]


class EcopatchError(Exception):
    """Root of every error ecopatch raises on purpose."""


class InputDataError(EcopatchError, ValueError):
    """Values in a user's file or array that ecopatch cannot use."""


class MissingBandError(InputDataError):
    """A scene lacks a band that an index or classification needs."""


class NoValidPixelsError(InputDataError):
    """No usable pixel: everything is nodata or masked as cloud."""


class DateOrderError(InputDataError):
    """The "after" scene was taken before the "before" scene."""


class GeometryError(InputDataError):
    """A polygon layer is empty, or holds geometries of the wrong type."""


class DuplicateIDError(InputDataError):
    """Patch IDs repeat or are missing."""


class SpreadsheetError(InputDataError):
    """A workbook or CSV that is damaged, crafted, or beyond the size limits (named in the message)."""


class TooManyCasesError(InputDataError):
    """One detection run would open more new ledger cases than allowed (``max_new_cases``).

    Usually a sign that the two dates are not comparable (season, haze,
    cloud), not of that much real change; nothing is written.
    """


class CRSError(EcopatchError, ValueError):
    """A coordinate reference system problem."""


class MissingCRSError(CRSError):
    """A file or array carries no CRS."""


class CRSMismatchError(CRSError):
    """Two inputs that must share a CRS do not."""


class SuspiciousCoordinatesError(CRSError):
    """Coordinates plainly do not fit the CRS they claim (swapped axes, wrong units)."""


class AlignmentError(EcopatchError, ValueError):
    """Two grids that cannot be brought onto one another."""


class NoOverlapError(AlignmentError):
    """Extents that do not overlap at all."""


class RasterReadError(EcopatchError, OSError):
    """A raster file that cannot be opened or read (not a raster, truncated)."""


class VectorReadError(EcopatchError, OSError):
    """A polygon file that cannot be opened or read."""


class ConfigError(EcopatchError, ValueError):
    """A run configuration or parameter value that is not allowed."""


class OutputError(EcopatchError, OSError):
    """A result cannot be written (read-only folder, disk full, ...)."""


class OutputExistsError(OutputError, FileExistsError):
    """An output exists and overwriting was not asked for."""


class MissingDependencyError(EcopatchError, ImportError):
    """An optional dependency (an extra) is not installed."""


class FieldCheckError(EcopatchError, ValueError):
    """A field-results file that cannot be read as a whole (wrong shape, wrong sheet)."""


class LedgerError(EcopatchError):
    """A problem with the case ledger."""


class LedgerTransitionError(LedgerError, ValueError):
    """A case cannot move to the requested state from its current one."""


class LedgerIntegrityError(LedgerError):
    """The ledger file fails an integrity check."""


class LedgerLockedError(LedgerError):
    """Another process holds the ledger (or the run lock)."""


class RunLockedError(LedgerLockedError):
    """Another scheduled run (``ecopatch run``) holds the run lock of this ledger."""


class EcopatchWarning(UserWarning):
    """Root of every warning ecopatch issues."""


class GeometryRepairedWarning(EcopatchWarning):
    """Invalid geometries were repaired on reading."""


class TextRepairedWarning(EcopatchWarning):
    """Control or direction-override characters were removed from attributes on reading."""


class LowCoverageWarning(EcopatchWarning):
    """A patch or zone was observed on too small a share of its area."""


class FontWarning(EcopatchWarning):
    """No font able to draw the requested (Chinese) labels was found."""


class ProductWarning(EcopatchWarning):
    """Something about how an imagery product was read that the user should know."""


class AssumptionWarning(ProductWarning):
    """A product identified on thin evidence: the message says what was assumed and how to say otherwise."""


class MissingMaskWarning(ProductWarning):
    """A product without a cloud mask: clouds and their shadows count as observed ground."""


class DegradedAnalysisWarning(ProductWarning):
    """A scene lacks band roles that some analyses need; those analyses fall back or are degraded."""


class SameSceneWarning(ProductWarning):
    """The same scene was given as the before and the after date: no change can be found."""


class SlowInputWarning(EcopatchWarning):
    """An input will be read much more slowly than it could be: the message says why and what to do."""


_ERRNO_HINTS: dict[int, str] = {
    _errno.ENOSPC: "the disk is full; free some space",
    _errno.EDQUOT: "the disk quota is used up",
    _errno.EFBIG: "the file would be larger than the file-size limit (`ulimit -f`) or than the file system allows",
    _errno.EROFS: "the folder is on a read-only file system; choose a writable folder",
    _errno.EACCES: "no permission to write there; choose a writable folder",
    _errno.EPERM: "no permission to write there; choose a writable folder",
    _errno.ENAMETOOLONG: "the file name is too long for the file system",
    _errno.ENOENT: "the folder does not exist (removed while writing?)",
    _errno.EIO: "an input/output error: a failing disk, or a network share that went away",
}


def describe_os_error(exc: BaseException) -> str:
    """The cause of an OS error in words, with what to do: ``"No space left on device: the disk is full; ..."``.

    Examples
    --------
    >>> import errno, os
    >>> describe_os_error(OSError(errno.EFBIG, os.strerror(errno.EFBIG)))
    'File too large: the file would be larger than the file-size limit (`ulimit -f`) or than the file system allows'
    """
    err = getattr(exc, "errno", None)
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    hint = _ERRNO_HINTS.get(err) if isinstance(err, int) else None
    return f"{text}: {hint}" if hint else text


def caller_stacklevel() -> int:
    """The ``stacklevel`` of :func:`warnings.warn` that names the first caller outside ecopatch.

    Called in the function that warns (``warnings.warn(..., stacklevel=caller_stacklevel())``):
    a warning then points at the user's line however many of ecopatch's own
    frames lie between (an analysis called directly, through
    :func:`ecopatch.analyses.joint.assess_and_detect` or by a scheduled run).
    """
    import os
    import sys

    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame = sys._getframe(1)  # the function that warns
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level
