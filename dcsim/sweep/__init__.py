"""Design-space sweeps: a YAML spec, its points, a local process pool or a Dask cluster."""
