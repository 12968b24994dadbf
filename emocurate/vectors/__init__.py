"""Emotion vectors: load a causal LM, capture activations, fit, evaluate, steer, export."""
