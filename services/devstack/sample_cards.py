"""Realistic business-card images rendered with Pillow, for the card-scanning tests, the benchmark and the demo."""
import io
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter, ImageFont

LAYOUTS = ("left", "centered", "two-column")
FORMATS = ("PNG", "JPEG")

# 3.5 x 2 inches at 300 dpi: what a flatbed scan or a cropped phone photo of a card gives.
CARD_SIZE = (1050, 600)

_CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
_LATIN_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
_LATIN_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


@dataclass(frozen=True)
class SampleCard:
    """What is printed on a card, plus the truth a reader of the card should get back."""

    key: str
    name: str  # as printed
    title: str
    company: str
    phones: tuple  # ((label, number as printed), ...); the first is the lead's phone
    email: str
    address: str = ""  # "\n" where the card breaks it over two lines
    website: str = ""
    language: str = "en"  # "en" or "zh": picks the fonts and the labels' language
    accent: tuple = (22, 78, 150)  # colour of the logo block and the bar
    background: tuple = (255, 255, 255)
    # the expected reading (names split as a CRM stores them, the phone in E.164)
    first_name: str = ""
    last_name: str = ""
    phone_e164: str = ""


SAMPLE_CARDS = (
    SampleCard(
        key="anna-schmidt", name="Anna Schmidt", title="Head of Sales", company="Nordlicht Logistik GmbH",
        phones=(("Mobile", "+49 151 2345 6789"), ("Tel", "+49 40 1234567")),
        email="a.schmidt@nordlicht-logistik.de", address="Hafenstrasse 12, 20457 Hamburg",
        website="www.nordlicht-logistik.de", language="en", accent=(0, 102, 153),
        first_name="Anna", last_name="Schmidt", phone_e164="+4915123456789",
    ),
    SampleCard(
        key="michael-chen", name="Michael Chen", title="VP of Engineering", company="BrightPath Software Inc.",
        phones=(("Mobile", "+1 415 555 0132"), ("Fax", "+1 415 555 0199")),
        email="m.chen@brightpath.io", address="500 Market Street, Suite 300\nSan Francisco, CA 94105",
        website="www.brightpath.io", language="en", accent=(200, 90, 20), background=(250, 248, 242),
        first_name="Michael", last_name="Chen", phone_e164="+14155550132",
    ),
    SampleCard(
        key="priya-raman", name="Priya Raman", title="Chief Financial Officer", company="FinEdge Capital Pvt. Ltd.",
        phones=(("Tel", "+91 98765 43210"),),
        email="priya.raman@finedge.in", address="Nariman Point Road, Mumbai 400021",
        website="https://finedge.in", language="en", accent=(40, 120, 60),
        first_name="Priya", last_name="Raman", phone_e164="+919876543210",
    ),
    SampleCard(
        key="li-na", name="李娜", title="销售总监", company="上海云帆科技有限公司",
        phones=(("手机", "+86 138 0013 8000"),),
        email="lina@yunfan-tech.cn", address="上海市浦东新区张江路88号", website="www.yunfan-tech.cn",
        language="zh", accent=(190, 30, 45),
        first_name="娜", last_name="李", phone_e164="+8613800138000",
    ),
    SampleCard(
        key="ouyang-ming", name="欧阳明", title="技术经理", company="深圳华信智能制造集团",
        phones=(("电话", "0755-8765 4321"), ("手机", "139 2345 6789"), ("传真", "0755-8765 4322")),
        email="ouyang.ming@huaxin-group.com", address="广东省深圳市南山区科技园路12号",
        website="www.huaxin-group.com", language="zh", accent=(20, 60, 120), background=(246, 248, 252),
        first_name="明", last_name="欧阳", phone_e164="+8613923456789",
    ),
    SampleCard(
        key="zhang-wei", name="张伟", title="总经理", company="北京博远咨询有限公司",
        phones=(("手机", "186 1000 2233"), ("电话", "010-6512 3456")),
        email="zhangwei@boyuan.com.cn", address="北京市朝阳区建国路100号", website="",
        language="zh", accent=(120, 70, 30),
        first_name="伟", last_name="张", phone_e164="+8618610002233",
    ),
)


def sample_card(key: str) -> SampleCard:
    for card in SAMPLE_CARDS:
        if card.key == key:
            return card
    raise KeyError(key)


