# One image for every coldchain process; docker-compose.yml chooses the subcommand
# (`coldchain db migrate`, `coldchain ingest`, `coldchain api ...`, ...).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A fixed unprivileged uid/gid, so files mounted into the container can be owned by it.
RUN groupadd --system --gid 10001 coldchain \
 && useradd --system --uid 10001 --gid coldchain --home-dir /var/lib/coldchain \
        --create-home --shell /usr/sbin/nologin coldchain

# Copy only what the package build needs: no .git, .venv, secrets/ or
# deploy/mosquitto/passwd can end up in an image layer.
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY core/ core/
COPY ingest/ ingest/
COPY monitor/ monitor/
COPY alerts/ alerts/
COPY case_link/ case_link/
COPY dashboard/ dashboard/
COPY simulators/ simulators/

# A regular (not editable) install with the same pinned versions as development; the
# source tree is not needed afterwards (migrations, profiles and scenarios are package data).
RUN pip install --no-cache-dir -c constraints.txt . \
 && cd / && rm -rf /src

USER coldchain
WORKDIR /var/lib/coldchain

# api and dashboard defaults; compose health checks use `python -c` with urllib,
# because curl is not in the slim image.
EXPOSE 8000 8050

ENTRYPOINT ["coldchain"]
CMD ["--help"]
