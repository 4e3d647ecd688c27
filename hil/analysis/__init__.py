"""Analysis of what was measured: noise statistics, calibration fits, sweep statistics, paper figures.

Pure functions on arrays and tables (no crossbar, no simulator): a board's data and the
twin's go through the same code.
"""
