"""The sandbox of ``ddpm verify`` against hostile files.

None passes, nothing escapes, nothing outlives verify.

Two courses drive the files in ``tests/verify_hostile``: the sandbox's own probe course (the observer
imports the file and emits ``answer()``; 42 passes), which runs in about a second a file and tests the
child, the channel and the sandbox alone; and the 02460 course, which is what graders run. Every
hostile file is a wrong DDPM (its ``sample`` returns zeros, its ``answer`` 0) plus an attack; each
must end in exit 1 or 2, never 0, and the correct files of ``tests/verify_cases`` must keep exit 0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ddpm.verify import sandbox
from ddpm.verify.formats import summary_table, to_gradescope, to_json, to_junit
from ddpm.verify.report import FAIL, PASS, UNDECIDED, Decision, Outcome, Report
from ddpm.verify.runner import expand_paths, verify_file, verify_many

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = Path(__file__).parent / "verify_hostile"
CASES = Path(__file__).parent / "verify_cases"
HOSTILE_FILES = sorted(p.name for p in HOSTILE.glob("h_*.py"))
ORPHAN_MARK = "987.654321"

sys.path.insert(0, str(ROOT))
from tests.verify_hostile._probe_course import COURSE as PROBE  # noqa: E402 - the tests folder put on the path above
from tests.verify_hostile._probe_course import ProbeCourse  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux's")


def probe(path: Path, **kw) -> Report:
    return verify_file(path, PROBE, timeout=kw.pop("timeout", 120), **kw)


def cli(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ddpm.verify", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def sleeps_left() -> list[str]:
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"sleep") and ORPHAN_MARK.encode() in cmd:
                found.append(d)
    return found


def no_sleeps_left(seconds: float = 5.0) -> bool:
    """Whether every marked sleep is gone, allowing a killed one a moment to vanish from /proc."""
    deadline = time.monotonic() + seconds
    while sleeps_left():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(autouse=True)
def _kill_marked_sleeps():
    yield
    for pid in sleeps_left():  # a failed test must not leave its sleeps behind either
        try:
            os.kill(int(pid), 9)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------------------
# The probe course: the child, the channel and the sandbox alone.


def test_a_correct_file_passes_in_the_sandbox(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text("import torch\n\ndef answer():\n    return int(torch.tensor(6 * 7))\n")
    r = probe(good)
    assert r.exit_status == 0, r.to_table()
    assert [(o.spec, o.status) for o in r.outcomes] == [("answer", PASS), ("loaded", PASS)]
    sandbox_note = next(n for n in r.notes if n.startswith("sandbox: "))
    assert "limits: address space 3 GiB" in sandbox_note
    if sandbox.landlock_abi() >= 1:
        assert "Landlock ABI" in sandbox_note and "writes only in the private directory" in sandbox_note
        assert "reads only of Python, its packages, the system's libraries, ddpm and the file itself" in sandbox_note
    if sandbox.seccomp_available() is None:
        assert "no network: a seccomp filter refuses every new socket" in sandbox_note
    assert ("MISSING" in sandbox_note) == bool(sandbox.missing_here()), sandbox_note


@pytest.mark.parametrize("name", HOSTILE_FILES)
def test_no_hostile_file_passes_the_probe_course(name: str, tmp_path: Path) -> None:
    folder = tmp_path / "student"
    folder.mkdir()
    shutil.copy(HOSTILE / name, folder / name)
    r = probe(folder / name)
    assert r.exit_status in (1, 2), r.to_table()
    assert not any(o.spec == "answer" and o.status == PASS for o in r.outcomes), r.to_table()
    assert not list(tmp_path.glob("**/pwned*")), "the file wrote outside its private directory"
    assert no_sleeps_left(), "a process of the file outlived verify"


def test_the_memory_limit_counts_from_what_the_child_already_maps(tmp_path: Path, monkeypatch) -> None:
    """A CUDA build of torch maps ~3 GiB of libraries at import: a fixed 3 GiB total refused it before the
    file ran (every verify "could not verify" on Python 3.12 with PyPI's torch). Stand-in: a sitecustomize
    that reserves 4 GiB of address space (prot 0, nothing resident) in the child before anything loads."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import mmap\nRESERVED = mmap.mmap(-1, 4 << 30, flags=mmap.MAP_PRIVATE, prot=0)\n"
    )
    env = sandbox._env
    monkeypatch.setattr(
        sandbox, "_env", lambda private: {**env(private), "PYTHONPATH": f"{env(private)['PYTHONPATH']}:{site}"}
    )
    good = tmp_path / "good.py"
    good.write_text(
        "import torch\n\ndef answer():\n    return int(torch.ones(2**27, dtype=torch.uint8).sum()) * 0 + 42\n"
    )
    r = probe(good)
    assert r.exit_status == 0, r.to_table()
    note = next(n for n in r.notes if n.startswith("sandbox: "))
    mapped = float(note.split("beyond the ")[1].split(" GiB")[0])
    assert mapped >= 4.0, note  # the 4 GiB reserved counted as the child's own, the file given 3 GiB more


