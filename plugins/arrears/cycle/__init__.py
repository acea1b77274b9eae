"""The steps of one collection cycle, each callable from a DAG task or a test without Airflow."""
