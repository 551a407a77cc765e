# The project's DAGs on the official Airflow image of the lock's version: apache-airflow==3.3.2 of
# requirements.txt, on Python 3.11, the version the lock is compiled for (Makefile, `lock`).
# Not built on the development machine (it has no docker): see README, "Scale out".
#   docker build -t mlops-dags .
FROM apache/airflow:3.3.2-python3.11

ENV PROJECT=/opt/airflow/project

# The complete pinned lock, the same pins `make setup` installs (apache-airflow among them, so
# pip keeps the image's Airflow). The official image installs as its `airflow` user.
COPY --chown=airflow:0 requirements.txt ${PROJECT}/requirements.txt
RUN pip install --no-cache-dir -r ${PROJECT}/requirements.txt

# The DAGs, the code they call, the plugin and the settings. The local provider's files go under
# ${PROJECT}/.mlops ([local] root of astro.toml), which the airflow user owns.
COPY --chown=airflow:0 astro.toml ${PROJECT}/astro.toml
COPY --chown=airflow:0 core ${PROJECT}/core
COPY --chown=airflow:0 demo ${PROJECT}/demo
COPY --chown=airflow:0 lifecycle ${PROJECT}/lifecycle
COPY --chown=airflow:0 apps ${PROJECT}/apps
COPY --chown=airflow:0 providers ${PROJECT}/providers
COPY --chown=airflow:0 plugins ${PROJECT}/plugins
COPY --chown=airflow:0 dags ${PROJECT}/dags

ENV PYTHONPATH=${PROJECT} \
    AIRFLOW__CORE__DAGS_FOLDER=${PROJECT}/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=${PROJECT}/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    GX_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    MLFLOW_ENABLE_TELEMETRY=false
