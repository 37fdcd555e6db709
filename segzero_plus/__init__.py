"""Seg-Zero++: reasoning segmentation with GRPO on upstream verl, positive and negative SAM2 prompts.

Layering (dependencies point down only):
    numpy-only core   prompts, parsing, geometry, rewards, masks, metrics, scenes
    services          sam (SAM2 build/scorer/actor/mining), data (dataset preparation), tiny_models
    adapters / apps   verl_reward, evaluation, demo, cli
"""

__version__ = "0.1.0"
