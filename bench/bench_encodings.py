"""How often encoding detection reads a legacy-encoded file right, refuses it, or reads it wrong,
against chardet's own first choice in the same run.

Run:  .venv/bin/python bench/bench_encodings.py [--rows 3 8 20 50 200] [--seeds 2] [--json PATH]

Each file is what an export of people's records looks like: Faker's names, cities, streets and jobs
for one locale (`id;name;city;street;job`, one row per person), encoded in that locale's legacy
encoding, characters it lacks replaced by '?'. Files whose bytes are all ASCII are skipped (every
encoding reads them alike). For each file:

- harmonizer: `choose_encoding` (harmonizer_pipeline/ingest/readers/encoding.py) as the readers
  call it; right when its encoding decodes the bytes to the original text, refused when it raises
  the one-line error that names the `encoding:` hint;
- chardet: `chardet.detect` with the same encoding eras, taken as it answers (it never refuses).

A wrong reading is silent mojibake in the raw layer, so the figure that matters is `wrong`, which
must be 0 for harmonizer; `refused` costs the user one line of configuration. Exit status 1 when
harmonizer read any file wrong. Faker is in the bench extra.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import chardet
from faker import Faker

from harmonizer_pipeline.ingest.readers.base import ReadError
from harmonizer_pipeline.ingest.readers.encoding import _ERAS, choose_encoding

LOCALES = [
    *(
        (locale, "cp1252")
        for locale in ("es_ES", "es_MX", "it_IT", "fr_FR", "fr_CA", "pt_PT", "pt_BR", "de_DE", "de_AT", "nl_NL", "sv_SE", "da_DK", "fi_FI", "no_NO", "en_IE")
    ),
    *((locale, "cp1250") for locale in ("pl_PL", "cs_CZ", "hu_HU", "hr_HR", "sk_SK", "sl_SI", "ro_RO")),
    *((locale, "cp1251") for locale in ("ru_RU", "uk_UA")),
    *((locale, "cp1257") for locale in ("lv_LV", "lt_LT", "et_EE")),
    ("tr_TR", "cp1254"),
    ("el_GR", "cp1253"),
    ("he_IL", "cp1255"),
    ("ja_JP", "cp932"),
    ("zh_CN", "gb18030"),
    ("ko_KR", "cp949"),
    ("fr_FR", "iso8859-15"),
    ("pl_PL", "iso8859-2"),
    ("ru_RU", "koi8-r"),
]


def export(locale: str, rows: int, seed: int) -> str:
    fake = Faker(locale)
    fake.seed_instance(seed)
    lines = [f"{n};{fake.name()};{fake.city()};{fake.street_address().replace(chr(10), ' ')};{fake.job()}" for n in range(rows)]
    return "id;name;city;street;job\n" + "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[3, 8, 20, 50, 200])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    outcomes: dict[str, Counter] = {"harmonizer": Counter(), "chardet": Counter()}
    wrong: list[str] = []
    seconds = 0.0
    for locale, encoding in LOCALES:
        for rows in args.rows:
            for seed in range(1, args.seeds + 1):
                raw = export(locale, rows, seed).encode(encoding, errors="replace")
                if raw.isascii():
                    continue
                truth = raw.decode(encoding)
                started = time.perf_counter()
                try:
                    chosen = choose_encoding(Path(f"{locale}.csv"), raw, True, None)[0]
                    verdict = "right" if raw.decode(chosen) == truth else "wrong"
                except ReadError:
                    verdict = "refused"
                seconds += time.perf_counter() - started
                outcomes["harmonizer"][verdict] += 1
                if verdict == "wrong":
                    wrong.append(f"{locale} {encoding} {rows} rows, seed {seed}: read as {chosen}")
                guess = chardet.detect(raw, compat_names=False, encoding_era=_ERAS)["encoding"]
                outcomes["chardet"]["right" if guess and raw.decode(guess, errors="replace") == truth else "wrong"] += 1

    files = sum(outcomes["harmonizer"].values())
    print(f"{files} files ({len(LOCALES)} locale and encoding pairs, rows {args.rows}, {args.seeds} seeds)")
    for name, counted in outcomes.items():
        print(f"{name:<11} right {counted['right']:>4}  refused {counted['refused']:>4}  wrong {counted['wrong']:>4}")
    print(
        f"harmonizer's wrong readings per chardet's: {outcomes['harmonizer']['wrong']} / {outcomes['chardet']['wrong']}; {1000 * seconds / files:.1f} ms per file"
    )
    for line in wrong:
        print("  wrong:", line)
    if args.json:
        args.json.write_text(json.dumps({name: dict(counted) for name, counted in outcomes.items()}, indent=2))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
