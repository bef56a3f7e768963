"""Business-card scanning: check the image, read it with Tesseract, and turn the text into a lead."""
import io
import os
import re
import struct
import unicodedata
import zlib
from dataclasses import dataclass, field
from statistics import mean, median

import phonenumbers
import pytesseract
from email_validator import EmailNotValidError, validate_email
from PIL import Image, ImageOps, ImageStat, UnidentifiedImageError

from services.capture.domain import MAX_CUSTOM_VALUE, LeadInput
from services.common.errors import FieldViolation, InvalidArgument

# A card photo travels in one gRPC request, which the services cap at 4 MiB (GRPC_MAX_RECEIVE_MESSAGE_BYTES);
# a 12-megapixel phone photo is 3-5 MB as JPEG, so apps downscale to a few megapixels, which OCR reads
# just as well (it works on at most 2000 px anyway).
MAX_CARD_BYTES = 4_000_000
# Checked from the header before decoding: a PNG of a few kilobytes can claim 100 000 x 100 000 pixels and
# take gigabytes once decoded (a "decompression bomb"). 40 MP is more than any phone camera's default.
MAX_CARD_PIXELS = 40_000_000
# Fields read with less confidence than this (0..1) send the lead to a person before anyone relies on it.
REVIEW_CONFIDENCE = 0.80
ALLOWED_FORMATS = ("JPEG", "PNG")
OCR_TIMEOUT_SECONDS = 30
MAX_EXTRA_CONTACTS = 5  # extra phones/emails kept in custom fields, each; a card never has more

# Tesseract reads best at about 300 dpi (a card 1050 px wide, small print 20-30 px high). Photos taken from
# far are enlarged to that; 12 MP photos are shrunk, which reads as well and several times faster.
# Enlarging a card already at 300 dpi does not help: chi_sim then misreads more, not less.
_MIN_SIDE, _MAX_SIDE = 1000, 2000
CARD_INCHES = 3.5  # the long side of ISO 7810 ID-1 (85.6 mm), US (3.5") and Chinese (90 mm) cards alike
_ALLOWED = "a JPEG or PNG photo or scan of the card"

# How much a field's OCR confidence is trusted, by how the field was recognised.
_STRONG, _WEAK, _GUESS = 1.0, 0.9, 0.7
_NOISE = 0.5  # OCR confidence under which a word at the edge of a line is taken for a smudge or a logo

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = _HAN + "\u3000-\u303f\uff00-\uffef"
_HAN_CHAR = re.compile(f"[{_HAN}]")
_CJK_CHAR = re.compile(f"[{_CJK}]")
_CJK_DIGIT_SPACE = re.compile(f"(?<=[{_HAN}]) +(?=[0-9])|(?<=[0-9]) +(?=[{_HAN}])")
_SPACES = re.compile(r"\s+")

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_URL = re.compile(r"(?i)\b(?:https?://\S+|www[.,:][a-z0-9\-]+(?:\.[a-z0-9\-]+)+(?:/\S*)?)")
_DOMAIN = re.compile(r"(?i)(?<![@\w.\-])[a-z0-9][a-z0-9\-]*(?:\.[a-z0-9\-]+)*\.[a-z]{2,6}\b(?![@\-])")
# OCR reads 0 as O and 1 as l/I/| inside numbers; only tokens that are already mostly digits are repaired.
_DIGITISH = re.compile(r"(?<![A-Za-z])[+(]?[0-9OoIl|]*[0-9][0-9OoIl|]*(?![A-Za-z])")
_DIGIT_FIX = str.maketrans({"O": "0", "o": "0", "I": "1", "l": "1", "|": "1"})

# Single-letter labels need their colon: "M. Chen" is a name, "M: +65 ..." a mobile number.
_FAX = re.compile(r"(?i)fax|传真|(?:^|[\s|/,;])f\s*:")
_MOBILE = re.compile(r"(?i)mobile|\bmob\b|\bcell|handy|手机|移动电话|(?:^|[\s|/,;])m\s*:")
_WEB_LABEL = re.compile(r"(?i)\bweb(?:site)?\b|\burl\b|网址|网站|官网|主页")
_LABEL = re.compile(
    r"(?i)^\s*(?:(?:e-?mail|mail|mobile|mob|cell|tel|phone|fax|web(?:site)?|url|address|addr)\b\s*[:.]?|"
    r"(?:邮箱|电邮|邮件|手机|电话|座机|传真|网址|网站|官网|地址)\s*[:.]?|[mtfe]\s*:)\s*")
