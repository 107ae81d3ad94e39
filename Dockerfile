# migsafe: the `migsafe` command and the GitHub App (`migsafe serve`) in a slim image.
FROM python:3.11-slim

# PostgreSQL server binaries for the embedded sandbox cluster; git for --base/--head;
# bubblewrap (and util-linux's setpriv/prlimit) to contain the repository code a check runs.
# The container needs user namespaces for bubblewrap: see docker-compose.yml's worker.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql git util-linux bubblewrap \
    && rm -rf /var/lib/apt/lists/*
ENV PATH="/usr/lib/postgresql/15/bin:${PATH}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install --no-cache-dir .

RUN useradd --create-home --uid 10001 migsafe
USER migsafe
ENV PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=2)"
ENTRYPOINT ["migsafe"]
CMD ["serve"]
