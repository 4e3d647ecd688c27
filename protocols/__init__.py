"""Experiments as code: each protocol is a function of a `Crossbar` it is given."""
