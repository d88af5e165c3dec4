"""Compaction to Parquet and read_log: typed flat columns, each record exactly once."""

from __future__ import annotations

import dataclasses
import importlib
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from parity.featurelog import FeatureLogWriter, ReadReport, compact, read_log
from parity.featurelog.segments import list_parts, list_segments
from parity.timeutil import TIMESTAMP_TYPE
from tests.featurelog.helpers import make_record

# The package's `compact` is the function; the module is reached by its full name.
compact_module = importlib.import_module("parity.featurelog.compact")


def write(root: Path, ids: range, **options: object) -> None:
    with FeatureLogWriter(root, **options) as writer:  # type: ignore[arg-type]
        for i in ids:
            writer.log(make_record(i))


def test_part_has_flat_typed_columns(tmp_path: Path) -> None:
    write(tmp_path, range(1, 101))
    report = compact(tmp_path)
    assert report.records == 100 and report.segments_compacted == 1
    [part] = list_parts(tmp_path)
    assert part.path.name == "part-00000000000000000001-00000000000000000100.parquet"
    assert list_segments(tmp_path) == []
    schema = pq.read_schema(part.path)
    assert schema.names[:7] == [
        "seq", "request_id", "logged_at", "model", "model_version", "feature_set_versions", "output",
    ]
    expected = {
        "logged_at": TIMESTAMP_TYPE,
        "output": pa.float64(),
        "key.member": pa.int64(),
        "feature.f0": pa.float64(),
        "feature.f1": pa.int64(),
        "feature.f2": pa.string(),
        "feature.f3": pa.bool_(),
        "feature.recent": pa.list_(pa.float64()),
        "feature.last_seen": TIMESTAMP_TYPE,
        "request.device": pa.string(),
        "request.page": pa.int64(),
    }
    for name, typ in expected.items():
        assert schema.field(name).type == typ, name
    table = read_log(tmp_path)
    row = table.slice(6, 1).to_pylist()[0]
    record = make_record(7)
    assert row["seq"] == 7 and row["request_id"] == "r7"
    assert row["logged_at"] == record.logged_at
    assert row["feature_set_versions"] == '{"member_activity":"a1b2c3"}'
    assert row["feature.last_seen"] == record.features["last_seen"]
    assert row["feature.recent"] == record.features["recent"]
    assert row["key.member"] == 7 and row["request.device"] == "ios"


def test_compaction_is_idempotent(tmp_path: Path) -> None:
    write(tmp_path, range(1, 51))
    compact(tmp_path)
    before = read_log(tmp_path)
    again = compact(tmp_path)
    assert again.parts_written == [] and again.segments_compacted == 0
    assert read_log(tmp_path).equals(before)
    assert len(list_parts(tmp_path)) == 1


def test_crash_between_part_commit_and_segment_delete(tmp_path: Path) -> None:
    write(tmp_path, range(1, 81), segment_max_bytes=16_384)
    saved = tmp_path.parent / "saved"
    shutil.copytree(tmp_path, saved)
    compact(tmp_path)
    # Put the segments back, as if the process died right after renaming the part into place.
    for segment in list_segments(saved):
        shutil.copy(segment.path, tmp_path / segment.path.name)
    table = read_log(tmp_path)
    assert table.column("seq").to_pylist() == list(range(1, 81)), "no duplicates"
    report = compact(tmp_path)
    assert report.parts_written == []
    assert report.leftover_segments_removed == len(list_segments(saved))
    assert list_segments(tmp_path) == []
    assert read_log(tmp_path).column("seq").to_pylist() == list(range(1, 81))


def test_crash_before_part_commit_leaves_only_a_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, range(1, 21))

    def die(*_: object) -> None:
        raise KeyboardInterrupt("killed before the rename")

    monkeypatch.setattr(compact_module.os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        compact(tmp_path)
    monkeypatch.undo()
    assert list_parts(tmp_path) == []
    assert read_log(tmp_path).num_rows == 20
    compact(tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []
    assert read_log(tmp_path).column("seq").to_pylist() == list(range(1, 21))


def test_live_segment_is_left_alone_and_read_log_unions_both(tmp_path: Path) -> None:
    write(tmp_path, range(1, 31))
    writer = FeatureLogWriter(tmp_path)
    try:
        for i in range(31, 41):
            writer.log(make_record(i))
        assert writer.flush(timeout=5)
        report = compact(tmp_path)
        assert report.records == 30
        assert len(list_segments(tmp_path)) == 1  # the open one
        read_report = ReadReport()
        table = read_log(tmp_path, read_report)
        assert table.column("seq").to_pylist() == list(range(1, 41))
        assert read_report.segments == 1 and read_report.records == 10
    finally:
        writer.close()
    compact(tmp_path)
    assert read_log(tmp_path).column("request_id").to_pylist() == [f"r{i}" for i in range(1, 41)]


def test_schemas_differ_per_part_and_read_log_unifies_them(tmp_path: Path) -> None:
    first, second = make_record(1), make_record(2)
    first.features["score"] = 1  # int in the first part
    second.features["score"] = 2.5  # float in the second: widens to double
    first.features["code"] = 7  # int in the first part
    second.features["code"] = "x7"  # str in the second: becomes JSON text
    second.features["only_later"] = True  # missing from the first part: null there
    for record in (first, second):
        with FeatureLogWriter(tmp_path) as writer:
            writer.log(record)
        compact(tmp_path)
    assert len(list_parts(tmp_path)) == 2
    table = read_log(tmp_path)
    assert table.schema.field("feature.score").type == pa.float64()
    assert table.column("feature.score").to_pylist() == [1.0, 2.5]
    assert table.schema.field("feature.code").type == pa.string()
    assert table.column("feature.code").to_pylist() == ["7", '"x7"']  # JSON text, all of it
    assert table.schema.field("feature.code").metadata == {b"parity.json": b"1"}
    assert table.column("feature.only_later").to_pylist() == [None, True]


def test_mixed_types_inside_one_file_are_stored_as_json_text(tmp_path: Path) -> None:
    a, b = make_record(1), make_record(2)
    a.features["odd"] = 1
    b.features["odd"] = "one"
    a = dataclasses.replace(a, output={"p": 0.1})
    b = dataclasses.replace(b, output={"p": 0.2})
    with FeatureLogWriter(tmp_path) as writer:
        writer.log(a)
        writer.log(b)
    compact(tmp_path)
    table = read_log(tmp_path)
    assert table.column("feature.odd").to_pylist() == ["1", '"one"']
    assert table.column("output").to_pylist() == ['{"p":0.1}', '{"p":0.2}']


def test_empty_log_reads_as_empty_table(tmp_path: Path) -> None:
    assert read_log(tmp_path / "nothing").num_rows == 0
    assert compact(tmp_path / "nothing").parts_written == []
