# scenes serve on a CPU, as a non-root user, the run mounted read-only at /run.
# Build: docker build -t scenes-serve .
# Run:   docker run --rm -p 8000:8000 -v "$PWD/runs/first:/run:ro" scenes-serve --run /run --host 0.0.0.0
# (Not built on the machine this was written on: it has no Docker. See docs/serving.md.)
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# CPU wheels of torch and torchvision: the CUDA ones are gigabytes this image never uses.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.10,<2.15" "torchvision>=0.25,<0.30"
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[serve]" && useradd --create-home --uid 10001 scenes
USER scenes
EXPOSE 8000
ENTRYPOINT ["scenes", "serve"]
CMD ["--help"]
