"""A DIR network small enough to train a few steps in seconds on a 2-core CPU (shared by tests)."""
TINY_MODEL = {"backbone": "resnet18", "img_size": 64, "num_stages": 2, "width": 32, "mfp_kernel": 1,
              "gcn_node_weights": False}
