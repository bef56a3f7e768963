"""What an attachment may be: an accepted content type, declared and confirmed by the bytes
themselves (a file called proposal.pdf that is an executable is refused)."""
import filetype

from services.common.errors import FieldViolation, InvalidArgument, Validator

OOXML = "application/vnd.openxmlformats-officedocument"
ACCEPTED = ("application/pdf", "image/png", "image/jpeg", f"{OOXML}.wordprocessingml.document",
            f"{OOXML}.spreadsheetml.sheet", f"{OOXML}.presentationml.presentation", "text/plain", "text/csv")
TEXT = ("text/plain", "text/csv")
SNIFF_BYTES = 8192  # what filetype reads to recognise a format (OOXML parts are named early in the zip)


def validate_header(filename: str, content_type: str) -> tuple[str, str]:
    check = Validator()
    name = filename.strip()
    if check.required(name, "header.filename"):
        check.max_length(name, 255, "header.filename")
        check.check("/" not in name and "\\" not in name and name not in (".", ".."), "header.filename",
                    "is a file name, not a path")
    declared = content_type.strip().lower()
    check.check(declared in ACCEPTED, "header.content_type", f"must be one of {', '.join(ACCEPTED)}")
    check.raise_if_invalid()
    return name, declared


def check_content(declared: str, head: bytes) -> None:
    """The first bytes must be what the header says."""
    if declared in TEXT:
        try:
            head.decode("utf-8")
            readable = b"\x00" not in head
        except UnicodeDecodeError as error:
            readable = error.start >= len(head) - 3  # a character cut at the end of the sample is fine
        if not readable:
            raise InvalidArgument([FieldViolation("file", f"is not UTF-8 text, as {declared} must be")])
        return
    kind = filetype.guess(head)
    if kind is None or kind.mime != declared:
        found = kind.mime if kind else "not a recognised format"
        raise InvalidArgument([FieldViolation("file", f"is {found}, not the declared {declared}")])