def test_forged_result_files_and_frames_are_could_not_verify() -> None:
    for name in ("h_result_file.py", "h_forged_frames.py"):
        r = probe(HOSTILE / name)
        assert r.exit_status == 2 and "not intact" in r.cannot_verify, r.to_table()
    r = probe(HOSTILE / "h_exit_at_import.py")
    assert r.exit_status == 2 and "ended before the verifier had finished" in r.cannot_verify


def test_writes_outside_the_private_directory_are_blocked(tmp_path: Path) -> None:
    if sandbox.landlock_abi() < 1:
        pytest.skip("this kernel has no Landlock: writes outside cannot be blocked without root")
    folder = tmp_path / "student"
    folder.mkdir()
    shutil.copy(HOSTILE / "h_write_outside.py", folder / "f.py")
    r = probe(folder / "f.py")
    out = " ".join(r.notes)
    assert "BLOCKED" in out and "WROTE" not in out, out
    assert not (folder / "pwned_here.txt").exists() and not (tmp_path / "pwned_above.txt").exists()


def test_the_graders_environment_is_not_visible(monkeypatch) -> None:
    monkeypatch.setenv("DDPM_GRADER_CANARY_SECRET", "canary-7f3a9c")
    r = probe(HOSTILE / "h_env.py")
    seen = next(n for n in r.notes if "ENV-SEEN" in n)  # the file did look, and said what it saw
    assert "canary-7f3a9c" not in seen and "DDPM_GRADER_CANARY_SECRET" not in seen, seen


def test_nothing_outlives_verify() -> None:
    r = probe(HOSTILE / "h_orphans.py")
    assert r.exit_status == 1
    assert no_sleeps_left()


def test_huge_output_is_counted_and_dropped_with_the_parent_bounded(tmp_path: Path) -> None:
    # VmHWM, the peak of this process's own memory, less its VmRSS before: ru_maxrss would carry pytest's peak
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[2]);"
        "from tests.verify_hostile._probe_course import COURSE;"
        "from ddpm.verify.runner import verify_file;"
        "kib = lambda key: int(next(l for l in open('/proc/self/status') if l.startswith(key)).split()[1]);"
        "before = kib('VmRSS:');"
        "r = verify_file(sys.argv[1], COURSE, timeout=300);"
        "print(json.dumps({'growth_kib': kib('VmHWM:') - before, 'notes': r.notes,"
        "'exit': r.exit_status}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(HOSTILE / "h_print_huge.py"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    result = json.loads(done.stdout)
    assert result["exit"] == 1
    note = next(n for n in result["notes"] if "to stdout" in n)
    assert f"wrote {200 * 2**20} bytes to stdout" in note and f"{200 * 2**20 - sandbox.OUTPUT_CAP} more bytes" in note
    # the parent's peak over what it held before verifying (torch: 0.2 GiB for a CPU build, 0.5 GiB for a
    # CUDA build); holding the output would add 200 MiB or more
    assert result["growth_kib"] < 100 * 1024, result["growth_kib"]


def test_a_huge_allocation_hits_the_limit_and_is_no_pass() -> None:
    r = probe(HOSTILE / "h_alloc_huge.py")
    assert r.exit_status == 1
    assert "can't allocate memory" in r.outcomes[1].detail or "MemoryError" in r.outcomes[1].detail, r.to_table()


