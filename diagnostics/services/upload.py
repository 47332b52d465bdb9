"""Case-batch upload: store the files a lab sends, check each one, queue the work.

An upload is one form post (or API call) with the case fields and any number
of image files or zip archives. What this module guarantees:

* **No model runs here.** Each file is checked with the ``ml/`` loader
  (:func:`ml.imageio.inspect_image`: it decodes the file fully, so a
  truncated or fake image is caught now rather than in a worker), hashed,
  stored and recorded. Analysis is queued with ``transaction.on_commit``.
* **Every bad file gets its own, specific reason** (:class:`Rejection`) and the
  good files go on. Rejections are kept on the :class:`~diagnostics.models.Batch`
  so the case page can show them after the request is long gone.
* **All or nothing.** The case, its batch, the image rows and the audit events
  are written in one transaction. Files are written to storage as they are
  accepted; if anything fails before the commit (a storage error, a database
  error), the files written so far are deleted and the exception goes on, so a
  failed upload leaves neither a half-made case nor orphan files. Call these
  functions outside any outer ``atomic`` block (views do): an outer rollback
  after a successful return cannot be seen from here.
* **Hostile input is bounded.** Per-file size, file count and pixel count
  limits; zip archives are checked from their headers (zip-slip paths, total
  uncompressed size, per-member compression ratio) *and* while reading, in
  chunks, because headers can lie.
"""

from __future__ import annotations

import contextlib
import logging
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Max

from diagnostics import audit
from diagnostics.models import AuditEvent, Batch, Case, CaseStatus, Lab, SlideImage
from diagnostics.services.cases import queue_case_processing

logger = logging.getLogger(__name__)

MB = 1024 * 1024
READ_CHUNK = 256 * 1024
# A zip with far more entries than an upload may hold is refused before its
# entries are even looked at, so a million-entry archive costs nothing.
ZIP_ENTRY_FACTOR = 4
MAX_FILENAME_LENGTH = 255  # SlideImage.original_filename


class RejectCode:
    """Stable codes of the upload checks (the ``ml.imageio`` codes come on top:
    empty, truncated, not_an_image, wrong_extension, too_small, too_large, unsupported)."""

    FILE_TOO_BIG = "file_too_big"
    TOO_MANY_FILES = "too_many_files"
    DUPLICATE = "duplicate"
    UNSAFE_PATH = "unsafe_path"
    ZIP_BOMB = "zip_bomb"
    ZIP_TOO_LARGE = "zip_too_large"
    BAD_ZIP = "bad_zip"
    BAD_ZIP_MEMBER = "bad_zip_member"
    ENCRYPTED = "encrypted"
    NESTED_ZIP = "nested_zip"
    DIRECTORY = "directory"
    SYSTEM_FILE = "system_file"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Rejection:
    """One file that was not accepted, and why (shown to lab staff as is)."""

    filename: str
    code: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class UploadLimits:
    max_file_bytes: int
    max_files: int
    max_pixels: int
    max_zip_bytes: int
    max_zip_ratio: int

    @classmethod
    def from_settings(cls) -> UploadLimits:
        return cls(
            max_file_bytes=settings.MAX_UPLOAD_FILE_MB * MB,
            max_files=settings.MAX_FILES_PER_BATCH,
            max_pixels=settings.MAX_IMAGE_PIXELS,
            max_zip_bytes=settings.MAX_ZIP_UNCOMPRESSED_MB * MB,
            max_zip_ratio=settings.MAX_ZIP_RATIO,
        )


@dataclass
class UploadResult:
    case: Case
    batch: Batch
    accepted: list[SlideImage] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    case_created: bool = False


class UploadError(Exception):
    """An upload that cannot go on at all; ``str(exc)`` is the message for the form."""


class DuplicateAccessionError(UploadError):
    pass


class NoUsableImagesError(UploadError):
    """A new case whose files were all refused: the case is not created."""

    def __init__(self, rejected: list[Rejection]):
        self.rejected = rejected
        super().__init__("None of the files could be used, so the case was not created.")


class CaseClosedError(UploadError):
    pass


class UploadedFileLike(Protocol):
    """What Django's UploadedFile (and ContentFile) offer."""

    name: str | None
    size: int

    def read(self, size: int = -1) -> bytes: ...

    def seek(self, offset: int, whence: int = 0) -> int: ...


@dataclass
class _Candidate:
    """A file that passed the container checks and now goes to the image checks."""

    display_name: str  # what lab staff see ("scan.zip › day1/img 3.png")
    basename: str  # the bare file name, for the extension check
    data: bytes


# --------------------------------------------------------------------------- file names


