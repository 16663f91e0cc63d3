# The portal's image: web (gunicorn), Celery worker and beat all run from it (see compose.yaml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=portal.settings.production \
    GUNICORN_BIND=0.0.0.0:8000

WORKDIR /app

RUN groupadd --system portal && useradd --system --gid portal --home-dir /app --shell /usr/sbin/nologin portal

COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .

# Static files are collected at build time and served by whitenoise. The key and hosts here
# exist only for this command; the real ones come from the environment at run time.
RUN DJANGO_SECRET_KEY=collectstatic-only-not-a-real-key DJANGO_ALLOWED_HOSTS=build \
    python manage.py collectstatic --noinput --verbosity 0

# Import uploads live here (a volume shared by web and worker in compose.yaml).
RUN mkdir -p /app/media && chown portal:portal /app/media

USER portal
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "deploy/healthcheck.py"]

CMD ["gunicorn", "--config", "gunicorn.conf.py"]
