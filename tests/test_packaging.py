"""The packages a user installs: tools/check_packages.py builds the sdist and the wheel, installs each into a fresh venv and checks they run, are stripped and ship no generated sources (a few minutes: two builds, two venvs)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_sdist_and_wheel_install_and_run():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "check_packages.py")],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout.splitlines()
    assert [line.split(":")[0] for line in said] == ["wheel", "sdist"], said
