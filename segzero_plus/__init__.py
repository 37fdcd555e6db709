"""Seg-Zero++: reasoning segmentation with GRPO on upstream verl, positive and negative SAM2 prompts.

Floors (imports point down only; ``tests/test_layering_on_cpu.py`` checks it):
    numpy-only core   prompts, parsing, geometry, rewards, metrics, masks (+ errors, lru, devices, paths)
    services          sam (SAM2 build/scorer/actor/counterfactual/mining), then data (dataset
                      preparation, the look-alike scene generator, the mining pass)
    adapters / apps   train, verl_reward, evaluation, reporting, testing, demo, cli
"""

__version__ = "0.1.0"
