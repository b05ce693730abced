"""Replay and calibrate: a policy judged on a service's recorded history, and the
simulator's model of that service fitted from it."""
