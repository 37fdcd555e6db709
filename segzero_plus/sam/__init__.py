"""SAM2 services on the numpy core: ``build`` (config registry, checkpoint loading, random-weight
checkpoints), ``protocol`` (how SAM's mask is chosen, the default SAM2 model), ``scorer`` (batched scorer
with an embedding cache and the image-key recipe), ``spec`` (what the shared scorer is built from),
``actor`` (one shared scorer per node as a Ray actor, and its retrying client), ``counterfactual`` (the SAM negative-point reward) and ``mining`` (confused regions of one
object). Frozen SAM 2.1 (Hiera-L in production) is the scorer in training, the segmenter in evaluation
and the miner of confused regions; placement, memory and costs: docs/sam.md. Import the modules
themselves; this package re-exports nothing (and imports nothing heavy)."""
