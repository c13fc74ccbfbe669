# The service in one image: the same processes as the Procfile (web, worker, beat), chosen by the
# command. Small (slim base, wheels built in a separate stage), run as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml ./
COPY telemetry telemetry
COPY accounts accounts
COPY ingest ingest
COPY dashboards dashboards
COPY alerts alerts
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_SERVER__HOST=0.0.0.0 \
    APP_SERVER__PORT=8080 \
    APP_DATA_DIR=/var/lib/telemetry \
    APP_SECURITY__SECRET_KEY_REQUIRED=true
RUN useradd --system --home-dir /app --shell /usr/sbin/nologin telemetry \
    && mkdir -p /var/lib/telemetry/archives && chown -R telemetry /var/lib/telemetry
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --chown=telemetry . .
# Static files are collected into the image (served by whitenoise); the key is for this step only.
# Every container must be given the same SECRET_KEY: one generated per container would differ.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0
USER telemetry
EXPOSE 8080 8081
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"
CMD ["python", "-m", "telemetry.server"]