_JUNK = re.compile(r"^[\W_]*$")
_GLUED_OF = re.compile(r"\b(VP|SVP|EVP|Head|Director)of\b")  # OCR often loses the space in "VP of"

_COMPANY_STRONG = re.compile(
    r"(?i)\b(?:co\.?,?\s*ltd|ltd|limited|inc|incorporated|gmbh|ag|llc|llp|corp|corporation|company|plc|pty|"
    r"pvt|s\.?a\.?|s\.?a\.?s|b\.?v\.?|kg|oy|ab|group)\b\.?|有限公司|有限责任公司|股份|集团|公司|事务所|研究院|银行")
_COMPANY_WEAK = re.compile(
    r"(?i)\b(?:technolog(?:y|ies)|software|solutions|systems|consulting|logistics|capital|partners|labs?|"
    r"studio|bank|holdings|industries|international|ventures|media|networks)\b|科技|技术|咨询|工作室|贸易|传媒|"
    r"网络|电子|实业|控股|制造|中心|医院|大学|学院")
_TITLE = re.compile(
    r"(?i)\b(?:manager|director|ceo|cto|cfo|coo|cmo|cio|cpo|vp|svp|evp|vice\s+president|president|head|"
    r"engineer|chief|officer|founder|co-founder|partner|consultant|sales|marketing|lead|specialist|analyst|"
    r"architect|representative|executive|owner|principal|developer|designer|account|assistant|coordinator|"
    r"supervisor|administrator|advisor|adviser|secretary|chairman|chairwoman|professor)\b|"
    r"经理|总监|总裁|主管|工程师|销售|董事|主任|顾问|创始人|合伙人|副总|部长|专员|代表|首席|执行官|设计师|会计|秘书|"
    r"助理|院长|教授|主席|负责人|总经理")
_ADDRESS_STRONG = re.compile(
    r"(?i)^\s*(?:地址|address|addr)|\b(?:street|st\.|road|rd\.|avenue|ave\.?|boulevard|blvd|lane|drive|suite|"
    r"floor|fl\.|building|bldg|square|place|plaza|tower|centre|center|court|park|platz|allee|weg|gasse|str\.|straße|"
    r"strasse)(?!\w)|#\d|\w+(?:strasse|straße|str\.)(?!\w)|"
    r"路|街|大道|号楼|号|室|层|大厦|园区|弄|巷")
_ADDRESS_WEAK = re.compile(
    r"(?i)\b\d{4,6}\b|\b(?:city|district|province|state)\b|省|市|区|县|镇|乡|村")
_POSTCODE_LINE = re.compile(r"\b\d{4,6}\b|\b[A-Z]{2}\s+\d{5}\b")

_HONORIFIC = re.compile(r"(?i)^(?:dr|mr|mrs|ms|miss|prof|sir)\.?$")
_SUFFIX = re.compile(r"(?i)^(?:jr|sr|ii|iii|iv|phd|ph\.d|mba|md|msc|bsc|esq|cpa)\.?$")
_LATIN_NAME_WORD = re.compile(r"^[A-ZÀ-Ý][A-Za-zÀ-ÿ'’\-]*\.?$")
_HAN_NAME = re.compile(f"^[{_HAN}]{{2,4}}$")

# Two-character surnames: without them 欧阳明 would become surname 欧, given name 阳明.
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 端木 独孤 南宫 西门 澹台 "
    "呼延 万俟 闻人 赫连 钟离 宗政 濮阳 公冶 太叔 申屠 百里 东郭 拓跋 第五 左丘 梁丘 司空 鲜于 闾丘 子车 "
    "亓官 仲孙 单于".split())
# The most common single-character surnames (about 85% of people in China): a 2-4 character line that starts
# with one of them is very likely the person's name, not a slogan.
_COMMON_SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔"
    "钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛"
    "邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝"
    "路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂"
    "全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝")


@dataclass(frozen=True)
class ExtractedField:
    """One value read from the card; ``confidence`` (0..1) is how sure the reading is."""

    name: str
    value: str
    confidence: float