def test_a_hang_is_stopped_at_the_time_limit_and_is_no_pass(tmp_path: Path) -> None:
    hang = tmp_path / "hang.py"
    hang.write_text(
        "import subprocess, time\nsubprocess.Popen(['sleep', '987.654321'], start_new_session=True)\n"
        "def answer():\n    time.sleep(600)\n"
    )
    r = probe(hang, timeout=8)
    assert r.exit_status == 2 and "did not finish within the time limit of 8 s" in r.cannot_verify
    assert no_sleeps_left()


def test_limits_hold_as_root_too(tmp_path: Path) -> None:
    raise_it = tmp_path / "raise_limit.py"
    raise_it.write_text(
        "import resource\nresource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2)\n"
        "def answer():\n    return 42\n"
    )
    r = probe(raise_it)
    assert r.exit_status == 1 and r.outcomes[1].status == FAIL, r.to_table()
    assert "ValueError" in r.outcomes[1].detail or "not allowed" in r.outcomes[1].detail


# ---------------------------------------------------------------------------------------------------------
# The parent's rules and the output formats, on reports built by hand.


def report(file: str, *statuses: str, error: str = "", cannot: str = "") -> Report:
    outcomes = [
        Outcome(
            f"spec{i}",
            s,
            f"detail {i}" if s != PASS else "",
            "[Ho20 eq. 4]",
            ("ddpm.py:3  x = 1",) if s == FAIL else (),
        )
        for i, s in enumerate(statuses)
    ]
    d = Decision(outcomes, ["a note"], error or None, cannot or None)
    return Report.of(file, d, {"T": 20}, claims={f"spec{i}": "a claim" for i in range(len(statuses))})


def test_gradescope_results_follow_the_autograder_format() -> None:
    reports = [report("a.py", PASS, PASS), report("b.py", PASS, FAIL), report("c.py", error="no DDPM")]
    g = to_gradescope(reports)
    assert g["score"] == 3.0 and len(g["tests"]) == 5
    for t in g["tests"]:
        assert set(t) == {"name", "score", "max_score", "status", "output"} and t["status"] in ("passed", "failed")
    failed = [t for t in g["tests"] if t["status"] == "failed"]
    assert failed[0]["name"] == "b.py: spec1 [Ho20 eq. 4]" and "ddpm.py:3  x = 1" in failed[0]["output"]
    assert failed[1]["output"] == "no DDPM"


def test_junit_has_a_testcase_per_spec_per_file() -> None:
    xml = to_junit([report("a.py", PASS, FAIL), report("b.py", PASS, UNDECIDED)])
    root = ET.fromstring(xml)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["a.py", "b.py"]
    cases = root.findall(".//testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("a.py", "spec0"),
        ("a.py", "spec1"),
        ("b.py", "spec0"),
        ("b.py", "spec1"),
    ]
    assert cases[1].find("failure") is not None and cases[3].find("error") is not None
    assert suites[0].get("failures") == "1" and suites[1].get("errors") == "1"


def test_summary_and_json_over_many_files() -> None:
    reports = [report("a.py", PASS), report("b.py", FAIL), report("c.py", cannot="own generator")]
    table = summary_table(reports)
    assert "b.py" in table and "FAIL: spec0" in table and "cannot verify: own generator" in table
    assert table.endswith("3 files: 1 pass, 1 fail, 1 could not be verified (exit 2)")
    data = json.loads(to_json(reports))
    assert data["exit_status"] == 2 and [f["file"] for f in data["files"]] == ["a.py", "b.py", "c.py"]


