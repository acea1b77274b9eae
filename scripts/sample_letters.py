"""Render the README's sample lawyer letters (zh-CN and en) to docs/img/ as PNG (needs pdftoppm
from poppler-utils): `.venv/bin/python scripts/sample_letters.py`."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from arrears.batches.letters import Letter, LetterBill, render_letter  # noqa: E402

D = date(2026, 11, 16)
SAMPLES = {
    "zh": Letter(D, "3100123456", "李娜", "上海市浦东新区建设路2号501室", "zh-CN", 77, 168_050, 10_779,
                 (LetterBill("2026-07", 96_020, date(2026, 8, 31), 77, 7_394),
                  LetterBill("2026-08", 72_030, date(2026, 9, 30), 47, 3_385))),
    "en": Letter(D, "3100654321", "Acme Trading (Shanghai) Co., Ltd.", "广州市天河区中山路3号 Room 1208",
                 "en", 67, 320_000, 62_580,
                 (LetterBill("2025-12", 300_000, date(2026, 9, 10), 67, 60_300),
                  LetterBill("2026-08", 20_000, date(2026, 9, 20), 57, 2_280))),
}


def main() -> None:
    out = REPO / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for lang, letter in SAMPLES.items():
            pdf = Path(tmp) / f"{lang}.pdf"
            pdf.write_bytes(render_letter(letter))
            target = out / f"lawyer_letter_{lang}"
            subprocess.run(["pdftoppm", "-png", "-r", "90", "-singlefile", str(pdf), str(target)],
                           check=True)
            print(f"wrote {target}.png")


if __name__ == "__main__":
    main()