def clean_filename(name: str | None, *, max_length: int = MAX_FILENAME_LENGTH) -> str:
    """A file name safe to show and store: the last path part only, NFC
    unicode, no control characters, at most ``max_length`` characters with the
    extension kept. Storage never uses it (stored names are random), but it is
    shown in pages, audit events and reports."""
    text = unicodedata.normalize("NFC", name or "").replace("\\", "/")
    text = text.rsplit("/", 1)[-1]
    return _shorten(_printable(text).strip() or "unnamed", max_length)


def _printable(text: str) -> str:
    # Categories C* are control, format (bidi overrides!), surrogate, private, unassigned.
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))


def _shorten(text: str, max_length: int) -> str:
    if len(text) <= max_length:
        return text
    stem, dot, ext = text.rpartition(".")
    if dot and 0 < len(ext) <= 10:
        return stem[: max_length - len(ext) - 2] + "…." + ext
    return text[: max_length - 1] + "…"


def _display_member_name(archive_name: str, member: str) -> str:
    member = _printable(unicodedata.normalize("NFC", member).replace("\\", "/"))
    return _shorten(f"{archive_name} › {member}", MAX_FILENAME_LENGTH)


def is_unsafe_member_path(member: str) -> bool:
    """True for zip-slip names: absolute paths, drive letters, UNC paths, or any ``..`` part.

    Members are never extracted to disk by name here, but such a name is a sign
    of a crafted archive and is refused with a reason rather than quietly renamed.
    """
    path = member.replace("\\", "/")
    if path.startswith("/") or (len(path) >= 2 and path[1] == ":") or "\x00" in path:
        return True
    return any(part == ".." for part in path.split("/"))


def _extension(basename: str) -> str:
    _, dot, ext = basename.rpartition(".")
    return f".{ext.lower()}" if dot else ""


# --------------------------------------------------------------------------- expanding uploads


def expand_uploads(files: Iterable[UploadedFileLike], limits: UploadLimits) -> Iterator[_Candidate | Rejection]:
    """Yield each uploaded file, or each member of an uploaded zip, as a
    candidate image or as a rejection. Reads one file at a time, so memory
    stays bounded by the per-file limit."""
    for upload in files:
        name = clean_filename(upload.name)
        if name.lower().endswith(".zip"):
            yield from _expand_zip(upload, name, limits)
            continue
        if upload.size is not None and upload.size > limits.max_file_bytes:
            yield _too_big(name, upload.size, limits)
            continue
        try:
            upload.seek(0)
            data = upload.read(limits.max_file_bytes + 1)
        except OSError as exc:
            yield Rejection(name, RejectCode.UNREADABLE, f"The upload could not be read ({exc.__class__.__name__}).")
            continue
        if len(data) > limits.max_file_bytes:
            yield _too_big(name, len(data), limits)
            continue
        yield _Candidate(display_name=name, basename=name, data=data)


def _too_big(name: str, size: int, limits: UploadLimits) -> Rejection:
    return Rejection(
        name,
        RejectCode.FILE_TOO_BIG,
        f"The file is {size / MB:.1f} MB; the most per file is {limits.max_file_bytes // MB} MB.",
    )


