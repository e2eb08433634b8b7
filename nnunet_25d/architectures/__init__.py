"""Network classes. Each has a stable dotted path that nnU-Net stores in plans.json."""
