"""Encodings: real text in each legacy encoding reads back exactly, UTF-16/32 without a BOM too, and an
unsure detection fails the file with the hint to set instead of loading mojibake."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harmonizer_pipeline.cli import main
from harmonizer_pipeline.ingest.readers import ReadError, ReadHints, open_table
from harmonizer_pipeline.ingest.readers.server_csv import ServerCsv

SAMPLE_DATA = Path(__file__).parents[2] / "harmonizer_pipeline" / "sample_data" / "landing"
HINT = "set format.encoding for the source in harmonizer.yaml"

RUSSIAN = """фамилия;имя;город;примечание
Иванов;Сергей;Москва;Аллергия на пенициллин
Петрова;Анна;Санкт-Петербург;Повторный приём через две недели
Смирнов;Дмитрий;Новосибирск;Жалобы на головную боль
Кузнецова;Ольга;Екатеринбург;Направлена к кардиологу
"""
CZECH = """příjmení;jméno;město;poznámka
Novák;Jiří;Praha;Alergie na pyl, kontrola za měsíc
Dvořáková;Kateřina;Brno;Bolest zad, doporučena rehabilitace
Černý;Tomáš;Ostrava;Zvýšený tlak, užívá léky
Svobodová;Lenka;Plzeň;Pravidelná prohlídka bez nálezu
"""
POLISH = """nazwisko;imię;miasto;uwagi
Wiśniewski;Paweł;Łódź;Ból głowy, skierowanie do neurologa
Wójcik;Małgorzata;Kraków;Wizyta kontrolna za dwa tygodnie
Kamiński;Grzegorz;Wrocław;Uczulenie na orzechy
Zielińska;Agnieszka;Gdańsk;Ciśnienie w normie
"""
CROATIAN = """prezime;ime;grad;napomena
Horvat;Stjepan;Zagreb;Alergija na penicilin
Kovačević;Ivana;Split;Kontrola za dva tjedna
Babić;Željko;Rijeka;Povišen krvni tlak
Marić;Đurđica;Osijek;Bol u leđima
"""
JAPANESE = """氏名,フリガナ,都市,備考
山田太郎,ヤマダタロウ,東京都,定期検診の予約あり
佐藤花子,サトウハナコ,大阪市,花粉症の薬を処方
鈴木一郎,スズキイチロウ,名古屋市,来週再診予定
高橋美咲,タカハシミサキ,札幌市,血圧がやや高い
"""
CHINESE = """姓名,城市,电话,备注
张伟,北京市,13800138000,高血压，需要定期复查
王芳,上海市,13912345678,对青霉素过敏
李娜,广州市,13698765432,下周三复诊
刘洋,深圳市,13511112222,体检结果正常
"""
KOREAN = """이름,도시,전화,메모
김민준,서울특별시,010-1234-5678,다음 주 재진 예약
이서연,부산광역시,010-2345-6789,페니실린 알레르기
박지훈,인천광역시,010-3456-7890,혈압이 약간 높음
최수아,대구광역시,010-4567-8901,정기 검진 결과 정상
"""
GREEK = """επώνυμο;όνομα;πόλη;σημειώσεις
Παπαδόπουλος;Γιώργος;Αθήνα;Αλλεργία στην πενικιλίνη
Αγγέλου;Άγγελος;Άρτα;Επανέλεγχος σε δύο εβδομάδες
Γεωργίου;Δημήτρης;Πάτρα;Πονοκέφαλος και ζάλη
Κωνσταντίνου;Ελένη;Ηράκλειο;Φυσιολογικές εξετάσεις
"""
GERMAN = """Nachname;Vorname;Ort;Bemerkung
Müller;Jürgen;Köln;Größe 1,82 m – Gewicht 80 kg
Schäfer;Björn;München;Überweisung zum Orthopäden
Groß;Käthe;Düsseldorf;„Kontrolle“ in zwei Wochen
Weiß;Sören;Nürnberg;Allergie: Gräser, Bäume
"""
FRENCH = """nom;prénom;ville;remarque
Lefèvre;Hélène;Besançon;Œdème léger, contrôle dans 8 jours
Garçon;François;Orléans;Prix de la consultation : 25 €
Dubœuf;Zoé;Nîmes;Allergie aux arachides
Côté;Jérôme;Besançon;Pression artérielle élevée
"""


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def rows_read(path: Path, hints: ReadHints = ReadHints()) -> tuple[str | None, str, list[list[str]]]:
    """(encoding, its evidence line, header + data rows as the readers give them)."""
    table = open_table(path, hints)
    frame = next(table.chunks())
    columns = table.detection.columns
    return table.detection.encoding, table.detection.evidence[1], [columns, *frame[columns].to_numpy().tolist()]


def rows_of(text: str) -> list[list[str]]:
    delimiter = ";" if ";" in text.partition("\n")[0] else ","
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


@pytest.mark.parametrize(
    ("text", "codec", "encoding", "evidence"),
    [
        (RUSSIAN, "cp1251", "cp1251", "not utf-8 (byte 0xf4 at offset 0); chardet: cp1251 (Russian), score 0.465"),
        (RUSSIAN, "iso8859_5", "iso8859-5", "not utf-8 (byte 0xe4 at offset 0); chardet: iso8859-5 (Russian), score 0.474"),
        (RUSSIAN, "koi8_r", "koi8-r", "not utf-8 (byte 0xc6 at offset 0); chardet: koi8-r (Russian), score 0.454"),
        (CZECH, "cp1250", "cp1250", "not utf-8 (byte 0xf8 at offset 1); chardet: cp1250 (Czech), score 0.142"),
        (POLISH, "cp1250", "cp1250", "not utf-8 (byte 0xea at offset 12); chardet: cp1250 (Polish), score 0.189"),
        (CROATIAN, "iso8859_2", "iso8859-2", "not utf-8 (byte 0xe8 at offset 74); chardet: iso8859-2 (Croatian), score 0.123"),
        (JAPANESE, "shift_jis", "cp932", "not utf-8 (byte 0x8e at offset 0); chardet: cp932 (Japanese), score 0.330"),
        (CHINESE, "gb18030", "gb18030", "not utf-8 (byte 0xd0 at offset 0); chardet: gb18030 (Chinese), score 0.272"),
        (KOREAN, "euc_kr", "cp949", "not utf-8 (byte 0xc0 at offset 0); chardet: cp949 (Korean), score 0.469"),
        (GREEK, "iso8859_7", "iso8859-7", "not utf-8 (byte 0xe5 at offset 0); chardet: iso8859-7 (Modern Greek), score 0.369"),
        (GERMAN, "cp1252", "cp1252", "not utf-8 (byte 0xfc at offset 32); chardet: cp1252 (German), score 0.076"),
        (FRENCH, "iso8859_15", "iso8859-15", "not utf-8 (byte 0xe9 at offset 6); chardet: iso8859-15 (French), score 0.080"),
    ],
)
def test_legacy_encodings_read_back_exactly(tmp_path, text, codec, encoding, evidence):
    path = write(tmp_path, "patients.csv", text.encode(codec))
    assert rows_read(path) == (encoding, evidence, rows_of(text))


@pytest.mark.parametrize(
    ("codec", "evidence"),
    [
        ("utf-16-le", "no BOM; NUL bytes at 19 odd and 2 even offsets of the first 228 → utf-16-le"),
        ("utf-16-be", "no BOM; NUL bytes at 2 odd and 19 even offsets of the first 228 → utf-16-be"),
        ("utf-32-le", "no BOM; the 4th byte of each of the first 115 4-byte units is NUL → utf-32-le"),
        ("utf-32-be", "no BOM; the 1st byte of each of the first 115 4-byte units is NUL → utf-32-be"),
    ],
)
def test_utf16_and_utf32_without_bom_by_their_nul_bytes(tmp_path, codec, evidence):
    """Japanese: 一 (U+4E00) and others put NULs at the other parity, which the 90% rule allows."""
    path = write(tmp_path, "patients.csv", JAPANESE.replace("来週", "一週").encode(codec))
    assert rows_read(path) == (codec, evidence, rows_of(JAPANESE.replace("来週", "一週")))


def test_greek_utf16le_is_not_taken_for_big_endian(tmp_path):
    """No ASCII letters, only the delimiters and line ends give NULs: still at odd offsets."""
    path = write(tmp_path, "patients.csv", GREEK.encode("utf-16-le"))
    assert rows_read(path) == ("utf-16-le", "no BOM; NUL bytes at 28 odd and 0 even offsets of the first 456 → utf-16-le", rows_of(GREEK))


def test_the_demo_cp1252_sample_stays_cp1252():
    encoding, evidence, rows = rows_read(SAMPLE_DATA / "clinic_b" / "export.csv")
    assert (encoding, evidence) == ("cp1252", "not utf-8 (byte 0xfc at offset 54); chardet: cp1252 (German), score 0.025")
    assert rows[1] == ["B-001", "Marie Meyer", "01.09.1978", "M", "München"]


def test_two_scripts_equally_likely_fail_with_the_hint(tmp_path):
    """Rows as a generator makes them (Faker's lt_LT): their three accented letters are Lithuanian in
    cp1257 and, as û and ë, as good Western letters in cp1252; chardet's scores are 9% apart."""
    text = """id;name;city;street;job
3;Adrija Naujokas;Neringamouth;9877 Ramūnas Via Apt. 947;Insurance broker
4;Ignė Naujokas;Kaupasborough;591 Kazlauskas Via Apt. 109;Artist
5;Aurelija Ambrasas;Port Vakarėberg;30600 Gailys Extensions Apt. 011;Broadcast journalist
"""
    path = write(tmp_path, "names.csv", text.encode("cp1257"))
    with pytest.raises(ReadError) as caught:
        open_table(path)
    assert str(caught.value) == (
        "names.csv: cannot tell the encoding (cp1257 (Lithuanian), score 0.090, or cp1252 (Finnish), score 0.082: both likely): " + HINT
    )


@pytest.mark.parametrize(
    ("text", "codec", "evidence"),
    [
        # cp1250 reads ñ as ń ('Nuńez'): chardet ranks it first, as Hungarian, which has no ń
        (
            "id;nombre;ciudad\n1;José Núñez;Cádiz\n2;María Peña;León\n3;Ángel Muñoz;Málaga\n",
            "cp1252",
            "not utf-8 (byte 0xe9 at offset 22); chardet: cp1252 (Spanish), score 0.025; not cp1250 (Hungarian), score 0.026: only 70% of its accented letters fit one of its languages (Czech)",
        ),
        # 'Jiří' in cp1257 is 'Jiįų': Lithuanian has į and ų, not é
        # cp1252 reads 'imię Łódź' as 'imiê £ódŸ': a capital after small letters, which no language writes
        (
            "imię\nŁódź\n",
            "cp1250",
            "not utf-8 (byte 0xea at offset 3); chardet: cp1250 (Polish), score 0.031; not cp1252 (Finnish), score 0.054: only 67% of its accented letters fit one of its languages (Welsh)",
        ),
        (
            "jméno\nJiří\n",
            "cp1250",
            "not utf-8 (byte 0xe9 at offset 2); chardet: cp1250 (Czech), score 0.024; not cp1257 (Lithuanian), score 0.026: only 33% of its accented letters fit one of its languages (Lithuanian)",
        ),
    ],
)
def test_a_reading_no_language_of_its_encoding_writes_is_set_aside(tmp_path, text, codec, evidence):
    encoding, why, rows = rows_read(write(tmp_path, "names.csv", text.encode(codec)))
    assert (encoding, why, rows) == (codec, evidence, rows_of(text))


def test_too_few_accented_letters_to_tell_two_alphabets_fail_with_the_hint(tmp_path):
    """'Noël' is 'Noėl' in cp1257: one letter, as likely French as Lithuanian."""
    path = write(tmp_path, "names.csv", "nom\nNoël\n".encode("cp1252"))
    with pytest.raises(ReadError) as caught:
        open_table(path)
    assert str(caught.value) == (
        "names.csv: cannot tell the encoding (not utf-8 (byte 0xeb at offset 6); chardet: cp1257 (Lithuanian), score 0.014; 1 accented letter read as well in cp1252): "
        + HINT
    )


def test_too_little_text_fails_with_the_hint(tmp_path):
    path = write(tmp_path, "short.csv", "a;b\n1;é\n".encode("latin-1"))
    with pytest.raises(ReadError) as caught:
        open_table(path)
    assert str(caught.value) == (
        "short.csv: cannot tell the encoding (not utf-8 (byte 0xe9 at offset 6); chardet: cp1255 (Hebrew), score 0.002, too little text to tell): " + HINT
    )


def test_the_hint_settles_what_detection_cannot(tmp_path):
    path = write(tmp_path, "names.csv", "nom\nNoël\n".encode("cp1252"))
    assert rows_read(path, ReadHints(encoding="cp1252")) == ("cp1252", "encoding cp1252 from hints", [["nom"], ["Noël"]])


def test_a_byte_the_detected_encoding_lacks_after_the_head_names_its_line(tmp_path):
    """Detection reads the first MiB; 0x98 is undefined in cp1251 and comes on line 40,002."""
    body = "".join(f"{n};Кузнецова;Санкт-Петербург\n" for n in range(40_000)).encode("cp1251")
    assert len(body) > 1 << 20
    path = write(tmp_path, "big.csv", "id;фамилия;город\n".encode("cp1251") + body + b"40000;\x98;x\n")
    table = open_table(path)
    assert table.detection.encoding == "cp1251"
    with pytest.raises(ReadError) as caught:
        list(table.chunks())
    assert (str(caught.value), caught.value.line) == ("big.csv: line 40002: byte 0x98 is not valid cp1251", 40002)


@pytest.mark.parametrize(
    ("encoding", "supported"),
    [("cp1252", True), ("cp1251", False), ("cp932", False), ("gb18030", False), ("cp949", False), ("utf-16-le", False), ("utf-32-be", False)],
)
def test_server_side_csv_only_where_postgres_gets_the_same_text(encoding, supported):
    """Multi-byte encodings can split a character across a block and carry ASCII bytes in trail bytes."""
    assert ServerCsv.supports(encoding, ";", '"') is supported


def test_a_detected_legacy_file_goes_through_the_exact_reader(tmp_path):
    assert open_table(write(tmp_path, "ru.csv", RUSSIAN.encode("cp1251"))).server_csv() is None
    assert open_table(write(tmp_path, "ja.csv", JAPANESE.encode("utf-16-le"))).server_csv() is None


def test_inspect_shows_the_encoding_and_its_score(tmp_path):
    path = write(tmp_path, "patients.csv", POLISH.encode("cp1250"))
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == "encoding   cp1250"
    assert "  - not utf-8 (byte 0xea at offset 12); chardet: cp1250 (Polish), score 0.189" in lines
    report = json.loads(CliRunner().invoke(main, ["inspect", str(path), "--json"]).output)
    assert (report["encoding"], report["evidence"][1]) == ("cp1250", "not utf-8 (byte 0xea at offset 12); chardet: cp1250 (Polish), score 0.189")


def test_inspect_names_the_hint_when_unsure(tmp_path):
    path = write(tmp_path, "names.csv", "nom\nNoël\n".encode("cp1252"))
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().endswith(": " + HINT)
