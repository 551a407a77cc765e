"""Cloud-agnostic code of the MLOps loop: ML code (``include.ml``) and stage logic (``include.stages``)."""