def _expand_zip(upload: UploadedFileLike, zip_name: str, limits: UploadLimits) -> Iterator[_Candidate | Rejection]:
    if upload.size is not None and upload.size > limits.max_zip_bytes:
        yield Rejection(
            zip_name,
            RejectCode.ZIP_TOO_LARGE,
            f"The archive is {upload.size / MB:.1f} MB; the most is {limits.max_zip_bytes // MB} MB.",
        )
        return
    try:
        upload.seek(0)
        archive = zipfile.ZipFile(upload)  # type: ignore[arg-type]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        yield Rejection(zip_name, RejectCode.BAD_ZIP, "The file is named .zip but is not a readable zip archive.")
        return
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_files * ZIP_ENTRY_FACTOR:
            yield Rejection(
                zip_name,
                RejectCode.TOO_MANY_FILES,
                f"The archive holds {len(infos)} entries; an upload may hold at most {limits.max_files} images.",
            )
            return
        declared_total = sum(info.file_size for info in infos if not info.is_dir())
        if declared_total > limits.max_zip_bytes:
            yield Rejection(
                zip_name,
                RejectCode.ZIP_BOMB,
                f"The archive would unpack to {declared_total / MB:.1f} MB; the most is "
                f"{limits.max_zip_bytes // MB} MB (a possible zip bomb), so none of it was read.",
            )
            return
        budget = limits.max_zip_bytes  # bytes actually read, across all members
        for info in infos:
            outcome = _read_member(archive, info, zip_name, limits, budget)
            if isinstance(outcome, _Candidate):
                budget -= len(outcome.data)
            yield outcome


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, zip_name: str, limits: UploadLimits, budget: int
) -> _Candidate | Rejection:
    raw_name = info.filename
    display = _display_member_name(zip_name, raw_name)
    if is_unsafe_member_path(raw_name):
        return Rejection(
            display,
            RejectCode.UNSAFE_PATH,
            "The archive entry has an unsafe path (absolute, or with '..'): refused as a possible zip-slip attack.",
        )
    if info.is_dir():
        return Rejection(display, RejectCode.DIRECTORY, "Folder entry ignored (the images inside folders are read).")
    basename = clean_filename(raw_name)
    parts = raw_name.replace("\\", "/").split("/")
    if "__MACOSX" in parts or basename.startswith("._") or basename in (".DS_Store", "Thumbs.db", "desktop.ini"):
        return Rejection(display, RejectCode.SYSTEM_FILE, "Operating-system metadata file ignored.")
    if basename.lower().endswith(".zip"):
        return Rejection(display, RejectCode.NESTED_ZIP, "Zip archives inside a zip archive are not opened.")
    if info.flag_bits & 0x1:
        return Rejection(display, RejectCode.ENCRYPTED, "The archive entry is password-protected.")
    if info.file_size > limits.max_file_bytes:
        return _too_big(display, info.file_size, limits)
    if info.file_size > 0 and (
        info.compress_size == 0 or info.file_size / info.compress_size > limits.max_zip_ratio
    ):
        ratio = info.file_size / max(info.compress_size, 1)
        return Rejection(
            display,
            RejectCode.ZIP_BOMB,
            f"The entry is compressed {ratio:.0f}:1 (the most allowed is {limits.max_zip_ratio}:1): "
            "a possible zip bomb, so it was not unpacked.",
        )
    # The headers passed; now enforce the same limits on the bytes that really come out.
    cap = min(limits.max_file_bytes, budget, info.file_size)
    pieces: list[bytes] = []
    produced = 0
    try:
        with archive.open(info) as member:
            while True:
                piece = member.read(READ_CHUNK)
                if not piece:
                    break
                produced += len(piece)
                if produced > cap or produced > max(info.compress_size, 1) * limits.max_zip_ratio:
                    return Rejection(
                        display,
                        RejectCode.ZIP_BOMB,
                        "The entry unpacks to more than its header declares or than the limits allow: "
                        "a possible zip bomb, so unpacking was stopped.",
                    )
                pieces.append(piece)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError) as exc:
        return Rejection(
            display, RejectCode.BAD_ZIP_MEMBER, f"The entry could not be unpacked ({_short_error(exc)})."
        )
    return _Candidate(display_name=display, basename=basename, data=b"".join(pieces))