def _font(card: SampleCard, size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    if card.language == "zh":
        return ImageFont.truetype(_CJK_FONT, size)
    return ImageFont.truetype(_LATIN_BOLD if bold else _LATIN_FONT, size)


def _contact_lines(card: SampleCard) -> list[str]:
    zh = card.language == "zh"
    sep = "：" if zh else ": "
    lines = [f"{label}{sep}{number}" for label, number in card.phones]
    if card.email:
        lines.append(f"{'邮箱' if zh else 'Email'}{sep}{card.email}")
    if card.website:
        lines.append(card.website)
    if card.address:
        first, *more = card.address.split("\n")
        lines.append(f"地址{sep}{first}" if zh else first)
        lines.extend(more)
    return lines


def _fit(draw: ImageDraw.ImageDraw, card: SampleCard, text: str, size: int, width: int, bold=False):
    """The font at ``size`` or smaller so that ``text`` fits in ``width`` pixels (real cards shrink long lines)."""
    while size > 12:
        font = _font(card, size, bold)
        if draw.textlength(text, font=font) <= width:
            return font
        size -= 1
    return _font(card, size, bold)


def _logo(draw: ImageDraw.ImageDraw, card: SampleCard, x: int, y: int, side: int) -> None:
    # A wordless mark: a filled square with a white diamond, like many small companies' logos.
    draw.rounded_rectangle((x, y, x + side, y + side), radius=side // 6, fill=card.accent)
    c, r = side // 2, side // 3
    draw.polygon([(x + c, y + c - r), (x + c + r, y + c), (x + c, y + c + r), (x + c - r, y + c)],
                 fill=(255, 255, 255))


def _draw(card: SampleCard, layout: str) -> Image.Image:
    w, h = CARD_SIZE
    image = Image.new("RGB", CARD_SIZE, card.background)
    draw = ImageDraw.Draw(image)
    ink, grey = (25, 25, 30), (70, 70, 80)
    contacts = _contact_lines(card)
    # Han characters need more pixels than Latin letters to stay legible: Chinese cards print larger.
    name_size, title_size, company_size, contact_size = (60, 34, 36, 30) if card.language == "zh" else (52, 30, 32, 25)

    if layout == "left":
        _logo(draw, card, 60, 50, 90)
        draw.rectangle((0, h - 18, w, h), fill=card.accent)
        x, y = 60, 170
        draw.text((x, y), card.name, font=_font(card, name_size, bold=True), fill=ink)
        y += name_size + 14
        draw.text((x, y), card.title, font=_fit(draw, card, card.title, title_size, w - 120), fill=grey)
        company_font = _fit(draw, card, card.company, company_size, w - 200, bold=True)
        draw.text((180, 78), card.company, font=company_font, fill=card.accent)
        y += title_size + 30
        for line in contacts:
            draw.text((x, y), line, font=_fit(draw, card, line, contact_size, w - 120), fill=ink)
            y += contact_size + 12
    elif layout == "centered":
        draw.rectangle((0, 0, w, 26), fill=card.accent)
        company_font = _fit(draw, card, card.company, company_size, w - 120, bold=True)
        draw.text((w / 2, 70), card.company, font=company_font, fill=card.accent, anchor="mt")
        draw.text((w / 2, 150), card.name, font=_font(card, name_size, bold=True), fill=ink, anchor="mt")
        draw.text((w / 2, 150 + name_size + 16), card.title, font=_fit(draw, card, card.title, title_size, w - 120),
                  fill=grey, anchor="mt")
        draw.line((w / 2 - 160, 300, w / 2 + 160, 300), fill=card.accent, width=3)
        y = 325
        for line in contacts:
            draw.text((w / 2, y), line, font=_fit(draw, card, line, contact_size, w - 100), fill=ink, anchor="mt")
            y += contact_size + 11
    elif layout == "two-column":
        split = int(w * 0.40)
        draw.rectangle((split, 40, split + 4, h - 40), fill=card.accent)
        _logo(draw, card, 50, 50, 70)
        draw.text((50, 170), card.name, font=_fit(draw, card, card.name, name_size, split - 80, bold=True), fill=ink)
        draw.text((50, 170 + name_size + 16), card.title, font=_fit(draw, card, card.title, title_size, split - 80),
                  fill=grey)
        company_font = _fit(draw, card, card.company, company_size - 4, split - 80, bold=True)
        draw.text((50, 450), card.company, font=company_font, fill=card.accent)
        y = max(60, (h - len(contacts) * (contact_size + 22)) // 2)
        for line in contacts:
            draw.text((split + 40, y), line, font=_fit(draw, card, line, contact_size, w - split - 70), fill=ink)
            y += contact_size + 22
    else:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    return image


def render_card(card: SampleCard, layout: str = "left", fmt: str = "PNG", scale: float = 1.0,
                blur: float = 0.0, rotate: float = 0.0, noise: float = 0.0, seed: int = 0) -> bytes:
    """The card as image bytes.

    ``scale`` resizes the 1050x600 card (0.3 is a far-away photo); ``blur`` is a Gaussian radius in card
    pixels; ``rotate`` a skew in degrees; ``noise`` the share of pixels replaced by grey speckle (sensor
    noise, dust). All degradations are deterministic for a given ``seed``.
    """
    fmt = fmt.upper()
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    image = _draw(card, layout)
    if rotate:
        image = image.rotate(rotate, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(235, 235, 230))
    if noise:
        rng = random.Random(seed)
        pixels = image.load()
        width, height = image.size
        for _ in range(int(width * height * noise)):
            v = rng.randint(60, 220)
            pixels[rng.randrange(width), rng.randrange(height)] = (v, v, v)
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    if scale != 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, "JPEG", quality=85, dpi=(300, 300))
    else:
        image.save(out, "PNG", dpi=(300, 300))
    return out.getvalue()


if __name__ == "__main__":
    import sys
    from pathlib import Path

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "sample-cards")
    out.mkdir(parents=True, exist_ok=True)
    for sample in SAMPLE_CARDS:
        for card_layout in LAYOUTS:
            (out / f"{sample.key}-{card_layout}.png").write_bytes(render_card(sample, card_layout))
    print(f"wrote {len(SAMPLE_CARDS) * len(LAYOUTS)} cards to {out}/")
