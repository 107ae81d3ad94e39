# migsafe: the `migsafe` command (and, later, the GitHub App) in a slim image.
FROM python:3.11-slim

# PostgreSQL server binaries for the embedded sandbox cluster; git for --base/--head.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql git util-linux \
    && rm -rf /var/lib/apt/lists/*
ENV PATH="/usr/lib/postgresql/15/bin:${PATH}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install --no-cache-dir .

RUN useradd --create-home --uid 10001 migsafe
USER migsafe
ENTRYPOINT ["migsafe"]
CMD ["--help"]
