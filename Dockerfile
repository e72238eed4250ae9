# syntax=docker/dockerfile:1
# curvd, CPU build, Debian 12 (the CUDA image is Dockerfile.cuda). Stages:
#   compiled  installs with the README's script, builds curvd (with the
#             curvd_archive_check it runs), curvctl and the example trainer,
#             and stages them with the Debian packages that
#             own the libraries they load (scripts/stage_image_files.sh)
#   runtime   installs exactly those packages, copies the binaries, runs as the
#             non-root user curvd (uid 10001) and keeps a read-only root: state
#             in the volume /var/lib/curvd, file:// data under /data (mount it
#             read-only), TLS and tokens under /etc/curvd (README, Deployment).
# BINARIES names the stage or image holding /staging: the default compiles here;
# scripts/build_image.sh --prebuilt passes an image of binaries that
# scripts/build.sh already built (ADR 18).
#   docker build -t curvd .
#   scripts/build_image.sh            # the same with podman, base image included
ARG BINARIES=compiled

FROM debian:bookworm AS compiled
WORKDIR /src
COPY scripts/install_deps.sh scripts/install_deps.sh
RUN CURVD_SKIP_CONTAINER_TOOLS=1 scripts/install_deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCURVD_BUILD_TESTS=OFF \
 && ninja -C /build curvd curvd_archive_check curvctl curvd_example_trainer \
 && scripts/stage_image_files.sh /build/bin /staging

FROM ${BINARIES} AS binaries

FROM debian:bookworm-slim AS runtime
COPY --from=binaries /staging/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      $(cat /tmp/runtime-packages.txt) ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /tmp/runtime-packages.txt \
 && useradd --system --uid 10001 --home-dir /var/lib/curvd --shell /usr/sbin/nologin curvd \
 && mkdir -p /var/lib/curvd /data /etc/curvd/tls /etc/curvd/tokens \
 && chown curvd:curvd /var/lib/curvd
COPY --from=binaries /staging/usr/local/bin/ /usr/local/bin/
USER 10001:10001
VOLUME ["/var/lib/curvd"]
EXPOSE 50051 50052 9464
ENTRYPOINT ["curvd"]
# TLS and tokens from files mounted under /etc/curvd (README, "Security");
# 50052 answers grpc.health.v1 alone, in plain text, for probes.
CMD ["--listen=0.0.0.0:50051", "--metrics_listen=0.0.0.0:9464", \
     "--tls_cert_file=/etc/curvd/tls/tls.crt", "--tls_key_file=/etc/curvd/tls/tls.key", \
     "--auth_token_file=/etc/curvd/tokens/tokens", "--health_listen=0.0.0.0:50052", \
     "--state_dir=/var/lib/curvd", "--data_roots=/data"]