def test_a_directory_stands_for_its_files(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("")
    (tmp_path / "b.ipynb").write_text("{}")
    (tmp_path / "c.txt").write_text("")
    assert [p.name for p in expand_paths([tmp_path])] == ["a.py", "b.ipynb"]
    with pytest.raises(ValueError, match="no such file or directory"):
        expand_paths([tmp_path / "missing.py"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="without .py or .ipynb"):
        expand_paths([empty])


@pytest.mark.parametrize(
    "args, words",
    [
        (["--T", "1"], "--T must be at least 2"),
        (["--T", "100000"], "underflows in float32"),
        (["--beta-1", "1.5"], "beta_1"),
        (["--timeout", "0"], "--timeout must be a positive number"),
        (["--timeout", "nan"], "--timeout must be a positive number"),
    ],
)
def test_bad_options_are_one_line_errors(args: list[str], words: str, tmp_path: Path) -> None:
    done = cli(CASES / "correct_template.py", *args, cwd=tmp_path)
    assert done.returncode == 2 and words in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_file_is_a_one_line_error_and_a_directory_is_not(tmp_path: Path) -> None:
    done = cli(tmp_path / "nope.py", cwd=tmp_path)
    assert done.returncode == 2 and "no such file or directory" in done.stderr and "Traceback" not in done.stderr
    done = cli(tmp_path, cwd=tmp_path)
    assert done.returncode == 2 and "without .py or .ipynb files" in done.stderr


# ---------------------------------------------------------------------------------------------------------
# The 02460 course, as graders run it: hostile files never pass, correct files still do.


def test_no_hostile_file_passes_the_02460_course(tmp_path: Path) -> None:
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name in HOSTILE_FILES:
        shutil.copy(HOSTILE / name, folder / name)
    reports = verify_many(expand_paths([folder]), "02460", timeout=300)
    statuses = {Path(r.file).name: r.exit_status for r in reports}
    assert sorted(statuses) == HOSTILE_FILES
    assert all(s in (1, 2) for s in statuses.values()), {k: v for k, v in statuses.items() if v not in (1, 2)}
    assert not list(tmp_path.glob("**/pwned*")) and no_sleeps_left()
    by_name = {Path(r.file).name: r for r in reports}
    assert "not intact" in by_name["h_forged_frames.py"].cannot_verify
    assert by_name["h_exit_at_import.py"].exit_status == 2


# every correct case but the one whose own generator the verifier cannot replay (exit 2 by design), and ours
CORRECT = [p for p in sorted(CASES.glob("correct_*.py")) if p.stem != "correct_own_generator"]
CORRECT.append(ROOT / "ddpm" / "verify" / "reference.py")


@pytest.mark.parametrize("path", CORRECT, ids=lambda p: p.stem)
def test_correct_files_still_pass_in_the_sandbox(path: Path) -> None:
    r = verify_file(path, "02460", timeout=300)
    assert r.exit_status == 0, r.to_table()


S183_CORRECT = sorted((Path(__file__).parent / "verify_cases_s183").glob("correct_*"))


def test_correct_s183_files_still_pass_in_the_sandbox() -> None:
    """Every correct 6.S183 form (notebook, script, nbconvert) through the confined child, two at once.

    tests/test_verify_s183.py runs them in-process, outside the sandbox."""
    assert len(S183_CORRECT) >= 10
    reports = verify_many(S183_CORRECT, "6.S183", timeout=300, jobs=2)
    assert [r.exit_status for r in reports] == [0] * len(reports), summary_table(reports)


def test_cli_over_a_directory_writes_the_table_gradescope_and_junit(tmp_path: Path) -> None:
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(CASES / "correct_template.py", folder / "alice.py")
    shutil.copy(CASES / "mutant_last_step_noise.py", folder / "bob.py")
    shutil.copy(HOSTILE / "h_result_file.py", folder / "carol.py")
    done = cli(folder, "--gradescope", tmp_path / "results.json", "--junit", tmp_path / "junit.xml", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "3 files: 1 pass, 1 fail, 1 could not be verified (exit 2)", done.stdout
    assert any("bob.py" in line and "FAIL: sample_last_step" in line for line in lines)
    g = json.loads((tmp_path / "results.json").read_text())
    alice = [t for t in g["tests"] if t["name"].startswith("alice.py: ")]
    assert len(alice) == 16 and all(t["status"] == "passed" for t in alice)
    bob = {t["name"].split()[1]: t for t in g["tests"] if t["name"].startswith("bob.py: ")}
    assert bob["sample_last_step"]["status"] == "failed" and "z = 0 at t = 1" in bob["sample_last_step"]["output"]
    assert not any(t["status"] == "passed" for t in g["tests"] if t["name"].startswith("carol.py"))
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert len(root.findall("testsuite")) == 3 and len(root.findall(".//testcase")) == 48


def test_the_command_kills_what_escaped_a_reaper() -> None:
    code = (
        "import os, subprocess, sys; from ddpm.verify import sandbox; assert sandbox.adopt_orphans();"
        "p = subprocess.Popen([sys.executable, '-c', \"import os, subprocess; subprocess.Popen(['sleep', "
        f"'{ORPHAN_MARK}'], start_new_session=True); os._exit(0)\"]); p.wait();"
        "print(sandbox.kill_adopted())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert int(done.stdout) >= 1 and no_sleeps_left(), done.stdout


def test_the_parent_holds_a_decision_to_the_run() -> None:
    from ddpm.verify.runner import _held_to_the_run

    specs = {"a": ("claim a", "[x]"), "b": ("claim b", "[y]")}
    # a spec the decision left out is undecided, never a pass; an unknown one is dropped with a note
    d = _held_to_the_run(Decision([Outcome("a", PASS), Outcome("zzz", PASS)]), specs, None)
    assert [(o.spec, o.status) for o in d.outcomes] == [("a", PASS), ("b", UNDECIDED)] and d.exit_status == 2
    assert any("unknown spec 'zzz'" in n for n in d.notes)
    # a spec decided twice is the verifier's bug: cannot verify
    d = _held_to_the_run(Decision([Outcome("a", PASS), Outcome("a", FAIL), Outcome("b", PASS)]), specs, None)
    assert d.exit_status == 2 and "decided twice" in (d.cannot_verify or "")
    # a run that stopped early never passes: all pass becomes cannot verify; a failure seen is kept
    d = _held_to_the_run(Decision([Outcome("a", PASS), Outcome("b", PASS)]), specs, "it hung")
    assert d.exit_status == 2 and d.cannot_verify == "the run did not finish: it hung"
    d = _held_to_the_run(Decision([Outcome("a", FAIL)]), specs, "it hung")
    assert d.exit_status == 1 and "the run did not finish: it hung" in d.notes


def test_a_decider_that_raises_is_could_not_verify(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text("def answer():\n    return 42\n")

    class Broken(ProbeCourse):
        @staticmethod
        def decide():
            def decide(records, config):
                raise KeyError("boom")

            return decide

    r = verify_file(good, Broken(), timeout=120)
    assert r.exit_status == 2 and "internal error of the verifier while deciding: KeyError" in r.cannot_verify
    assert all(o.status == UNDECIDED for o in r.outcomes)


def test_the_process_limit_holds_as_root_too() -> None:
    r = probe(HOSTILE / "h_fork_many.py")
    started = int(next(n for n in r.notes if "STARTED" in n).split("STARTED ")[1].split("'")[0])
    assert started < sandbox.Limits().processes, r.notes  # the file's own threads count too
    assert r.exit_status == 1 and no_sleeps_left()


def test_files_verified_in_parallel_cannot_reach_each_other(tmp_path: Path) -> None:
    sleeper = tmp_path / "a_sleeper.py"
    sleeper.write_text("import time\n\ndef answer():\n    time.sleep(25)\n    return 0\n")
    reports = verify_many([sleeper, HOSTILE / "h_probe_siblings.py"], PROBE, None, 120, jobs=2)
    seen = next(n for n in reports[1].notes if "PROBE" in n)
    if sandbox.landlock_abi() >= 1:  # it cannot even list /proc, let alone open the sibling's memory
        assert "listing /proc: Permission denied" in seen and ":OPEN" not in seen, seen
    else:
        assert ":mem:" in seen and ":OPEN" not in seen, seen  # it found the sibling and could not open it


# ---------------------------------------------------------------------------------------------------------
# Reads and the network [issue 19]: a file may read only what Python, torch and it need, and reach no one.

needs_landlock = pytest.mark.skipif(sandbox.landlock_abi() < 1, reason="this kernel has no Landlock")
needs_seccomp = pytest.mark.skipif(sandbox.seccomp_available() is not None, reason="no seccomp filter here")


def filled(name: str, dest: Path, **values: str) -> Path:
    """A hostile file copied to ``dest`` with its ``__NAME__`` placeholders filled in."""
    text = (HOSTILE / name).read_text()
    for key, value in values.items():
        text = text.replace(f"__{key}__", value)
    dest.write_text(text)
    return dest


def attempts(report: Report) -> dict[str, str]:
    """What a hostile file's answer() said it tried: name -> BLOCKED / READ / OUT and what."""
    detail = next(o.detail for o in report.outcomes if o.spec == "answer")
    items = detail.split("answer() = ", 1)[1].strip("'").split(" | ")
    return {i.split(":", 1)[0]: i.split(":", 1)[1] for i in items}


def grader_setup(tmp_path: Path, monkeypatch) -> tuple[Path, Path, dict[str, str]]:
    """A grader's home and working directory, each with a secret; a batch: the hostile file, a sibling."""
    secrets = {k: f"{k}-secret-{os.urandom(6).hex()}" for k in ("canary", "sibling", "cwd")}
    home, cwd, batch = tmp_path / "grader_home", tmp_path / "grader_cwd", tmp_path / "submissions"
    for d in (home, cwd, batch):
        d.mkdir()
    (home / "secret.txt").write_text(secrets["canary"])
    (cwd / "secret.txt").write_text(secrets["cwd"])
    sibling = batch / "bob.py"
    sibling.write_text(f"SOLUTION = {secrets['sibling']!r}\n\ndef answer():\n    return 42\n")
    hostile = filled(
        "h_read_outside.py",
        batch / "mallory.py",
        CANARY=str(home / "secret.txt"),
        GRADER_CWD=str(cwd),
        PARENT_PID=str(os.getpid()),
    )
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("DDPM_GRADER_CANARY_SECRET", secrets["canary"])
    return hostile, sibling, secrets


@needs_landlock
def test_reads_outside_what_the_file_needs_are_blocked(tmp_path: Path, monkeypatch) -> None:
    """The grader's home, the batch's other files, the grader's working directory, /etc/shadow (as root),
    the verifying process's environ and memory: each denied, and no secret reaches any output."""
    hostile, sibling, secrets = grader_setup(tmp_path, monkeypatch)
    reports = verify_many([hostile, sibling], PROBE, None, 120, jobs=2)
    assert reports[1].exit_status == 0, reports[1].to_table()  # the sibling itself still passes
    tried = attempts(reports[0])
    expected = {"siblings", "shadow", "canary", "canary-via-proc-root", "grader-cwd", "reaper-environ", "reaper-mem"}
    expected |= {f"parent-{w}" for w in ("environ", "mem", "cmdline", "cwd/secret.txt")}
    assert set(tried) == expected, tried
    assert all(v.startswith("BLOCKED:") for v in tried.values()), tried
    outputs = [to_json(reports), json.dumps(to_gradescope(reports)), to_junit(reports), summary_table(reports)]
    for secret in secrets.values():
        assert not any(secret in out for out in outputs), secret
    note = next(n for n in reports[0].notes if n.startswith("sandbox: "))
    assert "reads only of Python, its packages, the system's libraries, ddpm and the file itself" in note


@needs_seccomp
def test_no_network_of_any_kind(tmp_path: Path) -> None:
    """UDP, TCP, a unix socket by path and an abstract one, each listened on here; raw, packet and netlink
    sockets, a DNS lookup, io_uring and the x32 ABI: each blocked, nothing arrives, the report says so."""
    import socket

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    name = f"ddpm-verify-test-{os.urandom(6).hex()}"
    try:
        udp.bind(("127.0.0.1", 0))
        tcp.bind(("127.0.0.1", 0))
        unix.bind(str(tmp_path / "grader.sock"))
        abstract.bind("\0" + name)
        for s in (tcp, unix, abstract):
            s.listen(4)
        for s in (udp, tcp, unix, abstract):
            s.setblocking(False)
        hostile = filled(
            "h_network.py",
            tmp_path / "net.py",
            UDP_PORT=str(udp.getsockname()[1]),
            TCP_PORT=str(tcp.getsockname()[1]),
            UNIX_PATH=str(tmp_path / "grader.sock"),
            ABSTRACT=name,
        )
        r = probe(hostile)
        tried = attempts(r)
        expected = {"udp", "tcp", "unix", "abstract", "raw-ip", "raw-packet", "netlink", "dns", "io_uring"}
        assert expected <= set(tried), tried
        assert all(v.startswith("BLOCKED:") for v in tried.values()), tried
        for s in (udp, tcp, unix, abstract):
            with pytest.raises(BlockingIOError):  # nothing arrived, no connection is waiting
                s.recv(64) if s is udp else s.accept()
    finally:
        for s in (udp, tcp, unix, abstract):
            s.close()
    note = next(n for n in r.notes if n.startswith("sandbox: "))
    assert "no network: a seccomp filter refuses every new socket" in note, note


def test_the_child_may_read_the_package_not_the_checkout() -> None:
    import ddpm

    roots = sandbox.readable_roots("/some/file.py")
    package = Path(ddpm.__file__).resolve().parent
    assert str(package) in roots and str((package / "specs").resolve()) in roots and "/some/file.py" not in roots
    if not Path(sys.prefix).resolve().is_relative_to(package.parent):  # a virtual environment inside it aside
        assert str(package.parent) not in roots
    assert not any(Path(r) == package.parent or package.parent.is_relative_to(r) for r in roots), roots
    assert "/" not in roots and "/etc" not in roots and "/tmp" not in roots and "/root" not in roots


# A container whose seccomp profile does not know Landlock (Docker before 23.0), and one that lets no process
# load a seccomp filter of its own: the whole verify command runs under such a filter, loaded here first.
BLOCK_LANDLOCK = "f.add_rule(s.ERRNO(1), 'landlock_create_ruleset')"
BLOCK_SECCOMP = "f.add_rule(s.ERRNO(1), 'seccomp'); f.add_rule(s.ERRNO(1), 'prctl', s.Arg(0, s.EQ, 22))"


def under_filter(rules: str, *args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    code = (
        "import os, sys, pyseccomp as s; f = s.SyscallFilter(s.ALLOW); " + rules + "; f.load(); "
        "os.execv(sys.executable, [sys.executable, '-m', 'ddpm.verify', *sys.argv[1:]])"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


@needs_seccomp
@needs_landlock
def test_strict_refuses_in_one_line_where_landlock_is_blocked(tmp_path: Path, monkeypatch) -> None:
    hostile, _, secrets = grader_setup(tmp_path, monkeypatch)
    for args, env in (([hostile, "--strict"], {}), ([hostile], {"DDPM_VERIFY_STRICT": "1"})):
        done = under_filter(BLOCK_LANDLOCK, *args, cwd=tmp_path, env=env)
        assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert "--strict: the sandbox lacks reads confined to" in done.stderr and "no Landlock" in done.stderr
    # not strict: it runs, and the note is true: reads are not confined, and the canary was read
    done = under_filter(BLOCK_LANDLOCK, hostile, "--json", cwd=tmp_path)
    data = json.loads(done.stdout)
    note = next(n for n in data["notes"] if n.startswith("sandbox: "))
    missing = note.split("MISSING: ", 1)[-1]
    assert missing.startswith("reads confined to Python") and "writes confined to the run's private" in missing, note
    assert secrets["canary"] in done.stdout  # what --strict is for


@needs_seccomp
def test_strict_refuses_in_the_child_what_it_could_not_get(tmp_path: Path) -> None:
    """The parent's look finds libseccomp and a kernel with seccomp; the child's filter is still refused."""
    hostile = filled("h_network.py", tmp_path / "net.py")
    done = under_filter(BLOCK_SECCOMP, hostile, "--strict", "--json", cwd=tmp_path)
    data = json.loads(done.stdout)
    assert done.returncode == 2 and data["exit_status"] == 2, done.stdout
    assert "the file was not run: --strict: the sandbox lacks no network of any kind" in data["cannot_verify"], data
    assert not any("NETWORK" in n for n in data["notes"]), data["notes"]  # not a line of the file ran
    done = under_filter(BLOCK_SECCOMP, hostile, "--json", cwd=tmp_path)
    data = json.loads(done.stdout)
    assert any("MISSING: no network of any kind" in n for n in data["notes"]), data["notes"]


def test_a_bad_strict_variable_is_a_one_line_error(tmp_path: Path) -> None:
    done = cli(CASES / "correct_template.py", cwd=tmp_path, env={**os.environ, "DDPM_VERIFY_STRICT": "maybe"})
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "DDPM_VERIFY_STRICT='maybe': expected 1 (strict) or 0 (not strict)" in done.stderr
