# The serving image of the GCP provider: the project's package behind Vertex AI's custom-container
# contract (providers/gcp/vertex_serve.py). Build it from the package the provider uploaded
# (gs://<bucket>/<prefix>/_vertex/code/<hash>/mlops_bundle-1.0.tar.gz, copied here), push it to
# Artifact Registry and set [gcp] serving_image to its URI:
#   gcloud storage cp gs://.../mlops_bundle-1.0.tar.gz . && docker build -f serving.Dockerfile -t IMAGE .
FROM python:3.11-slim
COPY mlops_bundle-1.0.tar.gz /tmp/
RUN pip install --no-cache-dir /tmp/mlops_bundle-1.0.tar.gz google-cloud-storage && rm /tmp/mlops_bundle-1.0.tar.gz
ENV AIP_HTTP_PORT=8080
EXPOSE 8080
ENTRYPOINT ["python", "-m", "vertex_serve"]
