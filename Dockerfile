# syntax=docker/dockerfile:1
# Parley server image: the package, the agent catalog and the web client.
#
#   docker build -t parley .
#   docker run -p 8000:8000 -e DATABASE_URL=... -e REDIS_URL=... -e PARLEY_JWT_SECRET=... parley

# --- build: install the package and its dependencies into a virtualenv ---------
FROM python:3.12-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TIKTOKEN_CACHE_DIR=/opt/tiktoken

WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install .

# tiktoken downloads its encodings on first use; fetch them now so the running
# container needs no outbound access for exact token counts. Parley falls back
# to estimates when they are missing, so a failure here is not fatal.
RUN /opt/venv/bin/python -c "import tiktoken; [tiktoken.get_encoding(n) for n in ('o200k_base', 'cl100k_base')]" \
 || (echo "warning: tiktoken encodings not cached; token counts will be estimated" && mkdir -p /opt/tiktoken)

# --- runtime -------------------------------------------------------------------
FROM python:3.12-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TIKTOKEN_CACHE_DIR=/opt/tiktoken \
    PARLEY_CATALOG=/app \
    PARLEY_WEB_DIR=/app/web \
    PARLEY_CLIENT_DIR=/app/clients/js/src \
    PARLEY_DATA_DIR=/var/lib/parley

# An unprivileged user; the code and catalog stay root-owned, so a compromised
# process can't rewrite them. Only the data directory is writable.
RUN groupadd --system --gid 10001 parley \
 && useradd --system --uid 10001 --gid parley --home-dir /var/lib/parley --no-create-home \
      --shell /usr/sbin/nologin parley \
 && install -d -o parley -g parley -m 0700 /var/lib/parley

COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/tiktoken /opt/tiktoken

WORKDIR /app
COPY personalities ./personalities
COPY rules ./rules
COPY tools ./tools
COPY knowledge ./knowledge
COPY agents.yaml ./
COPY web ./web
COPY clients/js/src ./clients/js/src

USER parley:parley
EXPOSE 8000

# python:3.12-slim has no curl; urllib exits non-zero on refusal or non-2xx.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]

# `parley serve` applies pending migrations before it listens.
CMD ["parley", "serve", "--host", "0.0.0.0", "--port", "8000"]
