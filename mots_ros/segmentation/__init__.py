"""SpatialEmbedding: the network and the clustering (the frame-level segmenter is mots_ros.segmenters.spatial_embedding).

``SpatialEmbeddingNet`` needs torch and is imported on first use, so that clustering and the
segmenter work in deployments without torch (ONNX Runtime, TensorRT).
"""

from mots_ros.segmentation.clustering import cluster_instances, cluster_with_scores, coordinate_grid

__all__ = ["SpatialEmbeddingNet", "cluster_instances", "cluster_with_scores", "coordinate_grid"]


def __getattr__(name):
    if name == "SpatialEmbeddingNet":
        from mots_ros.segmentation.network import SpatialEmbeddingNet

        return SpatialEmbeddingNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
