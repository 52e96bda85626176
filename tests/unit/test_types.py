"""The type checker holds the seams: mypy, strict, over the whole package (pyproject.toml's [tool.mypy]), and the
lab app offers every service a screen may ask of it (`ui.lab.Lab`)."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).parents[2]


def test_the_package_type_checks_strictly() -> None:
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--no-incremental"])
    assert status == 0, out + err


def test_the_app_offers_what_screens_ask_of_it(tmp_path: Path) -> None:
    offered = tmp_path / "offered.py"
    offered.write_text(
        "from amqp_lab.ui.app import AmqpLabApp\nfrom amqp_lab.ui.lab import Lab\n\n\n"
        "def lab(app: AmqpLabApp) -> Lab:\n    return app\n"
    )
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--no-incremental", str(offered)])
    assert status == 0, out + err
