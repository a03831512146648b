"""Minimal numpy training for the model zoo: layers, LeNet models, SGD with hooks, MNIST."""
