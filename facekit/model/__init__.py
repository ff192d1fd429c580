"""The networks: backbones, Model A and B, their losses, the hand-in export and merges."""
