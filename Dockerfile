# The hub (and the simulated city) image. Only the Python packages are copied (see .dockerignore: no state,
# keys, tokens, tests or VCS data); it runs as the unprivileged `dozor` user (uid 10001, which
# `dozor provision init` makes the owner of the hub's keys and state when run as root).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends espeak-ng sox && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /nonexistent --shell /usr/sbin/nologin dozor
WORKDIR /opt/dozor
COPY pyproject.toml setup.py README.md ./
COPY contract ./contract
COPY runtime ./runtime
COPY gateway ./gateway
COPY hub ./hub
COPY simulators ./simulators
COPY firmware ./firmware
COPY dozor ./dozor
# gcc only for the build of the hub's compiled ingest path (setup.py), then gone from the image
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
 && pip install --no-cache-dir '.[demo]' \
 && apt-get purge -y --auto-remove gcc libc6-dev && rm -rf /var/lib/apt/lists/*
USER dozor
EXPOSE 8080
