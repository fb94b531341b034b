"""``mots-ros bench``: per-stage latency on a KITTI-sized frame (375×1242) with 10 instances.

Networks run with random weights (weights do not change their cost) on torch, ONNX Runtime,
OpenCV DNN and OpenVINO (fp32, and bf16 where the CPU has it); clustering runs on the ideal output for 10 instances, so it does the work a trained model's
output needs. Every stage is warmed up and then timed; the report gives median and p95 in ms per
thread count, the share of the CPU stages relative to the width-0.5 segmentation forward, and,
optionally, frames processed end to end by the real node and oracle tracking scores on a real
dataset (MOTS20: association alone, the measured and published presets against IoU only). Timings describe this machine
at that moment; nothing asserts them.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

FRAME_HEIGHT, FRAME_WIDTH, NUM_INSTANCES = 375, 1242, 10
SE_WIDTHS = (1.0, 0.5, 0.25)
# Stages outside the two networks, whose sum is compared with the width-0.5 segmentation forward.
CPU_STAGES = ("decode_rgb8", "clustering", "point_sampling", "association", "rle_encoding", "message_serialization")


def time_call(function: Callable[[], object], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median and p95 wall time of ``function()`` in milliseconds."""
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": float(np.median(samples)), "p95_ms": float(np.percentile(samples, 95)), "runs": repeats}


def machine_description() -> dict[str, str | int]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from mots_ros.cpu_features import cpu_features

    found = [name for name, present in cpu_features().items() if present]
    return {"cpu": cpu, "logical_cpus": os.cpu_count() or 0, "python": platform.python_version(), "system": platform.platform(),
            "matrix_instructions": " ".join(found) or "none found"}


def benchmark_frame(rng: np.random.Generator):
    """A textured frame, its 10-instance map and the ideal network output for it."""
    from mots_ros.synthetic.network_outputs import ideal_raw_output, random_instance_map

    labels = random_instance_map(FRAME_HEIGHT, FRAME_WIDTH, NUM_INSTANCES, rng)
    image = rng.integers(0, 256, (FRAME_HEIGHT, FRAME_WIDTH, 3), dtype=np.uint8)
    raw = ideal_raw_output(labels, rng, offset_noise=0.0005)
    return image, labels, raw


def _runtimes() -> list[str]:
    """The runtimes installed here; OpenVINO in fp32, and in bf16 where the CPU has bf16 instructions."""
    import importlib.util

    runtimes = ["torch"] + (["onnxruntime"] if importlib.util.find_spec("onnxruntime") else []) + ["opencv"]
    if importlib.util.find_spec("openvino") is not None:
        import openvino

        runtimes.append("openvino")
        if "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            runtimes.append("openvino_bf16")
    if importlib.util.find_spec("onnxruntime"):
        runtimes.append("onnxruntime_int8")  # segmentation only: int8 quantizes that network
        if "openvino" in runtimes:
            runtimes.append("openvino_int8")
    return runtimes


#: Which matrix-product peak each runtime's forward is compared with.
RUNTIME_PRECISION = {"openvino_bf16": "bf16", "onnxruntime_int8": "int8", "openvino_int8": "int8"}


def matmul_peak_gflops(threads: int, sizes: tuple[int, ...] = (1024, 2048), repeats: int = 5) -> dict[str, float]:
    """This CPU's measured matrix-product rate per precision (GFLOP/s, int8 in GOP/s) on ``threads``.

    Each precision takes the best of torch (fp32 sgemm; bf16 on AVX-512-BF16 or AMX; int8
    ``torch._int_mm`` on VNNI or AMX) and, where installed, OpenVINO's MatMul in f32 and bf16. A
    network's rate is compared with these; it can come close, but a product of two large square
    matrices is the best case for every runtime. The best of ``sizes`` counts (caches favour
    different sizes on different CPUs).
    """
    peaks: dict[str, float] = {}
    slow_probes: set[str] = set()
    for size in sorted(sizes):
        for precision, rate in _matmul_rates(threads, size, repeats, slow_probes).items():
            peaks[precision] = max(peaks.get(precision, 0.0), rate)
    return peaks


#: A probe call slower than this is an emulated path (bf16 without AVX-512-BF16, int8 without VNNI):
#: its first call gives the rate, and larger sizes are not tried, so the probe stays within seconds.
SLOW_PROBE_CALL_S = 0.25


