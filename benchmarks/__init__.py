"""avattn's benchmarks, importable as ``benchmarks.*`` from a checkout (a regular package, so that no
other ``benchmarks`` package on the path can shadow it)."""