@dataclass
class CardScan:
    """What was read from one card.

    ``fields`` holds name, first_name, last_name, title, company, address and website when found;
    ``phones`` (E.164, mobiles first, faxes left out) and ``emails`` are in reading order otherwise;
    ``confidence`` is the mean confidence of the fields a lead is made of (name, company, contact), a
    missing one counting as 0 — a way to sort a review queue.
    """

    fields: dict[str, ExtractedField] = field(default_factory=dict)
    # ExtractedField.name says the kind: "mobile", "landline" or "phone" (either); "email" for emails.
    phones: list[ExtractedField] = field(default_factory=list)
    emails: list[ExtractedField] = field(default_factory=list)
    text: str = ""
    confidence: float = 0.0

    def value(self, name: str) -> str:
        found = self.fields.get(name)
        return found.value if found else ""

    @property
    def needs_review(self) -> bool:
        """A person should check the lead: a key field is missing or was read with low confidence."""
        if not self.emails and not self.phones:
            return True
        key_fields = [self.fields.get("name"), self.fields.get("company")]
        key_fields += [contacts[0] for contacts in (self.emails, self.phones) if contacts]
        return any(f is None or f.confidence < REVIEW_CONFIDENCE for f in key_fields)

    def to_lead_input(self, source: str = "business_card", default_region: str = "CN", tags=()) -> LeadInput:
        """The lead this card describes; ``default_region`` reads phone numbers written without +country."""
        phones = [_to_e164(p.value, default_region) for p in self.phones]
        emails = [e.value for e in self.emails]
        custom = {}
        for i, phone in enumerate(phones[1:1 + MAX_EXTRA_CONTACTS], start=2):
            custom[f"card.phone_{i}"] = phone
        for i, email in enumerate(emails[1:1 + MAX_EXTRA_CONTACTS], start=2):
            custom[f"card.email_{i}"] = email
        if self.text:
            custom["card.text"] = self.text[:MAX_CUSTOM_VALUE]
        custom["card.confidence"] = f"{self.confidence:.2f}"
        return LeadInput(
            email=emails[0] if emails else "",
            phone=phones[0] if phones else "",
            first_name=self.value("first_name"),
            last_name=self.value("last_name"),
            company=self.value("company"),
            title=self.value("title"),
            # The country of the lead's own phone is the best hint a card gives; the address is free text.
            country=_region_of(phones[0], default_region) if phones else "",
            address=self.value("address"),
            website=self.value("website"),
            source=source,
            custom_fields=custom,
            tags=list(tags),
            needs_review=self.needs_review,
        )


def _invalid(field_name: str, description: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation(field_name, description)])


def validate_card_image(data: bytes, field: str = "image") -> Image.Image:
    """The decoded card image, or InvalidArgument naming ``field`` and saying what is accepted."""
    if not data:
        raise _invalid(field, f"is empty; send {_ALLOWED}")
    if len(data) > MAX_CARD_BYTES:
        raise _invalid(field, f"is {len(data)} bytes; at most {MAX_CARD_BYTES} bytes of {_ALLOWED}")
    at_most = f"at most {MAX_CARD_PIXELS // 1_000_000} megapixels of {_ALLOWED}"
    try:
        # Only the JPEG and PNG decoders are tried: what they cannot read is refused, whatever its name says.
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        raise _invalid(field, f"has too many pixels; {at_most}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error):
        raise _invalid(field, f"is not a JPEG or PNG image; send {_ALLOWED}") from None
    if image.width * image.height > MAX_CARD_PIXELS:
        raise _invalid(field, f"is {image.width}x{image.height} pixels; {at_most}")
    try:
        image.load()  # a valid header on a truncated or corrupt body fails here, not halfway through OCR
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error):
        raise _invalid(field, f"is a damaged or truncated {image.format} file; send {_ALLOWED}") from None
    return image


# --- OCR -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Word:
    text: str
    conf: float  # 0..1
    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width


