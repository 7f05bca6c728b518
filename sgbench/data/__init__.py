"""Datasets: the embedded Animal-MNIST benchmark (and, at scale, latent datasets)."""
