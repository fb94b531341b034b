"""Files replaced whole: two writers of one file both succeed, a failed write leaves the old file."""

import pytest

from mots_ros.atomic_files import replacing


def test_two_writers_of_one_file_interleaved_both_succeed_and_the_last_wins(tmp_path):
    target = tmp_path / "cache" / "model.onnx"
    with replacing(target) as first:
        first.write_text("first")
        with replacing(target) as second:  # another process caching the same file meanwhile
            assert second != first
            second.write_text("second")
        assert target.read_text() == "second"
    assert target.read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.onnx"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.pth"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="export failed"), replacing(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("export failed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]


@pytest.mark.slow
def test_an_export_that_finishes_inside_another_export_of_the_same_file_breaks_neither(tmp_path, monkeypatch):
    import onnx

    from mots_ros.embedding import PointTrackNet
    from mots_ros.export import export_embedding, onnx_metadata

    target = tmp_path / "onnx" / "embedding.onnx"
    save = onnx.save
    interleaved = []

    def save_then_let_another_writer_finish(proto, path, *args, **kwargs):
        save(proto, path, *args, **kwargs)
        if not interleaved:  # as a second process caching the same checkpoint at the same moment
            interleaved.append(path)
            export_embedding(PointTrackNet(), target)

    monkeypatch.setattr(onnx, "save", save_then_let_another_writer_finish)
    export_embedding(PointTrackNet(), target)
    assert interleaved and onnx_metadata(target)["network"] == "embedding"
    assert sorted(p.name for p in target.parent.iterdir()) == ["embedding.onnx"]
