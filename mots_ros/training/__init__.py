"""Training both networks on KITTI MOTS / MOTSChallenge layouts or synthetic sequences."""
