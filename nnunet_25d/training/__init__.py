"""nnU-Net trainer classes of the plugin. ``nnunet_25d/trainers`` re-exports them for nnU-Net's lookup."""
