# The stylesynth server in a container: the same steps as on a machine (scripts/install.sh), run as a non-root user,
# headless (no sound card in a container: clients get audio over OSC as wav paths / chunks), OSC on UDP 9000.
#
#   docker build -t stylesynth .
#   docker run --rm -p 9000:9000/udp -p 9001:9001 stylesynth     (9001: OSCQuery and the web page)
#
# For an NVIDIA GPU, build on a CUDA runtime image; the empty TORCH_INDEX lets pip take PyPI's CUDA build of torch:
#   docker build --build-arg BASE=nvidia/cuda:12.4.1-runtime-ubuntu22.04 --build-arg TORCH_INDEX= -t stylesynth:cuda .
#   docker run --rm --gpus all -p 9000:9000/udp -p 9001:9001 stylesynth:cuda \
#       stylesynth serve --host 0.0.0.0 --no-audio --device cuda
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

# CPU image: PyTorch's CPU-only index, so pip does not download the multi-GB CUDA build of torch from PyPI.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/stylesynth/.venv/bin:$PATH

WORKDIR /opt/stylesynth
# Everything the server needs; .dockerignore keeps out the venv, git, data, runs and tests.
COPY . .

# install.sh pins nothing itself: apt takes bookworm's (or jammy's) current packages and pip the versions
# pyproject.toml allows, torch pinned exactly there. Apt lists are dropped to keep the image small.
RUN STYLESYNTH_TORCH_INDEX="$TORCH_INDEX" bash scripts/install.sh \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin stylesynth

# Numeric, so Kubernetes' runAsNonRoot can verify it; the name above owns the home (cache of wavs for clients).
USER 10001
EXPOSE 9000/udp 9001/tcp
CMD ["stylesynth", "serve", "--host", "0.0.0.0", "--no-audio"]