class _Line:
    """Words on one text line, joined the way the script is written; remembers which word made each character."""

    def __init__(self, words):
        self.words = sorted(words, key=lambda w: w.left)
        parts, owners = [], []
        for i, word in enumerate(self.words):
            if parts and _needs_space(parts[-1], word.text):
                parts.append(" ")
                owners.append(-1)
            parts.append(word.text)
            owners.extend([i] * len(word.text))
        self.text = "".join(parts)
        self._owners = owners

    @property
    def top(self) -> int:
        return min(w.top for w in self.words)

    @property
    def bottom(self) -> int:
        return max(w.top + w.height for w in self.words)

    @property
    def left(self) -> int:
        return self.words[0].left

    @property
    def right(self) -> int:
        return self.words[-1].right

    def continues_into(self, below: "_Line") -> bool:
        """``below`` is the next line of the same text block: just under this one, overlapping it sideways."""
        gap = below.top - self.bottom
        return -0.3 * self.height <= gap <= 1.5 * self.height and min(self.right, below.right) > max(
            self.left, below.left)

    @property
    def height(self) -> float:
        return median(w.height for w in self.words)

    def confidence(self, start: int = 0, end: int | None = None) -> float:
        """Mean confidence of the words that made ``text[start:end]``.

        chi_sim gives the last character(s) of a line a very low confidence (often 0.2-0.4) even when they
        are read right; that word is left out when others make the same field, or every Chinese card would
        go to review.
        """
        owners = {o for o in self._owners[start:end] if o >= 0}
        last = len(self.words) - 1
        if len(owners) >= 2 and last in owners and _HAN_CHAR.search(self.words[last].text):
            owners.discard(last)
        return mean(self.words[o].conf for o in owners) if owners else 0.0


def _needs_space(before: str, after: str) -> bool:
    # chi_sim OCR splits Chinese text into words; Chinese is written without spaces, and an address like
    # 张江路88号 must not become 张江路 88 号. Emails and web addresses split by the OCR are glued back.
    if before.endswith(("@", "www.")) or after.startswith("@"):
        return False
    if _CJK_CHAR.match(before[-1]) and (_CJK_CHAR.match(after[0]) or after[0].isdigit()):
        return False
    return not (before[-1].isdigit() and _HAN_CHAR.match(after[0]))


def _prepare(image: Image.Image) -> Image.Image:
    try:
        image = ImageOps.exif_transpose(image)  # phone photos are stored sideways with a rotation tag
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error):
        pass  # a damaged EXIF block: read the pixels as stored
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels are often stored black: lay the image on white paper first.
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    if image.mode.startswith("I"):
        image = image.convert("I").point(lambda v: v * (1 / 257))  # 16-bit scans: L would clip them to white
    gray = image.convert("L")
    longest = max(gray.size)
    if longest < _MIN_SIDE or longest > _MAX_SIDE:
        factor = min(_MIN_SIDE / longest, 4.0) if longest < _MIN_SIDE else _MAX_SIDE / longest
        size = (max(1, round(gray.width * factor)), max(1, round(gray.height * factor)))
        gray = gray.resize(size, Image.Resampling.LANCZOS)
    gray = ImageOps.autocontrast(gray)  # faded photos
    if ImageStat.Stat(gray).median[0] < 110:
        gray = ImageOps.invert(gray)  # light text on a dark card: Tesseract expects dark ink on paper
    return gray


def _read_words(image: Image.Image, languages: str) -> list[tuple[tuple[int, int, int], _Word]]:
    # libgomp threads spin while they wait; on a card-sized image they make Tesseract 3-4x slower and fight
    # concurrent scans for the CPUs. One thread per scan is the Tesseract authors' advice for servers.
    # pytesseract starts tesseract with this process's environment; an operator's own setting wins.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    # Without a resolution Tesseract guesses one from the text sizes, and on a card (a few lines of very
    # different sizes) it guesses badly and drops whole lines. A card is 3.5 inches (85-90 mm) wide.
    dpi = max(70, min(1200, round(max(image.size) / CARD_INCHES)))
    data = pytesseract.image_to_data(image, lang=languages, config=f"--psm 3 --dpi {dpi}",
                                     timeout=OCR_TIMEOUT_SECONDS, output_type=pytesseract.Output.DICT)
    words = []
    for i, raw in enumerate(data["text"]):
        text = unicodedata.normalize("NFKC", str(raw)).strip()  # full-width ＠ ： ０ become @ : 0
        conf = float(data["conf"][i])
        if not text or conf < 0:
            continue
        key = (int(data["block_num"][i]), int(data["par_num"][i]), int(data["line_num"][i]))
        words.append((key, _Word(text, max(0.0, min(1.0, conf / 100)), int(data["left"][i]), int(data["top"][i]),
                                 int(data["width"][i]), int(data["height"][i]))))
    return words


