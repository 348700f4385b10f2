FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends espeak-ng sox && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/dozor
COPY . .
RUN pip install --no-cache-dir . && useradd --system dozor && mkdir -p /var/lib/dozor-hub && chown dozor /var/lib/dozor-hub
USER dozor
EXPOSE 8080
