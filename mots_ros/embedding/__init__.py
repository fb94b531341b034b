"""PointTrack: point sampling from masks and the embedding network.

``PointTrackNet`` and ``location_encoding`` need torch and are imported on first use.
"""

from mots_ros.embedding.points import PointClouds, sample_points

__all__ = ["PointClouds", "PointTrackNet", "location_encoding", "sample_points"]


def __getattr__(name):
    if name in ("PointTrackNet", "location_encoding"):
        from mots_ros.embedding import network

        return getattr(network, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