def _short_error(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text if len(text) <= 120 else text[:117] + "..."


# --------------------------------------------------------------------------- checks and storage


def _check_image(candidate: _Candidate, limits: UploadLimits) -> Rejection | Any:
    """The ``ml/`` loader's verdict: an ImageInfo, or a Rejection with its code and reason."""
    from ml.errors import ImageLoadError
    from ml.imageio import inspect_image

    try:
        return inspect_image(candidate.data, filename=candidate.basename, max_pixels=limits.max_pixels)
    except ImageLoadError as exc:
        return Rejection(candidate.display_name, exc.code, exc.reason)
    except MemoryError:
        return Rejection(candidate.display_name, "too_large", "The image is too large to decode.")
    except Exception as exc:  # hostile input can break a decoder in ways no one listed
        logger.warning("unexpected error inspecting %r", candidate.display_name, exc_info=True)
        return Rejection(
            candidate.display_name, "unsupported", f"The file could not be decoded ({exc.__class__.__name__})."
        )


def _ingest(
    case: Case,
    batch: Batch,
    files: Iterable[UploadedFileLike],
    limits: UploadLimits,
    written: list[str],
) -> tuple[list[SlideImage], list[Rejection]]:
    from ml.imageio import sha256_bytes

    accepted: list[SlideImage] = []
    rejected: list[Rejection] = []
    known_hashes = dict(case.images.values_list("sha256", "position"))
    position = (case.images.aggregate(last=Max("position"))["last"] or 0) + 1
    for outcome in expand_uploads(files, limits):
        if isinstance(outcome, Rejection):
            rejected.append(outcome)
            continue
        if len(accepted) >= limits.max_files:
            rejected.append(
                Rejection(
                    outcome.display_name,
                    RejectCode.TOO_MANY_FILES,
                    f"Not read: an upload may hold at most {limits.max_files} images.",
                )
            )
            continue
        digest = sha256_bytes(outcome.data)
        if digest in known_hashes:
            rejected.append(
                Rejection(
                    outcome.display_name,
                    RejectCode.DUPLICATE,
                    f"The same file is already image #{known_hashes[digest]} of this case.",
                )
            )
            continue
        verdict = _check_image(outcome, limits)
        if isinstance(verdict, Rejection):
            rejected.append(verdict)
            continue
        image = SlideImage(
            case=case,
            batch=batch,
            position=position,
            original_filename=outcome.display_name,
            sha256=digest,
            width=verdict.width,
            height=verdict.height,
        )
        # The stored name is random (models.slide_image_path); only the checked extension is kept.
        image.file.save(f"upload{_extension(outcome.basename)}", ContentFile(outcome.data), save=False)
        written.append(image.file.name)
        image.save()
        accepted.append(image)
        known_hashes[digest] = position
        position += 1
    return accepted, rejected


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # keep deleting the rest; the original error matters more
            logger.exception("could not delete %s after a failed upload", name)


@contextlib.contextmanager
def _files_deleted_on_failure() -> Iterator[list[str]]:
    """Yield the list the upload appends each stored file name to; on any error
    (the transaction inside then rolled back) delete those files and re-raise,
    so a failed upload leaves no orphan files. Enter it *outside* the atomic block."""
    written: list[str] = []
    try:
        yield written
    except BaseException:
        _delete_files(written)
        raise


def _queue_analysis(case: Case) -> None:
    """Mark the case queued (a case already processing stays so) and send its
    ``process_case`` message when the transaction commits."""
    if case.status != CaseStatus.PROCESSING:
        case.status = CaseStatus.QUEUED
        case.save(update_fields=["status", "updated_at"])
    queue_case_processing(case.pk)


def _record_batch(case: Case, batch: Batch, user, result: UploadResult) -> None:
    batch.accepted_count = len(result.accepted)
    batch.rejected = [rejection.as_dict() for rejection in result.rejected]
    batch.save(update_fields=["accepted_count", "rejected"])
    audit.record(
        AuditEvent.Verb.UPLOADED,
        actor=user,
        case=case,
        obj=batch,
        accepted=len(result.accepted),
        rejected=len(result.rejected),
    )
    for rejection in result.rejected:
        audit.record(AuditEvent.Verb.UPLOAD_REJECTED, actor=user, case=case, obj=batch, **rejection.as_dict())


# --------------------------------------------------------------------------- public API


def create_case(
    *,
    lab: Lab,
    user,
    fields: dict[str, Any],
    files: Iterable[UploadedFileLike],
    limits: UploadLimits | None = None,
) -> UploadResult:
    """Create a case with its first batch of images and queue the analysis.

    ``fields``: accession_number, patient_pseudonym, specimen, stain, clinical_note.
    Raises :class:`DuplicateAccessionError` (nothing written) when the lab already
    has the accession number, :class:`NoUsableImagesError` (nothing kept) when no
    file could be used.
    """
    limits = limits or UploadLimits.from_settings()
    accession = fields["accession_number"]
    if Case.objects.filter(lab=lab, accession_number=accession).exists():
        raise DuplicateAccessionError(f"Accession number {accession} already exists in {lab.name}.")
    with _files_deleted_on_failure() as written, transaction.atomic():
        try:
            with transaction.atomic():
                case = Case.objects.create(lab=lab, created_by=user, status=CaseStatus.UPLOADED, **fields)
        except IntegrityError:  # created by a concurrent request since the check above
            raise DuplicateAccessionError(
                f"Accession number {accession} already exists in {lab.name}."
            ) from None
        batch = Batch.objects.create(case=case, uploaded_by=user)
        accepted, rejected = _ingest(case, batch, files, limits, written)
        if not accepted:
            raise NoUsableImagesError(rejected)
        result = UploadResult(case=case, batch=batch, accepted=accepted, rejected=rejected, case_created=True)
        audit.record(AuditEvent.Verb.CASE_CREATED, actor=user, case=case, obj=case)
        _record_batch(case, batch, user, result)
        _queue_analysis(case)
    return result


def add_images(
    *, case: Case, user, files: Iterable[UploadedFileLike], limits: UploadLimits | None = None
) -> UploadResult:
    """Add a batch of images to an existing case and queue their analysis.

    The case row is locked for the transaction so that two uploads to the
    same case number their images without a clash. A batch whose files were
    all refused is still recorded (its reasons show on the case page).
    """
    limits = limits or UploadLimits.from_settings()
    with _files_deleted_on_failure() as written, transaction.atomic():
        case = Case.objects.select_for_update().select_related("lab").get(pk=case.pk)
        if case.status == CaseStatus.SIGNED_OUT:
            raise CaseClosedError("The case is signed out; images can no longer be added.")
        batch = Batch.objects.create(case=case, uploaded_by=user)
        accepted, rejected = _ingest(case, batch, files, limits, written)
        result = UploadResult(case=case, batch=batch, accepted=accepted, rejected=rejected)
        _record_batch(case, batch, user, result)
        if accepted:
            _queue_analysis(case)
    return result
