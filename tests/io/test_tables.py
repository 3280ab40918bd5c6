"""ecopatch.vector.tables: safe cells out (no formula, no control character), hardened workbooks and CSV in."""

from __future__ import annotations

import datetime as dt
import io
import time
import zipfile

import numpy as np
import openpyxl
import pandas as pd
import pytest

from ecopatch.errors import SpreadsheetError
from ecopatch.vector.tables import (
    CellError,
    Formula,
    Limits,
    cell_value,
    csv_text,
    open_workbook,
    read_csv_rows,
    read_table,
    write_csv,
    write_workbook,
)

HOSTILE = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1", "＝1+1",
           "=HYPERLINK(\"http://evil.example\",\"点我\")"]


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------
def test_no_cell_of_a_written_workbook_is_a_formula(tmp_path):
    df = pd.DataFrame({"=名称": HOSTILE, "n": range(len(HOSTILE))})
    p = tmp_path / "t.xlsx"
    write_workbook(p, [("s", df)])
    ws = openpyxl.load_workbook(p)["s"]
    values = [c for row in ws.iter_rows() for c in row]
    assert all(c.data_type != "f" for c in values)
    texts = [c.value for c in values if isinstance(c.value, str)]
    assert all(t.startswith("'") for t in texts if t.lstrip(" ")[:1] in "=+-@\t\r＝")
    assert ws["A2"].value == "'=cmd|' /C calc'!A0"  # readable: the text follows the apostrophe


