"""Oracle association on MOTS20 with the flow-warped IoU cue on DIS flow, leave-one-sequence-out.

For each weight of ``tracker.cues.flow_iou`` (0 = the published pedestrian preset), tracks every
sequence with ground-truth masks (ids removed) and ``flow.source: dis``, scores each sequence
with TrackEval, then picks the weight on one sequence and reports it on the other.

    python tools/flow_cue_ablation.py --data ../shared/data/mots20 --out out/flow_ablation
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mots_ros.config import preset
from mots_ros.offline_tracking import MOTS20_FPS, evaluate_oracle
from mots_ros.pipeline import MotsPipeline

WEIGHTS = (0.0, 0.25, 0.5, 1.0)
FPS = {name: MOTS20_FPS[name] for name in ("0005", "0009")}  # the sequences in ../shared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    args = parser.parse_args()
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for weight in args.weights:
        for sequence, fps in FPS.items():
            config = preset("pedestrian-published").replace(**{"segmentation.kind": "ground_truth", "flow.source": "dis",
                                                     "tracker.cues.flow_iou.weight": weight})
            result = evaluate_oracle(MotsPipeline.from_config(config), args.data,
                                     args.out / f"w{weight:g}" / sequence, sequences=[sequence], fps=fps)
            combined = result.combined("pedestrian")
            scores.setdefault(f"{weight:g}", {})[sequence] = {k: float(combined[k]) for k in ("HOTA", "AssA", "IDS", "IDF1")}
            print(f"flow_iou {weight:<5g} {sequence}: " + "  ".join(f"{k} {v:.2f}" for k, v in scores[f'{weight:g}'][sequence].items()),
                  flush=True)
    choices = {}
    for tuned, reported in (("0009", "0005"), ("0005", "0009")):
        best = max(scores, key=lambda w: scores[w][tuned]["HOTA"])
        choices[reported] = {"weight": float(best), "tuned_on": tuned, **scores[best][reported]}
        print(f"tuned on {tuned}: weight {best} -> on {reported}: " +
              "  ".join(f"{k} {v:.2f}" for k, v in scores[best][reported].items()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flow_ablation.json").write_text(json.dumps({"scores": scores, "leave_one_out": choices}, indent=2))


if __name__ == "__main__":
    main()
