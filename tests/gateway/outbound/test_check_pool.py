"""The content check in the daemon's check processes (gateway.outbound.check_pool): the verdicts
are those of the check in-process, over the files the policies tests use (good ones, My
Numbers, wrong values, wrong columns, a split, a workbook); the check really runs in another
process, which opens the spool file with the spool's care; a changed agreement is checked by
its new terms; the bytes read show as progress; a child killed mid-check is replaced and the
check can be asked again; a closed pool leaves no process. Synthetic values only."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import progress
from gateway.errors import StorageError
from gateway.outbound import check_pool
from gateway.outbound.check_pool import CheckPool, CheckProcessLost
from policies.agreement import Agreement, Flow
from policies.agreement_file import parse_agreement
from policies.content import check_file
from policies.reasons import Verdict
from tests.conftest import GOOD_ROWS, csv_bytes, running, wait_for
from tests.policies.bundled import table
from tests.policies.test_content_file import ARREARS_ROW as ARREARS
from tests.policies.test_content_file import (
    HANAKO,
    HEADER,
    KOBE,
    NHI,
    OSAKA,
    SHINJUKU,
    TARO,
    WARD,
    xlsx_bytes,
)
from tests.policies.test_content_file import csv_bytes as rows_csv

ON = dt.date(2026, 11, 20)
MONTHLY = NHI.flow("monthly")


def _with(row: list[str], column: int, value: str) -> list[str]:
    out = list(row)
    out[column] = value
    return out


#: name → (bytes, agreement, flow, day, the rules the verdict must name: [] is accepted).
CASES: dict[str, tuple[bytes, Agreement, Flow, dt.date, list[str]]] = {
    "accepted cp932": (rows_csv(TARO, HANAKO, WARD), NHI, MONTHLY, ON, []),
    "accepted utf-8": (rows_csv(TARO, HANAKO, encoding="utf-8"), NHI, MONTHLY, ON, []),
    "my number in a row": (rows_csv(_with(TARO, 2, "東京都新宿区 123456789018"),
                                    encoding="utf-8"), NHI, MONTHLY, ON, ["content.my-number"]),
    "my number in the header": (
        rows_csv(TARO, header=_with(HEADER, 2, "住居地 1234-5678-9018"), encoding="utf-8"),
        NHI, MONTHLY, ON, ["content.my-number", "content.header.extra",
                           "content.header.missing"]),
    "a wrong check digit": (rows_csv(_with(TARO, 1, "131042")), NHI, MONTHLY, ON,
                            ["value.local-government-code"]),
    "a wrong sex": (rows_csv(_with(TARO, 3, "M")), NHI, MONTHLY, ON, ["value.sex"]),
    "no such date": (rows_csv(_with(TARO, 5, "2026-02-30")), NHI, MONTHLY, ON, ["value.date"]),
    "a column too many": (rows_csv(header=[*HEADER, "備考"]), NHI, MONTHLY, ON,
                          ["content.header.extra"]),
    "columns out of order": (rows_csv(header=[HEADER[1], HEADER[0], *HEADER[2:]]), NHI,
                             MONTHLY, ON, ["content.header.order"]),
    "rows of the wrong width": (rows_csv(TARO[:-1], [*HANAKO, "x"], encoding="utf-8"), NHI,
                                MONTHLY, ON, ["content.row.width", "content.row.width"]),
    "rows withheld by the scope (a split)": (rows_csv(TARO, OSAKA, HANAKO, KOBE, WARD), NHI,
                                             MONTHLY, ON, []),
    "empty": (b"", NHI, MONTHLY, ON, ["content.empty"]),
    "a workbook": (xlsx_bytes(ARREARS), SHINJUKU, SHINJUKU.flow("provision"),
                   dt.date(2026, 6, 1), []),
    "a workbook's wrong values": (
        xlsx_bytes(_with(_with(ARREARS, 5, "ab12345678cd"), 7, "3か月")), SHINJUKU,
        SHINJUKU.flow("provision"), dt.date(2026, 6, 1),
        ["value.residence-card-number", "value.period-of-stay"]),
    "a CSV where a workbook belongs": (
        rows_csv(header=[c.name for c in SHINJUKU.datasets["arrears"].columns],
                 encoding="utf-8"), SHINJUKU, SHINJUKU.flow("provision"), dt.date(2026, 6, 1),
        ["content.xlsx.not-xlsx"]),
}


@pytest.fixture(scope="module")
def pool() -> Iterator[CheckPool]:
    checks = CheckPool(2)
    checks.start([(NHI, MONTHLY)], ON)
    yield checks
    checks.close()


def _spooled(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _here(path: Path, agreement: Agreement, flow: Flow, on: dt.date) -> Verdict:
    with open(path, "rb") as fh:
        return check_file(fh, agreement, flow, on)


@pytest.mark.parametrize("case", list(CASES))
def test_the_pool_gives_the_verdict_of_the_check_in_process(pool: CheckPool, tmp_path: Path,
                                                            case: str) -> None:
    data, agreement, flow, on, expected = CASES[case]
    path = _spooled(tmp_path, "file", data)
    verdict = pool.check(path, agreement, flow, on)
    assert verdict == _here(path, agreement, flow, on)
    assert [r.rule for r in verdict.reasons] == expected
    if case.startswith("rows withheld"):
        assert verdict.facts["withheld"] == 2 and verdict.facts["keep"]


def test_the_check_runs_in_another_process(pool: CheckPool, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = _spooled(tmp_path, "file", rows_csv(TARO, HANAKO))
    expected = _here(path, NHI, MONTHLY, ON)

    def not_here(*_args: object) -> Verdict:
        raise AssertionError("checked in the daemon's own process")

    monkeypatch.setattr(check_pool, "check_file", not_here)
    assert pool.check(path, NHI, MONTHLY, ON) == expected
    assert len(pool.pids) == 2 and os.getpid() not in pool.pids
    # Without a pool (every command, check_processes = 0) the check runs in the caller.
    with pytest.raises(AssertionError, match="own process"):
        check_pool.check(_Runtime(), path, NHI, MONTHLY, ON)  # type: ignore[arg-type]


@dataclasses.dataclass
class _Runtime:
    checker: CheckPool | None = None


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo"])
def test_the_child_opens_the_spool_file_with_the_spools_care(pool: CheckPool, tmp_path: Path,
                                                             kind: str) -> None:
    target = _spooled(tmp_path, "target", rows_csv(TARO))
    path = tmp_path / "file"
    if kind == "symlink":
        path.symlink_to(target)
    elif kind == "hardlink":
        path.hardlink_to(target)
    else:
        os.mkfifo(path)
    with pytest.raises(StorageError, match="spool file file") as err:
        pool.check(path, NHI, MONTHLY, ON)
    assert err.value.hint  # the error as the spool raises it, with what to do next
    good = _spooled(tmp_path, "good", rows_csv(TARO))
    assert pool.check(good, NHI, MONTHLY, ON).accepted  # and the child goes on


def _utf8_only() -> Agreement:
    data = table("isa-nhi-status-loss.toml")
    data["datasets"]["status-change"]["encodings"] = ["utf-8"]
    assert NHI.delegations is not None
    return parse_agreement(data, "isa-nhi-status-loss.toml").with_delegations(NHI.delegations)


def test_a_changed_agreement_is_checked_by_its_new_terms(tmp_path: Path) -> None:
    path = _spooled(tmp_path, "file", rows_csv(TARO, HANAKO))  # cp932
    changed = _utf8_only()
    assert changed.id == NHI.id and changed != NHI
    one = CheckPool(1)  # one child, so it has seen the old terms when the new come
    one.start([(NHI, MONTHLY)], ON)
    try:
        assert one.check(path, NHI, MONTHLY, ON).accepted
        verdict = one.check(path, changed, changed.flow("monthly"), ON)
        assert [r.rule for r in verdict.reasons] == ["content.encoding"]
        assert verdict == _here(path, changed, changed.flow("monthly"), ON)
        assert one.check(path, NHI, MONTHLY, ON).accepted  # both are held, by their digests
        # An equal agreement that is another object is the same terms: checked alike.
        again = dataclasses.replace(changed)
        assert again is not changed
        assert one.check(path, again, again.flow("monthly"), ON) == verdict
    finally:
        one.close()


def test_terms_pushed_out_of_a_childs_cache_are_sent_again(tmp_path: Path) -> None:
    path = _spooled(tmp_path, "file", rows_csv(TARO, HANAKO))  # cp932
    changed = _utf8_only()
    titled = [dataclasses.replace(NHI, title=f"version {i}")
              for i in range(check_pool.KNOWN_TERMS + 2)]
    one = CheckPool(1)
    one.start()
    try:
        assert [r.rule for r in one.check(path, changed, MONTHLY, ON).reasons] == [
            "content.encoding"]
        for agreement in titled:  # each another digest: the first ones are pushed out
            assert one.check(path, agreement, MONTHLY, ON).accepted
        assert [r.rule for r in one.check(path, changed, MONTHLY, ON).reasons] == [
            "content.encoding"]
        assert one.check(path, titled[0], MONTHLY, ON).accepted
    finally:
        one.close()


def test_a_child_asked_by_a_digest_it_no_longer_holds_is_sent_the_terms(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _spooled(tmp_path, "file", rows_csv(TARO, HANAKO))
    titled = [dataclasses.replace(NHI, title=f"version {i}")
              for i in range(check_pool.KNOWN_TERMS + 2)]
    one = CheckPool(1)
    one.start()
    # This side believes the child holds more than it does (the child keeps KNOWN_TERMS).
    monkeypatch.setattr(check_pool, "KNOWN_TERMS", 10 * len(titled))
    try:
        for agreement in [*titled, titled[0]]:
            assert one.check(path, agreement, MONTHLY, ON).accepted
    finally:
        one.close()


def _large(folder: Path, times: int) -> Path:
    """A good file of `times` × progress.LARGE bytes or so."""
    pair = len(csv_bytes(GOOD_ROWS)) - len(csv_bytes([]))
    return _spooled(folder, "large", csv_bytes(GOOD_ROWS * (times * progress.LARGE // pair)))


def test_the_bytes_a_child_reads_show_as_the_checks_progress(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Frequent samples, so a check of a few tens of MiB is seen under way on any machine.
    monkeypatch.setattr(progress, "INTERVAL", 0.01)
    monkeypatch.setattr(check_pool, "REPORT_SECONDS", 0.005)
    path = _large(tmp_path, 3)
    size = path.stat().st_size
    one = CheckPool(1)
    one.start()
    seen: list[progress.Record] = []
    try:
        def run() -> None:
            with progress.step(tmp_path, "t-large", "check", "gw-a:1:intake-0"):
                one.check(path, NHI, MONTHLY, ON)

        checking = threading.Thread(target=run)
        checking.start()
        while checking.is_alive():
            seen += [r for r in progress.live(tmp_path) if 0 < r.done < r.total]
            checking.join(0.005)
    finally:
        one.close()
    assert seen, "no record showed bytes read while the child checked"
    assert {(r.transfer, r.step, r.total, r.pid) for r in seen} == {
        ("t-large", "check", size, os.getpid())}
    assert progress.live(tmp_path) == []  # gone with the step


@pytest.mark.slow
def test_a_child_killed_mid_check_is_replaced_and_the_check_can_be_asked_again(
        tmp_path: Path) -> None:
    path = _large(tmp_path, 12)
    one = CheckPool(1)
    one.start([(NHI, MONTHLY)], ON)
    try:
        [victim] = one.pids
        outcome: list[BaseException | Verdict] = []

        def run() -> None:
            try:
                outcome.append(one.check(path, NHI, MONTHLY, ON))
            except BaseException as exc:
                outcome.append(exc)

        checking = threading.Thread(target=run)
        checking.start()
        wait_for(lambda: _reading(victim, path), 60, "the child to read the file")
        os.kill(victim, signal.SIGKILL)
        checking.join(120)
        [lost] = outcome
        assert isinstance(lost, CheckProcessLost), lost
        assert f"check process {victim} ended before it answered" in str(lost)
        [fresh] = one.pids
        assert fresh != victim and one.replaced == 1
        assert one.check(path, NHI, MONTHLY, ON).accepted
    finally:
        one.close()


def _reading(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (/proc/PID/fd)."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path)
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def test_a_closed_pool_leaves_no_process(tmp_path: Path) -> None:
    checks = CheckPool(2)
    checks.start([(NHI, MONTHLY)], ON)
    pids = checks.pids
    assert len(pids) == 2 and all(running(p) for p in pids)
    checks.close()
    assert checks.pids == []
    wait_for(lambda: not any(running(p) for p in pids), 60, "the children to end")
    with pytest.raises(CheckProcessLost, match="stopping"):
        checks.check(_spooled(tmp_path, "file", rows_csv(TARO)), NHI, MONTHLY, ON)


def test_without_a_pool_the_check_is_the_in_process_one(tmp_path: Path) -> None:
    data = rows_csv(_with(TARO, 3, "M"))
    path = _spooled(tmp_path, "file", data)
    verdict = check_pool.check(_Runtime(), path, NHI, MONTHLY, ON)  # type: ignore[arg-type]
    assert verdict == check_file(io.BytesIO(data), NHI, MONTHLY, ON)
    assert [r.rule for r in verdict.reasons] == ["value.sex"]
