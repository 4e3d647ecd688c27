"""Lab instruments and `LabCrossbar`: the same `Crossbar` interface on a physical board."""
