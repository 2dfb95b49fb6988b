"""gansweep's ML library: image sources, dataset-level augmentation, GAN models, training and metrics.

Depends on torch/torchvision (and torch-fidelity/timm for metrics) only: no Ray, no MLflow.
"""
