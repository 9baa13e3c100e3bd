FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml constraints.txt ./
COPY sdk/python sdk/python
RUN pip install --no-cache-dir -c constraints.txt ./sdk/python
COPY . .
RUN pip install --no-cache-dir -c constraints.txt . \
 && FLAGSITE_ENV=demo python manage.py collectstatic --noinput -v0
USER nobody
EXPOSE 8000
CMD ["gunicorn", "-c", "flagsite/gunicorn_conf.py", "flagsite.asgi:application"]
