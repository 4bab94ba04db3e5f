"""The differentiable primitives, grouped by kind. Each is a Function subclass with its
forward and backward side by side; ``minigrad.functional`` wraps them as functions."""