def _lines(words: list[tuple[tuple[int, int, int], _Word]]) -> list[_Line]:
    """Reading-order lines: Tesseract's lines, split at wide gaps and joined across its block boundaries."""
    by_key: dict[tuple, list[_Word]] = {}
    for key, word in words:
        by_key.setdefault(key, []).append(word)
    pieces = []
    for line_words in by_key.values():
        line_words.sort(key=lambda w: w.left)
        height = median(w.height for w in line_words)
        current: list[_Word] = []
        for word in line_words:
            if _is_rule(word, height):
                pieces.append(current)  # a vertical rule between two columns: the line ends here
                current = []
                continue
            # Two columns side by side can come back as one line ("Anna Schmidt   Mobile: +49 ...").
            if current and word.left - current[-1].right > 1.5 * height:
                pieces.append(current)
                current = []
            current.append(word)
        pieces.append(current)
    pieces = [piece for piece in pieces if piece]
    pieces.sort(key=lambda ws: (min(w.top for w in ws), ws[0].left))
    rows: list[list[_Word]] = []
    for piece in pieces:
        top, bottom = min(w.top for w in piece), max(w.top + w.height for w in piece)
        for row in rows:
            r_top, r_bottom = min(w.top for w in row), max(w.top + w.height for w in row)
            overlap = min(bottom, r_bottom) - max(top, r_top)
            gap = max(piece[0].left - max(w.right for w in row), min(w.left for w in row) - piece[-1].right)
            height = min(bottom - top, r_bottom - r_top)
            # Tesseract sometimes cuts one line of Chinese into blocks; same row and close means same line.
            if overlap > 0.5 * height and -5 <= gap <= 0.8 * height:
                row.extend(piece)
                break
        else:
            rows.append(list(piece))
    lines = []
    for row in rows:
        row.sort(key=lambda w: w.left)
        # Logos, colour bars and rules come back as a few unsure "words" at the ends of lines or alone.
        while row and _is_noise(row[0], row[1:]):
            row.pop(0)
        while row and _is_noise(row[-1], row[:-1]):
            row.pop()
        if row and (any(w.conf >= _NOISE for w in row) or any(len(w.text) > 3 for w in row)):
            lines.append(_Line(row))  # not a line of a few unsure scraps ("F/O" for a rule under the title)
    lines.sort(key=lambda line: (line.top, line.left))
    return lines


def _is_rule(word: _Word, line_height: float) -> bool:
    return not any(c.isalnum() for c in word.text) and word.height > 1.5 * line_height


def _is_noise(word: _Word, others: list[_Word]) -> bool:
    """A "word" at the end of a line that is a smudge, a logo or a rule rather than text."""
    if others and word.conf < 0.8:
        height = median(w.height for w in others)
        gap = max(others[0].left - word.right, word.left - others[-1].right)
        if word.height > 2.2 * height and gap > 0.5 * height:
            return True  # far taller than its line and apart from it: the logo beside the company name
    # Never a Han character: chi_sim is unsure of the last one of most lines, yet right.
    return word.conf < _NOISE and not _HAN_CHAR.search(word.text) and (
        len(word.text) <= 2 or not any(c.isalnum() for c in word.text))


def scan_card(data: bytes, languages: str = "chi_sim+eng", default_region: str = "CN") -> CardScan:
    """Read a card image (JPEG/PNG bytes): validate it, run Tesseract once, and pick out the lead's fields.

    ``default_region`` is the country assumed for phone numbers printed without +country code.
    Raises InvalidArgument (field ``image``) for images it will not read; pytesseract's TesseractError
    (a language not installed) and RuntimeError (over OCR_TIMEOUT_SECONDS) are the deployment's problem.
    """
    return read_card(prepare_card(data), languages, default_region)


def prepare_card(data: bytes) -> Image.Image:
    """The validated card image made ready for Tesseract: decoding and resizing a photo of up to 40
    megapixels is CPU work for a third of a second, which a service runs off its event loop."""
    return _prepare(validate_card_image(data))


