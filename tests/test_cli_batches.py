"""`arrears manifest` and `arrears bureau` hand their arguments to the batch verifiers."""
import hashlib

from arrears.cli import main


def test_manifest_verify_through_the_arrears_command(tmp_path, capsys):
    letter = tmp_path / "A1.pdf"
    letter.write_bytes(b"%PDF-1.4 letter")
    digest = hashlib.sha256(letter.read_bytes()).hexdigest()
    (tmp_path / "manifest.csv").write_text(
        f"account_id,file,outstanding,late_fee,sha256\nA1,A1.pdf,100.00,1.00,{digest}\n")
    assert main(["manifest", "verify", str(tmp_path)]) == 0
    assert "every sha256 matches" in capsys.readouterr().out
    letter.write_bytes(b"%PDF-1.4 lettex")
    assert main(["manifest", "verify", str(tmp_path)]) == 1
    assert "A1.pdf: sha256" in capsys.readouterr().err


def test_bureau_verify_reports_an_unreadable_file(tmp_path, capsys):
    bad = tmp_path / "ARREARS.txt"
    bad.write_text("not a bureau file\n")
    assert main(["bureau", "verify", str(bad)]) != 0
