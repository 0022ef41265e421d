"""Training: data preparation, task sampling, freezing and LLRD, feature cache, checkpoints, the loop."""
