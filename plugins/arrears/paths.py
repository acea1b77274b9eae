"""Where the project's non-Python assets live (SQL, templates, policy files).

The package sits in ``plugins/arrears`` next to ``include/`` at the repo root; in a container the
same tree is mounted at ``/opt/airflow``. ``ARREARS_INCLUDE`` overrides the location.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INCLUDE = Path(os.environ.get("ARREARS_INCLUDE", REPO_ROOT / "include"))
SQL_DIR = INCLUDE / "sql"
TEMPLATES_DIR = INCLUDE / "templates"
POLICY_DIR = INCLUDE / "policy"
UTILITY_FILE = INCLUDE / "utility.toml"