def test_no_csv_field_starts_a_formula(tmp_path):
    df = pd.DataFrame({"=名称": HOSTILE, "x": [-1.5] * len(HOSTILE)})
    p = tmp_path / "t.csv"
    write_csv(df, p)
    raw = p.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(__import__("csv").reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    for row in rows:
        for f in row:
            assert f == "" or f[0] not in "=+@\t\r＝" and (f[0] != "-" or f == "-1.5"), f


def test_control_characters_already_stored_still_write(tmp_path):
    df = pd.DataFrame({"note": ["铃\x07声", "竖\x0b表", "空\x00字", "\u202e反向"]})
    p = tmp_path / "t.xlsx"
    write_workbook(p, [("s", df)])  # openpyxl alone raises IllegalCharacterError
    vals = [r[0] for r in openpyxl.load_workbook(p)["s"].iter_rows(min_row=2, values_only=True)]
    assert vals == ["铃␇声", "竖␋表", "空␀字", "\ufffd反向"]
    assert "铃␇声" in csv_text(df)


def test_text_longer_than_a_cell_is_cut_visibly_in_xlsx_and_whole_in_csv(tmp_path, caplog):
    long = "长" * 6_000_000
    df = pd.DataFrame({"note": [long]})
    p = tmp_path / "t.xlsx"
    with caplog.at_level("WARNING"):
        write_workbook(p, [("备注", df)])
    v = openpyxl.load_workbook(p)["备注"]["A2"].value
    assert len(v) == 32_767 and v.endswith("hold the whole text]") and "6,000,000" in v
    assert "cut" in caplog.text
    c = tmp_path / "t.csv"
    write_csv(df, c)
    assert len(c.read_text(encoding="utf-8-sig")) > 6_000_000
    assert len(cell_value("=" + long)) == 32_767 and cell_value("=" + long).startswith("'=")  # apostrophe fits


def test_awkward_values(tmp_path):
    tz = pd.Timestamp("2024-09-12 03:00", tz="Asia/Shanghai")
    assert cell_value(np.float32("nan")) is None and cell_value(pd.NA) is None and cell_value(pd.NaT) is None
    assert cell_value(float("inf")) == "inf" and cell_value(float("-inf")) == "-inf"
    assert cell_value(110101199001011234) == "110101199001011234"  # an ID card number stays exact
    assert cell_value(np.int64(7)) == 7 and cell_value(True) is True
    assert cell_value(tz) == "2024-09-12T03:00:00+08:00"
    assert cell_value(["=a", 1]) == '[\"=a\", 1]'
    assert cell_value(b"\xff=") == "\ufffd="
    assert cell_value(dt.date(2024, 1, 2), for_csv=True) == "2024-01-02"
    df = pd.DataFrame({"t": [tz], "i": [2**62], "f": [np.inf], "d": [{"k": "=v"}]})
    write_workbook(tmp_path / "t.xlsx", [("s", df)])  # openpyxl alone refuses time zones


# ---------------------------------------------------------------------------
# Hand-made workbooks
# ---------------------------------------------------------------------------
_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _xlsx(path, rows_xml: str, *, shared: list[str] | None = None, shared_xml: str | None = None,
          dimension: str | None = None, styles: str | None = None, compress: bool = True):
    """A minimal .xlsx with one sheet named 核查结果 holding ``rows_xml`` (the <row> elements)."""
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    sheet = f'<?xml version="1.0" encoding="UTF-8"?><worksheet {_NS}>{dim}<sheetData>{rows_xml}</sheetData></worksheet>'
    wb = (f'<?xml version="1.0" encoding="UTF-8"?><workbook {_NS} xmlns:r="{_REL}"><sheets>'
          '<sheet name="核查结果" sheetId="1" r:id="rId1"/></sheets></workbook>')
    rels = ('<?xml version="1.0" encoding="UTF-8"?><Relationships '
            'xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{_REL}/sharedStrings" Target="sharedStrings.xml"/>'
            f'<Relationship Id="rId3" Type="{_REL}/styles" Target="styles.xml"/></Relationships>')
    if shared_xml is None:
        sis = "".join(f"<si><t>{s}</t></si>" for s in (shared or []))
        shared_xml = f'<?xml version="1.0" encoding="UTF-8"?><sst {_NS}>{sis}</sst>'
    styles = styles or (f'<?xml version="1.0" encoding="UTF-8"?><styleSheet {_NS}><cellXfs count="2">'
                        '<xf numFmtId="0"/><xf numFmtId="14"/></cellXfs></styleSheet>')
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    ct = ('<?xml version="1.0" encoding="UTF-8"?><Types '
          'xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
          '<Default Extension="xml" ContentType="application/xml"/>'
          '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
          'spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
          'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>')
    with zipfile.ZipFile(path, "w", method) as z:
        z.writestr("[Content_Types].xml", ct)
        z.writestr("xl/workbook.xml", wb)
        z.writestr("xl/_rels/workbook.xml.rels", rels)
        z.writestr("xl/worksheets/sheet1.xml", sheet)
        z.writestr("xl/sharedStrings.xml", shared_xml)
        z.writestr("xl/styles.xml", styles)
    return path


def _row(r: int, *cells: str) -> str:
    return f'<row r="{r}">' + "".join(cells) + "</row>"


def _s(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def test_rows_are_read_by_their_cells_not_by_the_dimension(tmp_path):
    rows = "".join(_row(r, _s(f"A{r}", f"YB-2024-{r:06d}"), f'<c r="B{r}"><v>{r}</v></c>') for r in range(1, 12))
    p = _xlsx(tmp_path / "lie.xlsx", rows, dimension="A1:B3")
    assert openpyxl.load_workbook(p, read_only=True)["核查结果"].max_row == 3  # what openpyxl believes
    with open_workbook(p) as wb:
        got = list(wb.rows("核查结果"))
    assert [r for r, _ in got] == list(range(1, 12)) and got[-1][1] == {1: "YB-2024-000011", 2: 11.0}


def test_cell_kinds_are_kept(tmp_path):
    rows = _row(1, '<c r="A1" t="b"><v>1</v></c>', '<c r="B1"><f>SUM(1,2)</f></c>', '<c r="C1" t="e"><v>#N/A</v></c>',
                '<c r="D1" s="1"><v>45536</v></c>', '<c r="E1" t="s"><v>0</v></c>', '<c r="F1" t="str"><f>A1</f>'
                '<v>cached</v></c>', '<c r="H1" t="inlineStr"><is><r><t>富</t></r><r><t>文本</t></r></is></c>')
    p = _xlsx(tmp_path / "kinds.xlsx", rows, shared=["共享"])
    with open_workbook(p) as wb:
        (_, cells), = wb.rows("核查结果")
    assert cells[1] is True and cells[2] == Formula("SUM(1,2)") and cells[3] == CellError("#N/A")
    assert cells[4] == dt.datetime(2024, 9, 1) and cells[5] == "共享" and cells[6] == "cached"
    assert cells[8] == "富文本" and 7 not in cells


def test_phonetic_runs_are_not_part_of_the_text(tmp_path):
    shared = (f'<sst {_NS}><si><r><t>東京</t></r><rPh sb="0" eb="2"><t>トウキョウ</t></rPh></si></sst>')
    p = _xlsx(tmp_path / "ph.xlsx", _row(1, '<c r="A1" t="s"><v>0</v></c>'), shared_xml=shared)
    with open_workbook(p) as wb:
        assert list(wb.rows("核查结果"))[0][1] == {1: "東京"}


@pytest.mark.parametrize("millions, fragment", [(11, "unpacks to 136 MB"), (7, "more than 500,000 entries")])
def test_shared_strings_bomb_is_refused_quickly_and_in_little_memory(tmp_path, millions, fragment):
    # well under 1 MB on disk: millions of empty shared strings once unpacked (openpyxl: GBs of memory);
    # caught by the part's declared size, or, under it, by the number of strings
    p = tmp_path / "bomb.xlsx"
    body = b"<si><t/></si>" * 1_000_000
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        _xlsx_parts(z, _row(1, '<c r="A1" t="s"><v>0</v></c>'))
        with z.open("xl/sharedStrings.xml", "w", force_zip64=True) as fh:
            fh.write(f'<sst {_NS}>'.encode())
            for _ in range(millions):
                fh.write(body)
            fh.write(b"</sst>")
    assert p.stat().st_size < 3_000_000
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.monotonic()
    with pytest.raises(SpreadsheetError, match=f"bomb.xlsx.*{fragment}"):
        with open_workbook(p) as wb:
            list(wb.rows("核查结果"))
    assert time.monotonic() - t < 30
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 600  # MB


def _xlsx_parts(z, rows_xml):
    src = io.BytesIO()
    _xlsx(src, rows_xml)
    with zipfile.ZipFile(src) as s:
        for n in s.namelist():
            if n != "xl/sharedStrings.xml":
                z.writestr(n, s.read(n))


def test_millions_of_blank_rows_are_refused_fast(tmp_path):
    rows = "".join(f'<row r="{r}"/>' for r in range(1, 3_000_001))
    p = _xlsx(tmp_path / "blank.xlsx", _row(1, _s("A1", "图斑编号")) + rows)
    t = time.monotonic()
    with pytest.raises(SpreadsheetError, match="more than 100,000 rows"):
        with open_workbook(p) as wb:
            list(wb.rows("核查结果"))
    assert time.monotonic() - t < 10


def test_other_limits(tmp_path):
    p = _xlsx(tmp_path / "wide.xlsx", _row(1, _s("A1", "x"), _s("ZZZ1", "far")))
    with pytest.raises(SpreadsheetError, match="column 18,278"):
        with open_workbook(p) as wb:
            list(wb.rows("核查结果"))
    p = _xlsx(tmp_path / "long.xlsx", _row(1, _s("A1", "长" * 2_000_000)))
    with pytest.raises(SpreadsheetError, match="more than 1,000,000 characters"):
        with open_workbook(p) as wb:
            list(wb.rows("核查结果"))
    p = _xlsx(tmp_path / "big.xlsx", _row(1, _s("A1", "x" * 300_000)), compress=False)
    with pytest.raises(SpreadsheetError, match="more than the 0 MB"):
        open_workbook(p, limits=Limits(max_file_bytes=1000))


@pytest.mark.parametrize("rows, fragment", [
    ('<row r="1"><c r="A1"><v>1</v></row>', "not well-formed"),
    ('<row r="1"><c r="A1" t="s"><v>9</v></c></row>', "shared string '9'"),
])
def test_malformed_sheets_get_a_clear_error(tmp_path, rows, fragment):
    p = _xlsx(tmp_path / "bad.xlsx", rows)
    with pytest.raises(SpreadsheetError, match=fragment) as info:
        with open_workbook(p) as wb:
            list(wb.rows("核查结果"))
    assert "bad.xlsx" in str(info.value)


def test_a_dtd_is_refused(tmp_path):
    laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
              f'<sst {_NS}><si><t>&lol2;</t></si></sst>')
    p = _xlsx(tmp_path / "dtd.xlsx", _row(1, '<c r="A1" t="s"><v>0</v></c>'), shared_xml=laughs)
    with pytest.raises(SpreadsheetError, match="DTD"):
        with open_workbook(p) as wb:
            list(wb.rows("核查结果"))


@pytest.mark.parametrize("content, fragment", [
    (b"", "is empty"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "97-2003"),
    (b"PK\x03\x04garbage", "not an .xlsx"),
    (b"name,value\n", "not an .xlsx"),
])
def test_files_that_are_not_workbooks(tmp_path, content, fragment):
    p = tmp_path / "x.xlsx"
    p.write_bytes(content)
    with pytest.raises(SpreadsheetError, match=fragment):
        open_workbook(p)


def test_a_zip_that_is_not_a_workbook(tmp_path):
    p = tmp_path / "x.xlsx"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(SpreadsheetError, match="no xl/workbook.xml"):
        open_workbook(p)


def test_round_trip_of_a_written_workbook(tmp_path):
    df = pd.DataFrame({"patch_id": ["K1", "=K2"], "area_m2": [1.5, 2.0], "d": [dt.date(2024, 9, 12)] * 2})
    write_workbook(tmp_path / "r.xlsx", [("results", df)])
    back = read_table(tmp_path / "r.xlsx")
    assert list(back.columns) == ["patch_id", "area_m2", "d"]
    assert back["patch_id"].tolist() == ["K1", "'=K2"] and back["area_m2"].tolist() == [1.5, 2.0]
    assert back["d"].iloc[0] == dt.datetime(2024, 9, 12)


# ---------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16"])
def test_csv_encodings_excel_writes(tmp_path, encoding):
    p = tmp_path / "r.csv"
    p.write_bytes("图斑编号,核查结论,核查人\nYB-2024-000001,确认,李工\n".encode(encoding))
    t = read_csv_rows(p)
    assert t.header == ["图斑编号", "核查结论", "核查人"] and t.rows == [(2, ["YB-2024-000001", "确认", "李工"])]


@pytest.mark.parametrize("sep", [";", "\t"])
def test_csv_separators(tmp_path, sep):
    p = tmp_path / "r.csv"
    p.write_text(sep.join(["图斑编号", "核查结论"]) + "\n" + sep.join(["YB-1", "确认"]) + "\n", encoding="utf-8")
    assert read_csv_rows(p).rows == [(2, ["YB-1", "确认"])]


def test_csv_extra_cells_are_kept_for_the_caller_to_report(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("a,b\n1,2,3\n", encoding="utf-8")
    assert read_csv_rows(p).rows == [(2, ["1", "2", "3"])]


def test_csv_that_cannot_be_decoded_or_read(tmp_path):
    p = tmp_path / "r.csv"
    p.write_bytes(b"\xff\xfe\x00")  # a UTF-16 BOM and half a character
    with pytest.raises(SpreadsheetError, match="UTF-16"):
        read_csv_rows(p)
    p.write_bytes(b"a,b\n" + b'"' + b"x" * 200_000 + b'",1\n')
    with pytest.raises(SpreadsheetError, match="record"):
        read_csv_rows(p)
    p.write_bytes(b"")
    with pytest.raises(SpreadsheetError, match="empty"):
        read_csv_rows(p)


def test_read_table_refuses_repeated_columns(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("patch_id,status,status\nK1,a,b\n", encoding="utf-8")
    with pytest.raises(SpreadsheetError, match="status"):
        read_table(p)
