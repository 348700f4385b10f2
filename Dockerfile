# The hub (and the simulated city) image. Only the Python packages are copied (see .dockerignore: no state,
# keys, tokens, tests or VCS data); it runs as the unprivileged `dozor` user (uid 10001, which
# `dozor provision init` makes the owner of the hub's keys and state when run as root).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends espeak-ng sox && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /nonexistent --shell /usr/sbin/nologin dozor
WORKDIR /opt/dozor
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY runtime ./runtime
COPY gateway ./gateway
COPY hub ./hub
COPY simulators ./simulators
COPY firmware ./firmware
COPY dozor ./dozor
RUN pip install --no-cache-dir '.[demo]'
USER dozor
EXPOSE 8080