def read_card(prepared: Image.Image, languages: str = "chi_sim+eng", default_region: str = "CN") -> CardScan:
    """Run Tesseract once on a prepared card image and pick out the lead's fields."""
    return _extract(_lines(_read_words(prepared, languages)), default_region)


def parse_card_text(text: str, default_region: str = "CN", confidence: float = 1.0) -> CardScan:
    """The same field extraction on text already read (one card line per text line, top to bottom)."""
    lines, y = [], 0
    for raw in text.splitlines():
        tokens = unicodedata.normalize("NFKC", raw).split()
        if tokens:
            words, x = [], 0
            for token in tokens:
                words.append(_Word(token, confidence, x, y, 10 * len(token), 20))
                x += 10 * len(token) + 5
            lines.append(_Line(words))
        y += 30
    return _extract(lines, default_region)


# --- field extraction ----------------------------------------------------------------------------------

@dataclass
class _Candidate:
    line: _Line
    rest: str  # the line's text with emails, phones and websites blanked out
    kind: str = ""
    score: float = 0.0


def _mask(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def _find_emails(line: _Line, rest: str, out: list[ExtractedField]) -> str:
    for match in _EMAIL.finditer(rest):
        candidate = match.group(0).strip(".-")
        try:
            email = validate_email(candidate, check_deliverability=False).normalized.lower()
        except EmailNotValidError:
            continue
        if all(e.value != email for e in out):
            out.append(ExtractedField("email", email, round(line.confidence(match.start(), match.end()), 3)))
        rest = _mask(rest, match.start(), match.end())
    return rest


def _find_phones(line: _Line, rest: str, region: str, out: list[tuple[int, ExtractedField]]) -> str:
    repaired = _DIGITISH.sub(
        lambda m: m.group(0).translate(_DIGIT_FIX) if sum(c.isdigit() for c in m.group(0)) >= 2 else m.group(0),
        rest)
    previous_end = 0
    for match in phonenumbers.PhoneNumberMatcher(repaired, region, leniency=phonenumbers.Leniency.VALID):
        label = repaired[previous_end:match.start]
        previous_end = match.end
        rest = _mask(rest, match.start, match.end)
        if _FAX.search(label):
            continue  # a fax number is no way to reach the lead
        number_type = phonenumbers.number_type(match.number)
        if _MOBILE.search(label) or number_type == phonenumbers.PhoneNumberType.MOBILE:
            kind, rank = "mobile", 0
        elif number_type == phonenumbers.PhoneNumberType.FIXED_LINE:
            kind, rank = "landline", 1
        else:
            kind, rank = "phone", 1
        e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        if all(p.value != e164 for _, p in out):
            out.append((rank, ExtractedField(kind, e164, round(line.confidence(match.start, match.end), 3))))
    return rest


def _find_website(line: _Line, rest: str, email_domains: set[str], found: list[ExtractedField]) -> str:
    for match in _URL.finditer(rest):
        value = match.group(0).rstrip(".,;:)").lower()
        value = "www." + value[4:] if value.startswith("www") else value  # "www:" and "www," are OCR slips
        found.append(ExtractedField("website", value, round(line.confidence(match.start(), match.end()), 3)))
        rest = _mask(rest, match.start(), match.end())
    labelled = bool(_WEB_LABEL.search(rest))
    for match in _DOMAIN.finditer(rest):
        value = match.group(0).lower()
        # A bare domain is a website only when labelled so, or when it is the domain of the card's email.
        if labelled or any(value == d or d.endswith("." + value) for d in email_domains):
            conf = line.confidence(match.start(), match.end()) * _WEAK
            found.append(ExtractedField("website", value, round(conf, 3)))
            rest = _mask(rest, match.start(), match.end())
    return rest


def _classify(candidate: _Candidate) -> None:
    text = _strip_label(candidate.rest)
    if not re.search(f"[A-Za-z{_HAN}]", text):
        return
    scores = {
        "company": 3 * len(_COMPANY_STRONG.findall(text)) + len(_COMPANY_WEAK.findall(text)),
        "title": 2 * len(_TITLE.findall(text)),
        "address": 2 * len(_ADDRESS_STRONG.findall(text)) + len(_ADDRESS_WEAK.findall(text)),
    }
    if re.match(r"(?i)^\s*(?:地址|address|addr)", text):
        scores["address"] += 10
    # A title line is short; a long line with a title word ("Sales Solutions for Logistics") is a slogan.
    if len(text) > 40:
        scores["title"] = 0
    kind, score = max(scores.items(), key=lambda item: item[1])
    if score > 0:
        candidate.kind, candidate.score = kind, score


def _rest_confidence(candidate: _Candidate, strength: float) -> float:
    """Confidence of the words left in a line once its contacts and its label are taken out."""
    label = _LABEL.match(candidate.rest)
    start = label.end() if label else 0
    kept = [i for i in range(start, len(candidate.rest)) if not candidate.rest[i].isspace()]
    conf = candidate.line.confidence(kept[0], kept[-1] + 1) if kept else 0.0
    return round(conf * strength, 3)


def _strip_label(text: str) -> str:
    text = _GLUED_OF.sub(r"\1 of", _SPACES.sub(" ", text).strip())
    return _LABEL.sub("", text, count=1).strip(" :;,|")


def split_name(name: str) -> tuple[str, str]:
    """(first_name, last_name) of a printed name, as a CRM stores them.

    李娜 -> (娜, 李); 欧阳明 -> (明, 欧阳); "Dr. Anna Schmidt, PhD" -> (Anna, Schmidt); "Mary Ann Smith" ->
    (Mary Ann, Smith). Chinese names put the surname first; Latin ones here are assumed given-name first.
    """
    compact = _SPACES.sub("", name)
    if _HAN_NAME.match(compact):
        surname_length = 2 if len(compact) >= 3 and compact[:2] in COMPOUND_SURNAMES else 1
        return compact[surname_length:], compact[:surname_length]
    words = [w for w in _SPACES.sub(" ", name.split(",")[0]).strip().split(" ") if w]
    while len(words) > 1 and _HONORIFIC.match(words[0]):
        words = words[1:]
    while len(words) > 1 and _SUFFIX.match(words[-1]):
        words = words[:-1]
    if len(words) < 2:
        return "".join(words), ""
    return " ".join(words[:-1]), words[-1]


def _name_strength(text: str, title_found: bool) -> float:
    """How much ``text`` looks like a person's name (0 = not at all)."""
    compact = _SPACES.sub("", text)
    # A title word in a name-shaped line is doubtful, unless the card's title is on another line already.
    doubtful = _TITLE.search(text) and not title_found
    if doubtful or _COMPANY_WEAK.search(text) or _ADDRESS_WEAK.search(text):
        return 0.5 * _name_strength_of_shape(text, compact)  # "Michael Head", "科技中心": possible, doubtful
    return _name_strength_of_shape(text, compact)


def _name_strength_of_shape(text: str, compact: str) -> float:
    if _HAN_NAME.match(compact):
        if compact[:2] in COMPOUND_SURNAMES or compact[0] in _COMMON_SURNAMES:
            return _STRONG
        return _WEAK
    words = text.split()
    if 2 <= len(words) <= 4 and all(_LATIN_NAME_WORD.match(w) for w in words):
        if not any(w.isupper() and len(w) > 1 for w in words):  # "BMW AG", "IT SERVICES"
            return _STRONG
        return _WEAK
    return 0.0


def _extract(lines: list[_Line], region: str) -> CardScan:
    emails: list[ExtractedField] = []
    ranked_phones: list[tuple[int, ExtractedField]] = []
    websites: list[ExtractedField] = []
    candidates = []
    for line in lines:
        rest = _find_emails(line, line.text, emails)
        rest = _find_phones(line, rest, region, ranked_phones)
        candidates.append(_Candidate(line, rest))
    email_domains = {e.value.rsplit("@", 1)[1] for e in emails}
    for candidate in candidates:
        candidate.rest = _find_website(candidate.line, candidate.rest, email_domains, websites)
        if not _JUNK.match(_strip_label(candidate.rest)):
            _classify(candidate)

    fields: dict[str, ExtractedField] = {}
    for kind in ("company", "title"):
        best = max((c for c in candidates if c.kind == kind), default=None,
                   key=lambda c: (c.score, c.line.confidence(), -c.line.top))
        if best:
            text = _strip_label(best.rest)
            fields[kind] = ExtractedField(kind, text, _rest_confidence(best, _STRONG))
            best.kind = "used"
        if kind == "title":
            for other in candidates:  # "Michael Head" is a name that happens to hold a title word
                other.kind = "" if other.kind == "title" else other.kind
    if "company" not in fields:
        _company_from_email_domain(candidates, email_domains, fields)

    addresses = [c for c in candidates if c.kind == "address"]
    if addresses:
        parts = [addresses[0]]
        # "1 Raffles Place" above "Singapore 048616": a street line with a number starts the address;
        # "500 Market Street" above "San Francisco, CA 94105": a line with a postcode continues it.
        above = [c for c in candidates if not c.kind and c.line.continues_into(parts[0].line)]
        if above and re.search(r"\d", above[0].rest) and re.search(r"[A-Za-z]{3}", above[0].rest):
            parts.insert(0, above[0])
        while True:
            below = [c for c in candidates if c not in parts and parts[-1].line.continues_into(c.line) and (
                c.kind == "address" or (not c.kind and _POSTCODE_LINE.search(c.rest)))]
            if not below:
                break
            parts.append(below[0])
        texts = [_strip_label(c.rest) for c in parts]
        value = _CJK_DIGIT_SPACE.sub("", ", ".join(t for t in texts if t))
        conf = mean(_rest_confidence(c, _STRONG) for c in parts)
        fields["address"] = ExtractedField("address", value, round(conf, 3))
        for c in parts:
            c.kind = "used"
    if websites:
        fields["website"] = max(websites, key=lambda w: w.confidence)

    _pick_name(candidates, fields)

    phones = [p for _, p in sorted(ranked_phones, key=lambda rp: rp[0])]  # stable: reading order within a rank
    key = [fields.get("name"), fields.get("company"), (emails or phones or [None])[0]]
    confidence = round(mean(f.confidence if f else 0.0 for f in key), 3)
    text = "\n".join(line.text for line in lines)
    return CardScan(fields=fields, phones=phones, emails=emails, text=text, confidence=confidence)


def _company_from_email_domain(candidates, email_domains, fields) -> None:
    # "BrightPath" with m.chen@brightpath.io: a line spelling the email's domain is the company's name.
    labels = {d.split(".")[0].replace("-", "") for d in email_domains}
    for c in candidates:
        squashed = re.sub(r"[^a-z0-9]", "", c.rest.lower())
        if squashed and not c.kind and squashed in labels:
            text = _strip_label(c.rest)
            fields["company"] = ExtractedField("company", text, _rest_confidence(c, _WEAK))
            c.kind = "used"
            return


def _pick_name(candidates: list[_Candidate], fields: dict[str, ExtractedField]) -> None:
    free = [c for c in candidates if not c.kind and not _JUNK.match(_strip_label(c.rest))
            and not re.search(r"\d|@", c.rest) and not _COMPANY_STRONG.search(c.rest)]
    if not free:
        return
    tallest = max(c.line.height for c in free)
    # The name is usually the largest text on the card; among names equally large, the higher one.
    scored = [(_name_strength(_strip_label(c.rest), "title" in fields), c.line.height >= 0.8 * tallest, -c.line.top, c)
              for c in free]
    strength, largest, _, best = max(scored, key=lambda s: s[:3])
    text = _strip_label(best.rest)
    if strength == 0:
        # Nothing looks like a name: fall back to the largest free text near the top, and say it is a guess.
        if not largest or len(text) < 2 or best.line.confidence() < 0.5:
            return
        strength = _GUESS
    elif not largest:
        strength *= _WEAK
    if _HAN_NAME.match(_SPACES.sub("", text)):
        text = _SPACES.sub("", text)
    conf = _rest_confidence(best, strength)
    first, last = split_name(text)
    fields["name"] = ExtractedField("name", text, conf)
    fields["first_name"] = ExtractedField("first_name", first, conf)
    if last:
        fields["last_name"] = ExtractedField("last_name", last, conf)
    best.kind = "used"


def _to_e164(value: str, region: str) -> str:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return value
    if not phonenumbers.is_valid_number(number):
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _region_of(phone: str, default_region: str) -> str:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(phone, default_region)) or ""
    except phonenumbers.NumberParseException:
        return ""
