"""Both trainers run a few steps on tiny synthetic data, the loss goes down, and checkpoints resume."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mots_ros.checkpoints import read_checkpoint
from mots_ros.synthetic.driving import DrivingConfig, write_sequence
from mots_ros.training.embedding import EmbeddingTrainingConfig, train_embedding
from mots_ros.training.losses import batch_hard_triplet_loss, lovasz_hinge
from mots_ros.training.segmentation import SegmentationTrainingConfig, train_segmentation

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    for index in range(2):
        write_sequence(root, f"000{index}", DrivingConfig(height=128, width=416, frames=6, seed=40 + index))
    return root


def _losses(path):
    return read_checkpoint(path)[1]["loss_history"]


def test_segmentation_loss_goes_down_and_training_resumes(tiny_data, tmp_path):
    config = SegmentationTrainingConfig(data=[str(tiny_data)], out=str(tmp_path), width=0.25, crop_height=64, crop_width=192,
                                        batch_size=2, steps=40, lr=2e-3, checkpoint_every=20, threads=2, device="cpu")
    final = train_segmentation(config, progress=False)
    losses = _losses(final)
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:8])
    raw = torch.load(final, weights_only=True)
    assert set(raw) >= {"epoch", "model_state_dict", "optim_state_dict"} and raw["epoch"] == 40
    assert all(key.startswith("module.") for key in raw["model_state_dict"])
    config.steps, config.resume = 50, True
    assert read_checkpoint(train_segmentation(config, progress=False))[1]["epoch"] == 50


def test_embedding_loss_goes_down_and_training_resumes(tiny_data, tmp_path):
    config = EmbeddingTrainingConfig(data=[str(tiny_data)], out=str(tmp_path), steps=30, instances_per_step=6,
                                     foreground_points=64, environment_points=32, lr=1e-3, threads=2, device="cpu",
                                     balanced=True)
    final = train_embedding(config, progress=False)
    losses = [loss for loss in _losses(final) if loss > 0]
    assert np.mean(losses[-8:]) < np.mean(losses[:8])
    assert read_checkpoint(final)[1]["epoch"] == 30
    config.steps, config.resume = 34, True
    assert read_checkpoint(train_embedding(config, progress=False))[1]["epoch"] == 34


def test_shuffle_group_sampling_draws_the_people_of_one_frame_with_crops_around_it(tiny_data, tmp_path):
    from mots_ros.training.data import AnnotatedDataset
    from mots_ros.training.embedding import InstanceDatabase, TripletBatches

    database = InstanceDatabase(AnnotatedDataset([str(tiny_data)]), class_id=1, progress=False)
    config = EmbeddingTrainingConfig(data=[str(tiny_data)], out=str(tmp_path), instances_per_step=3, shuffle_group=True)
    batches = TripletBatches(database, config, np.random.default_rng(0))
    for _ in range(20):
        drawn = batches._instances()
        assert len(drawn) == 3 and len({key for key, _ in drawn}) == 3
        first_key, first_frame = drawn[0]
        group = [key for key, frame in drawn if key[0] == first_key[0] and frame == first_frame]
        in_view = batches.people_in_frame[(first_key[0], first_frame)]
        assert set(group) <= set(in_view) and len(group) == min(3, len(in_view))  # one frame's people, together
        for key, frame in drawn:
            crops = database.tracks[key]
            if len(crops) >= 3 and crops[1].frame <= frame <= crops[-2].frame:
                assert batches._crops_of(key, frame)[1].frame == frame  # the middle crop is the group's frame


def test_weight_average_is_the_mean_of_the_states_it_was_given():
    from mots_ros.training.run import WeightAverage

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    average = WeightAverage(model)
    for value in (1.0, 2.0, 6.0):
        with torch.no_grad():
            for tensor in model.state_dict().values():
                tensor.fill_(value if tensor.is_floating_point() else int(value))
        average.update(model)
    state = average.model.state_dict()
    assert average.count == 3 and torch.equal(state["0.weight"], torch.full((2, 2), 3.0))
    assert torch.equal(state["1.running_var"], torch.full((2,), 3.0))
    assert int(state["1.num_batches_tracked"]) == 6  # counters are taken as they are, not averaged


def test_embedding_training_writes_the_average_of_its_last_steps_and_resumes_it(tiny_data, tmp_path):
    config = EmbeddingTrainingConfig(data=[str(tiny_data)], out=str(tmp_path), steps=8, instances_per_step=6,
                                     foreground_points=64, environment_points=32, threads=2, device="cpu",
                                     checkpoint_every=4, average_from=0.5)
    final = train_embedding(config, progress=False)
    averaged = final.with_name("final_average.pth")
    state, metadata = read_checkpoint(averaged)
    assert metadata["averaged_steps"] == 4 and metadata["mots_ros"]["model"] == "PointTrackNet"
    last_state = read_checkpoint(final)[0]
    assert any(not torch.equal(state[k], last_state[k]) for k in state)
    config.steps, config.resume = 12, True  # the average so far is resumed and the 4 new steps join it
    assert read_checkpoint(train_embedding(config, progress=False).with_name("final_average.pth"))[1]["averaged_steps"] == 8
    with pytest.raises(ValueError, match="average_from"):
        train_embedding(EmbeddingTrainingConfig(data=[str(tiny_data)], out=str(tmp_path / "bad"), average_from=1.5),
                        progress=False)


def test_lovasz_hinge_prefers_correct_logits():
    labels = torch.tensor([1, 1, 0, 0])
    assert lovasz_hinge(torch.tensor([5.0, 5.0, -5.0, -5.0]), labels) == 0
    assert lovasz_hinge(torch.tensor([-1.0, 1.0, 1.0, -1.0]), labels) > 1


def test_dont_care_pixels_are_left_out_of_every_term_of_the_segmentation_loss():
    from mots_ros.training.losses import spatial_embedding_loss

    labels = torch.zeros(1, 16, 24, dtype=torch.int64)
    labels[0, 4:10, 4:9] = 1
    raw = torch.randn(1, 5, 16, 24, generator=torch.Generator().manual_seed(0))
    published = spatial_embedding_loss(raw, labels)
    dont_care = labels.clone()
    dont_care[0, 10:, 12:] = -1
    changed = raw.clone()
    changed[0, :, 10:, 12:] = 5.0  # whatever the network says there
    assert spatial_embedding_loss(changed, dont_care) == spatial_embedding_loss(raw, dont_care)
    assert spatial_embedding_loss(changed, labels) > published  # as background, those pixels count


def test_the_crop_sampler_marks_ignore_regions_dont_care_only_when_asked(tmp_path):
    from mots_ros.training.data import AnnotatedDataset
    from mots_ros.training.segmentation import CropSampler, SegmentationTrainingConfig

    write_sequence(tmp_path, "0000", DrivingConfig(height=96, width=320, frames=2, seed=7, ignore_distance_m=8.0))
    kinds = {}
    for treatment in ("background", "dont_care"):
        config = SegmentationTrainingConfig(data=[str(tmp_path)], out=str(tmp_path / treatment), crop_height=96, crop_width=320,
                                            ignore_regions=treatment)
        sampler = CropSampler(AnnotatedDataset(config.data), config, np.random.default_rng(0))
        kinds[treatment] = np.stack([sampler._load(index)[1] for index in range(2)])
    ignored = kinds["dont_care"] == -1
    assert ignored.any() and (kinds["background"][ignored] == 0).all()
    assert np.array_equal(kinds["dont_care"][~ignored], kinds["background"][~ignored])
    with pytest.raises(ValueError, match="ignore_regions must be background or dont_care"):
        train_segmentation(SegmentationTrainingConfig(data=[str(tmp_path)], out=str(tmp_path / "x"), ignore_regions="skip"))


def test_triplet_loss_is_zero_for_separated_identities_and_for_one_identity():
    embeddings = torch.tensor([[0.0, 0.0], [0.05, 0.0], [5.0, 5.0], [5.0, 5.1]])
    assert batch_hard_triplet_loss(embeddings, torch.tensor([1, 1, 2, 2])) == 0
    assert batch_hard_triplet_loss(embeddings, torch.tensor([1, 2, 1, 2])) > 0
    assert batch_hard_triplet_loss(embeddings, torch.tensor([1, 1, 1, 1])) == 0


def test_part_embedding_training_with_augmentation_and_aligned_scales_starts_from_a_global_checkpoint(tiny_data, tmp_path):
    from mots_ros.model_files import build_embedding_network

    common = dict(data=[str(tiny_data)], instances_per_step=6, foreground_points=64, environment_points=32, lr=1e-3,
                  threads=2, device="cpu")
    global_only = train_embedding(EmbeddingTrainingConfig(out=str(tmp_path / "global"), steps=4, **common), progress=False)
    config = EmbeddingTrainingConfig(out=str(tmp_path / "parts"), steps=12, parts=2, augment=True, aligned_scales=True,
                                     init=str(global_only), **common)
    final = train_embedding(config, progress=False)
    state, info = read_checkpoint(final)
    assert info["mots_ros"]["parts"] == 2 and any(".parts.attention." in key for key in state)
    assert info["mots_ros"]["aligned_scales"] is True
    assert all(np.isfinite(_losses(final)))
    started = build_embedding_network(global_only).state_dict()
    trained = build_embedding_network(final)
    assert trained.parts == 2 and trained.aligned_scales
    # the displacement layers start at zero and learn
    assert any(layer.weight.abs().sum() > 0 for layer in trained.point_feat.aligned_scales.flow)
    # the shared layers started from the global checkpoint and then trained on
    key = "point_feat.last_emb.2.weight"
    assert not torch.equal(trained.state_dict()[key], started[key])


def test_held_out_identities_are_left_out_of_training_and_alone_in_calibration(tiny_data):
    from mots_ros.config import load_config
    from mots_ros.datasets import find_sequences, read_annotations
    from mots_ros.pipeline import MotsPipeline
    from mots_ros.training.calibration import collect_instances
    from mots_ros.training.data import AnnotatedDataset, is_held_out_identity
    from mots_ros.training.embedding import InstanceDatabase

    dataset = AnnotatedDataset([str(tiny_data)])
    everyone = InstanceDatabase(dataset, class_id=1, progress=False)
    trained = InstanceDatabase(dataset, class_id=1, progress=False, held_out_identities=0.5)
    held = {key for key in everyone.keys if is_held_out_identity(key[0], key[1], 0.5)}
    assert held and len(held) < len(everyone)  # the tiny data has both kinds at 0.5
    assert set(trained.keys) == set(everyone.keys) - held
    # the choice is stable and ignores the folder that holds the sequence
    assert all(is_held_out_identity(f"elsewhere/{key[0].rsplit('/', 1)[-1]}", key[1], 0.5) for key in held)

    config = load_config(preset_name="car-published").replace(**{"segmentation.kind": "ground_truth",
                                                                  "inference.backend": "torch"})
    sequence = find_sequences(tiny_data)[0]
    collected = collect_instances(MotsPipeline.from_config(config), tiny_data, [sequence.name], held_out_identities=0.5)
    frames, _, _ = collected[sequence.name]
    expected = {}
    for record in read_annotations(sequence):
        if not record.is_ignore and record.track_id // 1000 == 1 and is_held_out_identity(sequence.name, record.track_id, 0.5):
            expected[record.frame] = expected.get(record.frame, 0) + 1
    assert sum(expected.values()) > 0
    assert {frame: len(instances) for frame, _, instances in frames if instances} == expected


def test_scale_grids_nest_and_calibration_scores_under_the_given_settings(tiny_data, tmp_path, capsys):
    from mots_ros.cli import main
    from mots_ros.training.calibration import DEFAULT_SCALES, scale_grid

    assert DEFAULT_SCALES == tuple(2 ** (k / 2) for k in range(-4, 13))  # the grid every shipped model used
    fine = scale_grid(4)
    assert set(DEFAULT_SCALES) <= set(fine) and len(fine) == 2 * len(DEFAULT_SCALES) - 1
    assert np.allclose(np.diff(np.log2(fine)), 0.25)
    with pytest.raises(ValueError, match="steps_per_octave"):
        scale_grid(0)

    out = tmp_path / "calibrated.pth"
    command = ["train", "calibrate", "--init", "models/pointtrack_car.pth", "--data", str(tiny_data), "--sequences", "0000",
               "--preset", "car", "--steps-per-octave", "1", "--score-with", "measured", "--set", "tracker.cues.mask_iou.weight=0", "--out", str(out)]
    assert main(command) == 0
    calibration = read_checkpoint(out)[1]["calibration"]
    assert [row[0] for row in calibration["table"]] == list(scale_grid(1))
    # The shipped car embedding is already scaled: the recorded scale is the total, not the step.
    chosen = max(calibration["table"], key=lambda row: (round(row[1], 6), row[2]))[0]
    shipped_scale = read_checkpoint(Path("models/pointtrack_car.pth"))[1]["mots_ros"]["embedding_scale"]
    assert read_checkpoint(out)[1]["mots_ros"]["embedding_scale"] == pytest.approx(shipped_scale * chosen)
    assert calibration["overrides"] == ["tracker.cues.mask_iou.weight=0"] and calibration["scored_with"] == "car"
    assert calibration["steps_per_octave"] == 1
    assert main([*command[:-4], "--set", "no-equals-sign", "--out", str(tmp_path / "never.pth")]) == 2
    assert "--set expects KEY=VALUE, got 'no-equals-sign'" in capsys.readouterr().err
    assert not (tmp_path / "never.pth").exists()


def test_negative_median_is_fitted_on_the_grid_times_the_within_frame_median_and_recorded(tiny_data, tmp_path):
    from mots_ros.cli import main
    from mots_ros.config import preset
    from mots_ros.pipeline import MotsPipeline
    from mots_ros.training.calibration import collect_instances, scale_grid, within_frame_median

    out = tmp_path / "reference.pth"
    assert main(["train", "calibrate", "--fit", "negative_median", "--init", "models/pointtrack_car.pth", "--data",
                 str(tiny_data), "--sequences", "0000", "--preset", "car", "--steps-per-octave", "1", "--out", str(out)]) == 0
    state, metadata = read_checkpoint(out)
    config = preset("car-published").replace(**{"segmentation.kind": "ground_truth", "inference.backend": "torch",
                                                "flow.source": "none"})
    median = within_frame_median(collect_instances(MotsPipeline.from_config(config), tiny_data, ["0000"]))
    table = metadata["calibration"]["table"]
    assert [row[0] for row in table] == pytest.approx([median * factor for factor in scale_grid(1)])
    assert metadata["negative_median"] == max(table, key=lambda row: (round(row[1], 6), row[2]))[0]
    shipped_state, shipped = read_checkpoint(Path("models/pointtrack_car.pth"))
    assert metadata["mots_ros"]["embedding_scale"] == shipped["mots_ros"]["embedding_scale"]  # weights unchanged
    assert all(torch.allclose(state[k].float(), shipped_state[k].float()) for k in state)


def test_warping_by_backward_flow_moves_values_and_marks_what_left_the_frame():
    from mots_ros.training.segmentation import warp_backward

    previous = torch.zeros(1, 1, 4, 8)
    previous[0, 0, :, 5] = 1.0
    flow = torch.zeros(1, 4, 8, 2)
    flow[..., 0] = 2.0  # each current pixel was 2 px to the right in the previous frame
    warped, inside = warp_backward(previous, flow)
    assert torch.equal(warped[0, 0, 0], torch.tensor([0.0, 0, 0, 1, 0, 0, 0, 0]))
    assert inside[0, 0].tolist() == [True] * 6 + [False] * 2


def test_seed_consistency_is_zero_for_a_still_scene_and_pulls_only_the_current_frame():
    from mots_ros.training.segmentation import seed_consistency_loss

    previous = torch.rand(2, 6, 10)
    still = torch.zeros(2, 6, 10, 2)
    assert float(seed_consistency_loss(previous.clone(), previous, still)) == pytest.approx(0.0, abs=1e-7)
    current = torch.rand(2, 6, 10, requires_grad=True)
    loss = seed_consistency_loss(current, previous, still)
    loss.backward()
    assert float(loss.detach()) > 0 and current.grad is not None and float(current.grad.abs().sum()) > 0


def test_augmented_crops_with_a_previous_frame_and_its_flow(tiny_data):
    from mots_ros.training.data import AnnotatedDataset
    from mots_ros.training.segmentation import CropSampler

    config = SegmentationTrainingConfig(data=[str(tiny_data)], out="unused", crop_height=64, crop_width=96,
                                        scale_range=(0.5, 1.5), centre_jitter=0.25, colour_jitter=0.3,
                                        seed_consistency_weight=1.0, max_frame_gap=2)
    dataset = AnnotatedDataset(config.data)
    sampler = CropSampler(dataset, config, np.random.default_rng(0))
    crops = [sampler.sample() for _ in range(12)]
    for crop in crops:
        assert crop.image.shape == (64, 96, 3) and crop.labels.shape == (64, 96)
        assert set(np.unique(crop.labels)) <= {0} | {record.track_id for frame in dataset.frames for record in frame.records}
    paired = [crop for crop in crops if crop.previous_image is not None]
    assert paired, "no crop found its previous frame"
    for crop in paired:
        assert crop.previous_image.shape == (64, 96, 3) and crop.backward_flow.shape == (64, 96, 2)
    # the published recipe (every option off) has no previous frame and leaves colours alone
    plain = CropSampler(dataset, SegmentationTrainingConfig(data=[str(tiny_data)], out="unused", crop_height=64, crop_width=96),
                        np.random.default_rng(0)).sample()
    assert plain.previous_image is None and plain.backward_flow is None


def test_segmentation_training_with_seed_consistency_runs_and_learns(tiny_data, tmp_path):
    config = SegmentationTrainingConfig(data=[str(tiny_data)], out=str(tmp_path), width=0.25, crop_height=64, crop_width=192,
                                        batch_size=2, steps=30, lr=2e-3, checkpoint_every=30, threads=2, device="cpu",
                                        scale_range=(0.8, 1.2), colour_jitter=0.2, seed_consistency_weight=10.0)
    losses = _losses(train_segmentation(config, progress=False))
    assert len(losses) == 30 and np.isfinite(losses).all()
    assert np.mean(losses[-8:]) < np.mean(losses[:8])
