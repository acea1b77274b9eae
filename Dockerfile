# The collection cycle's image: the official Airflow image of the locked version, plus exactly the
# Python packages of uv.lock and the system packages the letters need.
#   docker compose build      (or: docker build -t arrears-airflow:3.3.2 .)
FROM ghcr.io/astral-sh/uv:0.13.8 AS uv

FROM apache/airflow:3.3.2-python3.11

USER root
# The lawyer letters are drawn with a CJK font (plugins/arrears/batches/letters.py).
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-wqy-zenhei \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY --from=uv /uv /usr/local/bin/uv

USER airflow
# The lock file, exported as pinned requirements (no dev tools, not the project itself: its code
# is on the image below and mounted by docker-compose.yml). Pinning apache-airflow keeps pip from
# moving the image's own Airflow.
COPY --chown=airflow:root pyproject.toml uv.lock /opt/airflow/build/
RUN uv export --project /opt/airflow/build --frozen --no-dev --no-emit-project --no-hashes \
        --format requirements-txt -o /opt/airflow/build/requirements.txt \
 && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        -r /opt/airflow/build/requirements.txt

# The DAGs, the domain package (on Airflow's plugins path) and the SQL/templates/policies.
COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
COPY --chown=airflow:root include/ /opt/airflow/include/
ENV ARREARS_INCLUDE=/opt/airflow/include \
    ARREARS_CJK_FONT=/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc
