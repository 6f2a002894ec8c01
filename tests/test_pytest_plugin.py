"""The pytest plugin ``anypool.pytest_plugin``: the ``anypool_backend`` fixture, in pytester."""

from __future__ import annotations

import pytest

import anypool

pytest_plugins = ["pytester"]

LOCAL = [
    b for b in ("serial", "thread", "process", "asyncio") if b in anypool.get_available_backends()
]

USER_TEST = """
import pytest

seen = []

def test_backend(anypool_backend):
    assert isinstance(anypool_backend, str)
    seen.append(anypool_backend)

def test_report():
    print("SEEN=" + ",".join(seen))
"""

# the user's suite: runs a real map on each backend
USER_MAP = """
import anypool

def square(x):
    return x * x

async def asquare(x):
    return x * x

def test_map(anypool_backend):
    fn = asquare if anypool_backend == "asyncio" else square
    assert anypool.map(fn, range(5), backend=anypool_backend) == [0, 1, 4, 9, 16]
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-v", "-s", *args)


def test_plugin_is_loaded_by_its_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USER_TEST)
    result = _run(pytester, "--trace-config")
    result.stdout.fnmatch_lines(["*anypool*pytest_plugin*"])


def test_one_case_per_backend_with_readable_ids(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USER_TEST)
    result = _run(pytester, "-ra")
    for name in LOCAL:
        result.stdout.fnmatch_lines([f"*::test_backend[[]{name}[]] PASSED*"])
    result.stdout.fnmatch_lines(["*SEEN=" + ",".join(LOCAL)])
    assert "[auto]" not in result.stdout.str()
    # dask is listed but skipped (with the reason) unless asked for
    result.stdout.fnmatch_lines(["*::test_backend[[]dask[]] SKIPPED*"])
    result.stdout.fnmatch_lines(["SKIPPED*--anypool-dask*"])
    result.assert_outcomes(passed=len(LOCAL) + 1, skipped=1)


def test_real_map_passes_on_every_local_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USER_MAP)
    result = _run(pytester)
    result.assert_outcomes(passed=len(LOCAL), skipped=1)


def test_pinning_overrides_the_set(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("anypool_backend", ["thread", "process"])
        def test_pinned(anypool_backend):
            assert anypool_backend in ("thread", "process")

        @pytest.mark.parametrize("anypool_backend", ["auto"])
        def test_auto(anypool_backend):
            assert anypool_backend == "auto"
        """
    )
    result = _run(pytester)
    result.stdout.fnmatch_lines(
        ["*test_pinned[[]thread[]] PASSED*", "*test_pinned[[]process[]] PASSED*"]
    )
    result.stdout.fnmatch_lines(["*test_auto[[]auto[]] PASSED*"])
    result.assert_outcomes(passed=3)


def test_pinning_a_class_or_module(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import pytest

        pytestmark = pytest.mark.parametrize("anypool_backend", ["serial"])

        def test_module(anypool_backend):
            assert anypool_backend == "serial"
        """,
        test_cls="""
        import pytest

        @pytest.mark.parametrize("anypool_backend", ["thread"])
        class TestPinned:
            def test_method(self, anypool_backend):
                assert anypool_backend == "thread"
        """,
    )
    result = _run(pytester)
    result.stdout.fnmatch_lines(["*test_module[[]serial[]] PASSED*"])
    result.stdout.fnmatch_lines(["*test_method[[]thread[]] PASSED*"])
    result.assert_outcomes(passed=2)


def test_pinned_dask_is_skipped_without_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("anypool_backend", ["dask"])
        def test_pinned(anypool_backend):
            raise AssertionError("must not run")
        """
    )
    _run(pytester).assert_outcomes(skipped=1)


def test_option_narrows_the_set(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USER_TEST)
    result = _run(pytester, "--anypool-backends=thread,serial")
    result.stdout.fnmatch_lines(["*SEEN=thread,serial"])
    result.assert_outcomes(passed=3)


def test_ini_setting_narrows_the_set(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nanypool_backends = serial\n")
    pytester.makepyfile(USER_TEST)
    result = _run(pytester)
    result.stdout.fnmatch_lines(["*SEEN=serial"])
    # the option wins over the ini setting
    result = _run(pytester, "--anypool-backends=thread")
    result.stdout.fnmatch_lines(["*SEEN=thread"])


def test_pyproject_list_setting(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\nanypool_backends = ["thread", "serial"]\n'
    )
    pytester.makepyfile(USER_TEST)
    _run(pytester).stdout.fnmatch_lines(["*SEEN=thread,serial"])


@pytest.mark.parametrize("value", ["thread,bogus", ","])
def test_bad_option_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    pytester.makepyfile(USER_TEST)
    result = _run(pytester, f"--anypool-backends={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    if value == ",":
        result.stderr.fnmatch_lines(["*--anypool-backends names no backend*"])
    else:
        result.stderr.fnmatch_lines(["*unknown anypool backend(s) 'bogus'; valid: serial, thread*"])


def test_unused_plugin_adds_no_parametrisation(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = _run(pytester)
    result.stdout.fnmatch_lines(["*::test_plain PASSED*"])
    result.assert_outcomes(passed=1)


def test_plugin_import_is_cheap() -> None:
    import subprocess
    import sys

    code = (
        "import sys, anypool.pytest_plugin; "
        "heavy = [m for m in ('anypool._core._registry', 'concurrent.futures', 'asyncio', "
        "'multiprocessing', 'dask', 'distributed') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [["--anypool-dask"], ["--anypool-backends=serial,dask"]])
def test_dask_runs_when_asked_for(pytester: pytest.Pytester, args: list[str]) -> None:
    if "dask" not in anypool.get_available_backends():
        pytest.skip("needs anypool[dask]")
    pytester.makepyfile(USER_TEST)  # the body does not start a cluster: this stays fast
    result = _run(pytester, *args)
    result.stdout.fnmatch_lines(["*::test_backend[[]dask[]] PASSED*"])


def test_unavailable_backend_is_skipped_with_a_reason(pytester: pytest.Pytester) -> None:
    # a registered backend whose dependency is missing (in a subprocess: the registry is global)
    pytester.makeconftest(
        """
        import anypool

        def _missing():
            raise LookupError("needs somelib")

        anypool.register_backend("fancy", _missing)
        """
    )
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", "-ra")
    result.stdout.fnmatch_lines(["*::test_backend[[]fancy[]] SKIPPED*"])
    result.stdout.fnmatch_lines(["SKIPPED*'fancy' is not available here*"])
