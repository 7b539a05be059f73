"""Tools around the library: the container image (Docker) and the step benchmarks' report (``sd-darts bench``)."""
