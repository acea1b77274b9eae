"""Developer tools beside bench/ and scripts/: the synthetic extract generator, `make demo`, and
the generators of docs/ examples. Not part of the runtime package (plugins/arrears), so Airflow
workers never import them; run from the repository root (`python -m devtools.demo`)."""