def _matmul_rates(threads: int, size: int, repeats: int, slow_probes: set[str]) -> dict[str, float]:
    """Rates at one ``size``; probes in ``slow_probes`` are left out, and newly slow ones added to it."""
    import torch

    torch.set_num_threads(threads)
    peaks: dict[str, float] = {}

    def record(precision: str, runtime: str, function: Callable[[], object]) -> None:
        if f"{runtime}_{precision}" in slow_probes:
            return
        try:
            start = time.perf_counter()
            function()
            first_s = time.perf_counter() - start
            if first_s > SLOW_PROBE_CALL_S:  # one more call, in case the first paid for a lazy set-up
                slow_probes.add(f"{runtime}_{precision}")
                start = time.perf_counter()
                function()
                seconds = min(first_s, time.perf_counter() - start)
            else:
                seconds = time_call(function, repeats)["median_ms"] * 1e-3
        except RuntimeError:  # e.g. no int8 matrix product in this torch build
            return
        peaks[precision] = max(peaks.get(precision, 0.0), 2 * size**3 / seconds / 1e9)

    for precision, make in (("fp32", lambda: torch.randn(size, size)),
                            ("bf16", lambda: torch.randn(size, size, dtype=torch.bfloat16)),
                            ("int8", lambda: torch.randint(-128, 127, (size, size), dtype=torch.int8))):
        a, b = make(), make()
        record(precision, "torch", (lambda a=a, b=b: torch._int_mm(a, b)) if precision == "int8" else (lambda a=a, b=b: a @ b))
    try:
        import onnx
        import openvino
        from onnx import TensorProto, helper
    except ImportError:
        return peaks
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "matmul",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in ("a", "b")],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    folder = Path(tempfile.mkdtemp(prefix="mots_peak_"))
    onnx.save(model, str(folder / "matmul.onnx"))
    core = openvino.Core()
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    hints = {"fp32": "f32"} | ({"bf16": "bf16"} if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else {})
    for precision, hint in hints.items():
        request = core.compile_model(core.read_model(str(folder / "matmul.onnx")), "CPU", {
            "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads}).create_infer_request()
        record(precision, "openvino", lambda r=request: r.infer([a, a]))
    return peaks


def network_gflop(model, *inputs) -> float:
    """Multiply-adds x 2 of one forward of a torch module, counted from its convolution and linear layers."""
    import torch

    total = [0]

    def count(module, _inputs, output):
        if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            in_channels = module.in_channels // module.groups
            kernel = int(np.prod(module.kernel_size))
            # A transposed conv does its kernel's work per input pixel; a conv per output pixel.
            pixels = _inputs[0][0, 0].numel() if isinstance(module, torch.nn.ConvTranspose2d) else output[0, 0].numel()
            out_channels = module.out_channels
            total[0] += 2 * output.shape[0] * out_channels * in_channels * kernel * pixels
        elif isinstance(module, torch.nn.Linear):
            total[0] += 2 * output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]
    with torch.inference_mode():
        model(*(torch.from_numpy(x) for x in inputs))
    for hook in hooks:
        hook.remove()
    return total[0] / 1e9


def _backend(model, runtime: str, threads: int, folder: Path, export: Callable):
    """``model`` on ``runtime`` (see :func:`_runtimes`); ``export(model, folder)`` writes its ONNX file."""
    if runtime == "torch":
        from mots_ros.backends.torch_backend import TorchBackend

        return TorchBackend(model, num_threads=threads)
    path = export(model, folder)
    if runtime.endswith("int8"):
        if "se_" in path.name:  # OpenVINO cannot compile a fixed-size int8 file (openvino_backend), so dynamic here
            from mots_ros.export import export_segmentation

            path = export_segmentation(model, path.with_name(path.stem + "_dynamic.onnx"), height=None, width=None)
        from mots_ros.backends.quantization import quantize_int8

        # Calibrated on the benchmark frame: the ranges do not change the int8 kernels' cost.
        calibration = np.random.default_rng(1).random((1, 3, 376, 1248), dtype=np.float32)
        path = quantize_int8(path, path.with_name(path.stem + "_int8.onnx"), lambda: [(calibration,)])
    if runtime.startswith("openvino"):
        from mots_ros.backends.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(path, precision="bf16" if runtime.endswith("bf16") else "fp32", num_threads=threads)
    if runtime == "opencv":
        from mots_ros.backends.opencv_backend import OpenCvDnnBackend

        return OpenCvDnnBackend(path, num_threads=threads)
    from mots_ros.backends.onnx_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(path, num_threads=threads)


class _FixedOutputBackend:
    """Returns one precomputed raw output: the pipeline's clustering then works on 10 real instances."""

    name = "fixed-output"
    fixed_input_size = None

    def __init__(self, raw: np.ndarray):
        self.raw = raw

    def run(self, network_input: np.ndarray) -> np.ndarray:
        padded = np.zeros((1, self.raw.shape[0], *network_input.shape[2:]), np.float32)
        padded[0, :, : self.raw.shape[1], : self.raw.shape[2]] = self.raw
        return padded


def pipeline_stage_timings(pipeline, frames: list, repeats: int) -> dict[str, dict[str, float]]:
    """Median and p95 of every stage the pipeline reports in ``FrameResult.latency_ms``, over ``repeats`` frames.

    ``frames`` are processed in turn (the first one also before timing, so tracks exist and
    association does real work); stamps keep increasing, so the tracker never resets.
    """
    from mots_ros.datatypes import Frame

    samples: dict[str, list[float]] = {}
    pipeline.reset()
    for index in range(repeats + 1):
        image = frames[index % len(frames)]
        result = pipeline.process(Frame(image, stamp_ns=index * 100_000_000, frame_index=index))
        if index == 0:
            continue
        for stage, value in result.latency_ms.items():
            samples.setdefault(stage, []).append(value)
    return {stage: {"median_ms": float(np.median(v)), "p95_ms": float(np.percentile(v, 95)), "runs": len(v)}
            for stage, v in samples.items()}


def measure_stages(threads: int, repeats: int, serialize: Callable | None = None) -> dict[str, dict[str, float]]:
    """Times every stage with ``threads`` inference threads; returns ``{stage: timing}``.

    The network forwards are timed on each runtime and width on their own; every other stage is
    timed inside the real :class:`~mots_ros.pipeline.MotsPipeline` (the stages it reports), with
    the segmentation network replaced by its ideal output for 10 instances.
    """
    import torch

    from mots_ros.config import preset
    from mots_ros.datatypes import Frame
    from mots_ros.embedding.embedder import Embedder
    from mots_ros.embedding.network import PointTrackNet
    from mots_ros.export import export_embedding, export_segmentation
    from mots_ros.images import decode_image
    from mots_ros.pipeline import MotsPipeline
    from mots_ros.segmentation.network import SpatialEmbeddingNet
    from mots_ros.segmenters.spatial_embedding import SpatialEmbeddingSegmenter, to_network_input
    from mots_ros.tracker import Tracker

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    image, _, raw = benchmark_frame(rng)
    stages: dict[str, dict[str, float]] = {}
    folder = Path(tempfile.mkdtemp(prefix="mots_bench_"))

    rgb_bytes, bgr_bytes = image.tobytes(), np.ascontiguousarray(image[..., ::-1]).tobytes()
    stages["decode_rgb8"] = time_call(lambda: decode_image(rgb_bytes, FRAME_HEIGHT, FRAME_WIDTH, "rgb8", FRAME_WIDTH * 3), repeats)
    stages["decode_bgr8"] = time_call(lambda: decode_image(bgr_bytes, FRAME_HEIGHT, FRAME_WIDTH, "bgr8", FRAME_WIDTH * 3), repeats)

    network_input = to_network_input(image, 376, 1248)
    gflop: dict[str, float] = {}
    for width in SE_WIDTHS:
        model = SpatialEmbeddingNet(width=width).eval()
        gflop[f"se_forward_w{width:g}"] = network_gflop(model, network_input)
        for runtime in _runtimes():
            backend = _backend(model, runtime, threads, folder,
                               lambda m, f, w=width: export_segmentation(m, f / f"se_{w}.onnx", height=376, width=1248))
            stages[f"se_forward_w{width:g}_{runtime}"] = time_call(lambda b=backend: b.run(network_input), max(3, repeats // 4))

    embedding_net = PointTrackNet().eval()
    config = preset("car")
    result = None
    gflop["embedding_forward"] = network_gflop(embedding_net, np.zeros((NUM_INSTANCES, 1500, 8), np.float32),
                                               np.zeros((NUM_INSTANCES, 4), np.float32))
    for runtime in (r for r in _runtimes() if not r.endswith("int8")):
        embedding_backend = _backend(embedding_net, runtime, threads, folder, lambda m, f: export_embedding(m, f / "pt.onnx"))
        pipeline = MotsPipeline(SpatialEmbeddingSegmenter(_FixedOutputBackend(raw), config.segmentation),
                                Embedder(embedding_backend, config.embedding), Tracker(config.tracker))
        timings = pipeline_stage_timings(pipeline, [image], repeats)
        stages[f"embedding_forward_{runtime}"] = timings.pop("embedding_network")
        timings.pop("segmentation_network")  # the fixed output's copy, not a network
        stages.update(timings)  # the CPU stages, as the last runtime's pipeline measured them
        result = pipeline.process(Frame(image, stamp_ns=(repeats + 1) * 100_000_000, frame_index=repeats + 1))
    if serialize is not None and result is not None:
        stages["message_serialization"] = time_call(lambda: serialize(result), repeats)
    cpu = [s for s in CPU_STAGES if s in stages]
    stages["cpu_stages_total"] = {key: sum(stages[s][key] for s in cpu) for key in ("median_ms", "p95_ms")} | {"runs": repeats}
    peaks = matmul_peak_gflops(threads)
    for stage, timing in list(stages.items()):
        network = next((name for name in gflop if stage.startswith(name + "_")), None)
        if network is None:
            continue
        precision = RUNTIME_PRECISION.get(stage[len(network) + 1:], "fp32")
        rate = gflop[network] / (timing["median_ms"] * 1e-3)
        stages[f"_efficiency_{stage}"] = {"gflop": gflop[network], "gflops": rate, "peak_precision": precision,
                                          "peak_gflops": peaks.get(precision, float("nan")),
                                          "share_of_peak": rate / peaks.get(precision, float("nan"))}
    stages["_matmul_peak_gflops"] = peaks
    for runtime in (r for r in _runtimes() if not r.endswith("int8")):
        stages[f"cpu_share_of_se_w0.5_{runtime}"] = {
            "ratio": stages["cpu_stages_total"]["median_ms"] / stages[f"se_forward_w0.5_{runtime}"]["median_ms"]}
    stages["_instances_found"] = {"count": len(result.instances) if result is not None else 0}
    return stages


def camera_scaling(threads: int, counts: tuple[int, ...] = (1, 2, 4, 6), rounds: int = 5) -> dict[str, dict[str, float]]:
    """Total throughput and per-camera latency of 1..6 cameras in one process: batched, one frame at a time, and threads.

    Every camera sees its own synthetic drive (KITTI size) through the shipped car models on ONNX
    Runtime (``car`` preset): one round is one frame from each camera. Batched: one
    :meth:`MultiCameraPipeline.process` per round (one forward per network); one at a time: the
    same cameras, each frame alone. A camera's latency is the time until its frame's result.
    ``threads_shared`` / ``threads_separate``: one streaming thread per camera, as the nodes of one
    process run, with shared networks or with a pipeline each (:func:`_camera_threads`).
    """
    from mots_ros.config import preset
    from mots_ros.datatypes import Frame
    from mots_ros.multi_camera import MultiCameraPipeline
    from mots_ros.synthetic.driving import DrivingConfig, DrivingScene

    config = preset("car").replace(**{"inference.backend": "onnxruntime", "inference.num_threads": threads})
    drives = [[f.image_rgb for f in DrivingScene(DrivingConfig(frames=rounds + 1, seed=920 + i)).frames()]
              for i in range(max(counts))]
    report = {}
    for count in counts:
        names = [f"camera{i}" for i in range(count)]
        for mode in ("batched", "one_at_a_time"):
            cameras = MultiCameraPipeline.from_config(config, names)
            round_ms, latency_ms = [], []
            for index in range(rounds + 1):
                frames = {name: Frame(drives[i][index], stamp_ns=index * 100_000_000, frame_index=index)
                          for i, name in enumerate(names)}
                started = time.perf_counter()
                if mode == "batched":
                    results, problems = cameras.process(frames)
                    finished = [time.perf_counter()] * count
                else:
                    finished = []
                    for name, frame in frames.items():
                        results, problems = cameras.process({name: frame})
                        finished.append(time.perf_counter())
                if problems:
                    raise RuntimeError(f"camera benchmark frames were refused: {problems}")
                if index > 0:  # the first round builds the batched sessions
                    round_ms.append((finished[-1] - started) * 1e3)
                    latency_ms.extend((t - started) * 1e3 for t in finished)
            median_round = float(np.median(round_ms))
            report[f"cameras_{count}_{mode}"] = {
                "cameras": count, "round_median_ms": median_round, "frames_per_s": count / (median_round * 1e-3),
                "per_camera_latency_ms": float(np.median(latency_ms)), "rounds": rounds}
        for mode in ("threads_shared", "threads_separate"):
            report[f"cameras_{count}_{mode}"] = _camera_threads(config, drives[:count], rounds, shared=mode == "threads_shared")
    return report


def _camera_threads(config, drives: list, rounds: int, *, shared: bool) -> dict[str, float]:
    """Each camera streams its frames from its own thread, as the nodes of one ``mots-ros run`` do.

    ``shared``: one set of networks and batched rounds (:class:`CameraRounds`, the default for
    several namespaces); otherwise one pipeline per camera (``--separate-networks``). The first
    frame of every camera is a warm-up; ``round_median_ms`` is the wall time of the rest divided by
    ``rounds``.
    """
    import threading

    from mots_ros.datatypes import Frame
    from mots_ros.multi_camera import CameraRounds
    from mots_ros.pipeline import MotsPipeline

    rounds_object = CameraRounds() if shared else None
    pipelines = [rounds_object.add_camera(f"camera{i}", config) if rounds_object else MotsPipeline.from_config(config)
                 for i in range(len(drives))]
    latency_ms: list[float] = []
    warmed = threading.Barrier(len(drives) + 1, timeout=600)
    done = threading.Barrier(len(drives) + 1, timeout=600)

    errors: list[BaseException] = []

    def stream(pipeline, images):
        try:
            pipeline.process(Frame(images[0], stamp_ns=0, frame_index=0))
            warmed.wait()
            for index in range(1, rounds + 1):
                started = time.perf_counter()
                pipeline.process(Frame(images[index], stamp_ns=index * 100_000_000, frame_index=index))
                latency_ms.append((time.perf_counter() - started) * 1e3)
            done.wait()
        except Exception as err:  # a failed camera releases the others and the caller at once
            errors.append(err)
            warmed.abort()
            done.abort()

    threads = [threading.Thread(target=stream, args=(p, images), daemon=True) for p, images in zip(pipelines, drives)]
    for thread in threads:
        thread.start()
    try:
        warmed.wait()
        started = time.perf_counter()
        done.wait()
    except threading.BrokenBarrierError:
        raise RuntimeError(f"camera benchmark thread failed: {errors[0] if errors else 'timeout'}") from None
    round_ms = (time.perf_counter() - started) * 1e3 / rounds
    return {"cameras": len(drives), "round_median_ms": round_ms, "frames_per_s": len(drives) / (round_ms * 1e-3),
            "per_camera_latency_ms": float(np.median(latency_ms)), "rounds": rounds}


def postprocessing_timings(repeats: int) -> dict[str, dict[str, float]]:
    """Clustering, point sampling and RLE runs of the benchmark frame: numpy, and torch on every device here.

    torch on the CPU is the check that the device code costs what it should; on a GPU it is the
    path that keeps the network's output on the device (mots_ros.segmentation.device_postprocessing).
    """
    import torch

    from mots_ros.embedding.points import sample_points
    from mots_ros.masks import encode_label_map
    from mots_ros.segmentation.clustering import cluster_with_scores

    image, labels, raw = benchmark_frame(np.random.default_rng(0))
    ids = [int(i) for i in np.unique(labels) if i > 0]
    timings = {
        "clustering_numpy": time_call(lambda: cluster_with_scores(raw), repeats),
        "point_sampling_numpy": time_call(lambda: sample_points(labels, image, np.random.default_rng(0)), repeats),
        "rle_encoding_numpy": time_call(lambda: encode_label_map(labels, ids), repeats),
    }
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        timings.update(_torch_postprocessing_timings(device, raw, labels, image, ids, repeats))
    return timings


def _torch_postprocessing_timings(device: str, raw: np.ndarray, labels: np.ndarray, image: np.ndarray, ids: list[int],
                                  repeats: int) -> dict[str, dict[str, float]]:
    import torch

    from mots_ros.segmentation.device_postprocessing import (
        cluster_with_scores_torch,
        column_runs_torch,
        sample_points_torch,
    )

    raw_t, labels_t = torch.from_numpy(raw).to(device), torch.from_numpy(labels.astype(np.int32)).to(device)
    image_t = torch.from_numpy(image).to(device)

    def timed(function: Callable[[], object]) -> dict[str, float]:
        def run() -> None:
            function()
            if device == "cuda":
                torch.cuda.synchronize()  # GPU work is asynchronous: time it to the end
        return time_call(run, repeats)

    return {f"clustering_torch_{device}": timed(lambda: cluster_with_scores_torch(raw_t)),
            f"point_sampling_torch_{device}": timed(lambda: sample_points_torch(labels_t, image_t, np.random.default_rng(0))),
            f"rle_runs_torch_{device}": timed(lambda: column_runs_torch(labels_t, ids))}


def whole_frame_timings(repeats: int, threads: int, width: float = 1.0) -> dict[str, dict]:
    """The whole frame through :class:`~mots_ros.pipeline.MotsPipeline` on torch, per device here, post-processing on the host and on the device.

    The segmentation network (width ``width``, random weights) runs for its cost, and the
    clustering then gets the benchmark frame's ideal output, so every stage works on 10 real
    instances. A row's ``median_ms`` is the wall time of ``process()``, decode excluded.
    """
    import torch

    from mots_ros.backends.torch_backend import TorchBackend
    from mots_ros.config import preset
    from mots_ros.datatypes import Frame
    from mots_ros.embedding.embedder import Embedder
    from mots_ros.embedding.network import PointTrackNet
    from mots_ros.pipeline import MotsPipeline
    from mots_ros.segmentation.network import SpatialEmbeddingNet
    from mots_ros.segmenters.spatial_embedding import SpatialEmbeddingSegmenter
    from mots_ros.tracker import Tracker

    class NetworkWithFixedOutput(torch.nn.Module):
        """Runs the network for its cost, then returns the fixed output (padded to the input's size)."""

        def __init__(self, network: torch.nn.Module, raw: np.ndarray):
            super().__init__()
            self.network = network
            self.register_buffer("raw", torch.from_numpy(raw))

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            self.network(images)
            output = torch.zeros((images.shape[0], self.raw.shape[0], *images.shape[2:]), device=images.device)
            output[:, :, : self.raw.shape[1], : self.raw.shape[2]] = self.raw
            return output

    torch.manual_seed(0)
    image, _, raw = benchmark_frame(np.random.default_rng(0))
    config = preset("car")
    rows: dict[str, dict] = {}
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        network = NetworkWithFixedOutput(SpatialEmbeddingNet(width=width), raw)
        segmentation_backend = TorchBackend(network, device=device, num_threads=threads)
        embedding_backend = TorchBackend(PointTrackNet(), device=device, num_threads=threads)
        for where in ("host", "device"):
            pipeline = MotsPipeline(SpatialEmbeddingSegmenter(segmentation_backend, config.segmentation),
                                    Embedder(embedding_backend, config.embedding), Tracker(config.tracker),
                                    postprocessing_on_device=where == "device")
            frame_ms: list[float] = []
            stages: dict[str, list[float]] = {}
            for index in range(repeats + 2):  # two warm-up frames (CUDA kernels, allocator)
                started = time.perf_counter()
                result = pipeline.process(Frame(image, stamp_ns=index * 100_000_000, frame_index=index))
                if index >= 2:
                    frame_ms.append((time.perf_counter() - started) * 1e3)
                    for stage, value in result.latency_ms.items():
                        stages.setdefault(stage, []).append(value)
            rows[f"frame_torch_{device}_postprocessing_{where}"] = {
                "median_ms": float(np.median(frame_ms)), "p95_ms": float(np.percentile(frame_ms, 95)), "runs": repeats,
                "instances": len(result.instances), "width": width,
                "stages_median_ms": {stage: float(np.median(v)) for stage, v in stages.items()}}
    return rows


def optical_flow_timings(repeats: int) -> dict[str, dict[str, float]]:
    """DIS flow of one frame pair (``flow.source: dis``), per preset, at 1242×375 and 1920×1080.

    The grey conversions of both frames are included, as the pipeline does them.
    """
    from mots_ros.optical_flow import DIS_PRESETS, DisFlow

    rng = np.random.default_rng(0)
    timings = {}
    for height, width in ((375, 1242), (1080, 1920)):
        first = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        second = np.roll(first, 3, axis=1)
        for preset in DIS_PRESETS:
            dis = DisFlow(preset)

            def pair(dis=dis, first=first, second=second):
                dis.remember(first)
                dis.next_flow(second)  # the flow, plus the two grey conversions

            timings[f"dis_{preset}_{width}x{height}"] = time_call(pair, repeats)
    return timings


#: Cue settings timed by ``cue_timings``: each cue alone, then all of them together.
CUE_VARIANTS = {
    "embedding": {"embedding": {"weight": 1.0, "offset": 9.0, "ema": 0.5}},
    "mask_iou": {"mask_iou": {"weight": 1.0}},
    "flow_iou": {"flow_iou": {"weight": 1.0}},
    "motion": {"motion": {"weight": 1.0, "gate": 3.0}},
    "points": {"points": {"weight": 1.0}},
}
CUE_TRACKS = 20


def cue_timings(repeats: int) -> dict[str, dict[str, float]]:
    """One frame's association (hooks, similarity, assignment) with 20 tracks × 20 detections, per cue.

    Each cue alone, the ``pedestrian`` preset's cues (embedding, mask IoU, motion) and all five.

    At 1242×375 and 1920×1080, on one core (OpenCV limited to one thread); the flow cues get a
    given flow field, so DIS is not included (``optical_flow_timings`` has it).
    """
    import cv2

    from mots_ros.config import TrackerConfig, preset
    from mots_ros.tracker import Tracker

    rng = np.random.default_rng(0)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    timings = {}
    try:
        for height, width in ((375, 1242), (1080, 1920)):
            frames = _moving_scene(height, width, repeats + 3, rng)
            flow = np.zeros((height, width, 2), np.float32)
            flow[..., 0] = 3.0
            variants = {**CUE_VARIANTS, "pedestrian_preset": preset("pedestrian").tracker.cues,
                        "all": {k: v for cues in CUE_VARIANTS.values() for k, v in cues.items()}}
            for name, cues in variants.items():
                tracker = Tracker(TrackerConfig(cues=cues, threshold=-1e6, max_age_frames=1000))
                position = iter(range(len(frames)))

                def associate(tracker=tracker, position=position, frames=frames, flow=flow):
                    index = next(position)
                    image, instances = frames[index]
                    tracker.update(instances, stamp_ns=index, frame_index=index, flow=flow, image_rgb=image)

                associate()  # the tracks are born here; every later frame matches 20 × 20
                timings[f"association_{name}_{width}x{height}"] = time_call(associate, repeats, warmup=1)
    finally:
        cv2.setNumThreads(threads)
    return timings


def _moving_scene(height: int, width: int, count: int, rng: np.random.Generator) -> list:
    """``count`` frames of a smooth texture and 20 person-sized boxes, all moving 3 px right per frame."""
    import cv2

    from mots_ros.datatypes import Instance
    from mots_ros.masks import encode_rle

    texture = cv2.GaussianBlur(rng.integers(0, 256, (height, width + 3 * count, 3), dtype=np.uint8), (0, 0), 2.0)
    box_h, box_w = height // 4, max(width // 40, 8)
    corners = [(int(rng.integers(0, width - box_w - 3 * count)), int(rng.integers(0, height - box_h)))
               for _ in range(CUE_TRACKS)]
    embeddings = rng.normal(size=(CUE_TRACKS, 32)).astype(np.float32)
    frames = []
    for index in range(count):
        image = np.ascontiguousarray(texture[:, 3 * count - 3 * index : 3 * count - 3 * index + width])
        instances = []
        for (x0, y0), embedding in zip(corners, embeddings):
            left = x0 + 3 * index
            mask = np.zeros((height, width), bool)
            mask[y0 : y0 + box_h, left : left + box_w] = True
            instances.append(Instance(rle=encode_rle(mask), bbox=(left, y0, left + box_w - 1, y0 + box_h - 1),
                                      class_id=2, score=1.0, embedding=embedding))
        frames.append((image, instances))
    return frames


#: Association alone on real pedestrians: (preset, overrides) of the measured preset, the published
#: one, and mask IoU only.
ORACLE_VARIANTS = {
    "pedestrian": ("pedestrian", {}),
    "pedestrian_published": ("pedestrian-published", {}),
    "iou_only_threshold_0.1": ("pedestrian-published", {"tracker.cues.embedding.weight": 0.0,
                                                        "tracker.cues.mask_iou.weight": 1.0, "tracker.threshold": 0.1}),
}


def oracle_quality(data: Path, work: Path) -> dict[str, dict[str, float]]:
    """Oracle tracking (ground-truth masks, ids removed) on every sequence of a MOTS dataset."""
    from mots_ros.config import preset
    from mots_ros.offline_tracking import MOTS20_FPS, evaluate_oracle
    from mots_ros.pipeline import MotsPipeline

    scores = {}
    for name, (preset_name, overrides) in ORACLE_VARIANTS.items():
        started = time.perf_counter()
        config = preset(preset_name).replace(**overrides, **{"segmentation.kind": "ground_truth"})
        pipeline = MotsPipeline.from_config(config)
        # stamps at each sequence's real rate: the measured preset ages tracks in seconds
        combined = evaluate_oracle(pipeline, data, work / name, fps=MOTS20_FPS).combined("pedestrian")
        scores[name] = {k: float(combined[k]) for k in ("HOTA", "DetA", "AssA", "IDS", "IDF1", "TP")}
        scores[name]["seconds"] = time.perf_counter() - started
    return scores


def format_table(report: dict) -> str:
    thread_keys = list(report["threads"].keys())
    header = f"{'stage':<30}" + "".join(f"{f'{t} thread(s): median / p95 ms':>32}" for t in thread_keys)
    lines = [header, "-" * len(header)]
    first = report["threads"][thread_keys[0]]
    for stage in first:
        if stage.startswith("_"):
            continue
        if "ratio" in first[stage]:
            cells = "".join(f"{report['threads'][t][stage]['ratio'] * 100:>31.1f}%" for t in thread_keys)
        else:
            cells = "".join(f"{report['threads'][t][stage]['median_ms']:>21.1f} / {report['threads'][t][stage]['p95_ms']:>8.1f}"
                            for t in thread_keys)
        lines.append(f"{stage:<30}{cells}")
    for t in thread_keys:
        stages = report["threads"][t]
        peaks = stages.get("_matmul_peak_gflops", {})
        if peaks:
            lines.append(f"measured matrix-product peak, {t} thread(s): "
                         + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))
        for key, row in stages.items():
            if key.startswith("_efficiency_"):
                lines.append(f"  {key[len('_efficiency_'):]:<34} {row['gflop']:7.1f} GFLOP  {row['gflops']:7.1f} GFLOP/s  "
                             f"{100 * row['share_of_peak']:5.1f}% of the {row['peak_precision']} peak")
    for name, values in report.get("cameras", {}).items():
        lines.append(f"{name:<30}{values['round_median_ms']:>21.1f} ms per round   {values['frames_per_s']:.1f} frames/s "
                     f"in all ({values['per_camera_latency_ms']:.0f} ms per camera frame)")
    for name, values in report.get("postprocessing", {}).items():
        lines.append(f"{name:<30}{values['median_ms']:>21.1f} / {values['p95_ms']:>8.1f}   (the 10-instance frame)")
    for name, values in report.get("whole_frame", {}).items():
        lines.append(f"{name:<30}{values['median_ms']:>21.1f} / {values['p95_ms']:>8.1f}   (whole frame, width "
                     f"{values['width']:g}, {values['instances']} instances)")
    for name, values in report.get("optical_flow", {}).items():
        lines.append(f"{name:<30}{values['median_ms']:>21.1f} / {values['p95_ms']:>8.1f}   (one frame pair, OpenCV's threads)")
    for name, values in report.get("association", {}).items():
        lines.append(f"{name:<30}{values['median_ms']:>21.1f} / {values['p95_ms']:>8.1f}   (20 tracks x 20 detections, one core)")
    for name, values in report.get("end_to_end", {}).items():
        lines.append(f"{name:<30}" + f"{values['total_median_ms']:>21.1f} / {values['total_p95_ms']:>8.1f}"
                     + f"   ({values['fps']:.1f} frames/s through the node)")
    for name, scores in report.get("oracle", {}).items():
        lines.append(f"oracle {name:<23}HOTA {scores['HOTA']:.2f}  AssA {scores['AssA']:.2f}  IDS {scores['IDS']:.0f}  "
                     f"IDF1 {scores['IDF1']:.2f}  ({scores['TP']:.0f} masks, {scores['seconds']:.0f} s)")
    lines.append(f"machine: {report['machine']['cpu']} ({report['machine']['logical_cpus']} logical CPUs; "
                 f"{report['machine'].get('matrix_instructions', 'matrix instructions not checked')})")
    return "\n".join(lines)


def run_benchmark(threads: list[int], repeats: int, out: Path | None, quick: bool = False,
                  serialize: Callable | None = None, end_to_end: Callable[[int], dict] | None = None,
                  oracle_data: Path | None = None) -> str:
    """Runs every stage for each thread count, writes JSON to ``out`` and returns the table.

    With ``oracle_data`` (a MOTS dataset such as MOTS20), it also scores oracle tracking there.
    """
    if quick:
        repeats = 3
    report = {
        "frame": {"height": FRAME_HEIGHT, "width": FRAME_WIDTH, "instances": NUM_INSTANCES},
        "machine": machine_description(),
        "threads": {str(t): measure_stages(t, repeats, serialize) for t in threads},
    }
    report["cameras"] = camera_scaling(max(threads), (1, 2) if quick else (1, 2, 4, 6), rounds=2 if quick else 5)
    report["postprocessing"] = postprocessing_timings(repeats)
    report["whole_frame"] = whole_frame_timings(3 if quick else max(3, repeats // 4), max(threads), width=0.25 if quick else 1.0)
    report["optical_flow"] = optical_flow_timings(repeats)
    report["association"] = cue_timings(repeats)
    if end_to_end is not None:
        report["end_to_end"] = {f"node_end_to_end_{t}_threads": end_to_end(t) for t in threads}
    if oracle_data is not None:
        report["oracle"] = oracle_quality(Path(oracle_data), Path(tempfile.mkdtemp(prefix="mots_bench_oracle_")))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
    return format_table(report) + (f"\nJSON: {out}" if out is not None else "")
