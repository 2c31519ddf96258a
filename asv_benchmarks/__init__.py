"""asv benchmarks of the harness's kernel routines (see asv_benchmarks/README.md)."""
