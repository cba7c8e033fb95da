# syntax=docker/dockerfile:1
# One image for every kfops pipeline component, the predictor (python -m kfops.serving) and
# the retraining trigger. Build: `make image` (tags kfops:<version>).
#
# BASE_IMAGE: any Debian-like image with python3 (3.11+) and the venv module. Where no public
#   registry is reachable, build one from Debian packages: `make base-image` (kfops-base:bookworm).
# Extra CA bundle for pip (TLS-intercepting proxies): put *.crt/*.pem files in docker/certs/
#   (or set PIP_CA_BUNDLE for scripts/build-image.sh); used in the build stage only.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY docker/certs/ /tmp/certs/
# Extra CA files (docker/certs/*.crt|*.pem) join the base's bundle for pip: PIP_CERT below.
RUN set -eu; \
    extra="$(find /tmp/certs -maxdepth 1 -type f \( -name '*.crt' -o -name '*.pem' \))"; \
    if [ -n "$extra" ]; then cat /etc/ssl/certs/ca-certificates.crt $extra > /tmp/pip-ca.pem; fi
COPY constraints.txt pyproject.toml README.md ./
# Dependencies first, in their own layer: a code change rebuilds only the small layer below.
# Runtime dependencies plus the "explain" extra (shap; no dev extra), pinned by constraints.txt:
# kfp here is exactly the version that compiles the specs, so components run with
# install_kfp_package=False.
RUN set -eu; \
    if [ -f /tmp/pip-ca.pem ]; then export PIP_CERT=/tmp/pip-ca.pem; fi; \
    python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['explain']))" > /tmp/requirements.txt; \
    /opt/venv/bin/pip install --no-compile -c constraints.txt -r /tmp/requirements.txt; \
    # Dead weight at run time: test suites, C/Cython sources and headers shipped in wheels.
    find /opt/venv/lib -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} + ; \
    find /opt/venv/lib -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \
        -o -name '*.c' -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp' \) -delete; \
    /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib > /dev/null
COPY src/ src/
COPY components/ components/
COPY pipelines/ pipelines/
# Byte-compiled here: the root filesystem is read-only on the cluster, and each task would
# otherwise pay for compiling at start-up.
RUN set -eu; \
    if [ -f /tmp/pip-ca.pem ]; then export PIP_CERT=/tmp/pip-ca.pem; fi; \
    /opt/venv/bin/pip install --no-deps --no-compile . ; \
    /opt/venv/bin/python -m compileall -q /opt/venv/lib/python3*/site-packages/kfops > /dev/null; \
    /opt/venv/bin/python -c "import kfops.cli, kfp, kserve, sklearn, scipy.stats, pandas, \
pyarrow.parquet, pandera, optuna, matplotlib, prometheus_client"; \
    /opt/venv/bin/kfops --version

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="kfops" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN (getent passwd 1000 >/dev/null || useradd --uid 1000 --user-group --create-home kfops) \
    && mkdir -p /mnt/models && chown 1000:1000 /mnt/models
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    HOME=/tmp
USER 1000:1000
WORKDIR /tmp
CMD ["kfops", "--help"]
