# syntax=docker/dockerfile:1
# curvd, CPU build, Debian 12. The build stage installs with the same script the
# README uses; the runtime stage carries the binaries and only the shared
# libraries they load, and runs as a non-root user.
#   docker build -t curvd .
#   docker run --rm -p 50051:50051 -p 9464:9464 -v "$PWD/state:/var/lib/curvd" curvd

FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install_deps.sh scripts/install_deps.sh
RUN scripts/install_deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCURVD_BUILD_TESTS=OFF \
 && ninja -C /build curvd curvctl curvd_example_trainer
# The Debian packages that own the libraries the binaries load: the runtime
# stage installs exactly these (and follows their own dependencies).
RUN set -eu; \
    for lib in $(ldd /build/bin/curvd /build/bin/curvctl /build/bin/curvd_example_trainer \
                 | awk '/=> \//{print $3}' | sort -u); do \
      dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null \
        || dpkg -S "/usr$lib" 2>/dev/null || dpkg -S "${lib#/usr}"; \
    done | cut -d: -f1 | sort -u > /build/runtime-packages.txt; \
    cat /build/runtime-packages.txt

FROM debian:bookworm-slim AS runtime
COPY --from=build /build/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      $(cat /tmp/runtime-packages.txt) ca-certificates \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && useradd --system --uid 10001 --home-dir /var/lib/curvd --shell /usr/sbin/nologin curvd \
 && mkdir -p /var/lib/curvd /data \
 && chown curvd:curvd /var/lib/curvd
COPY --from=build /build/bin/curvd /build/bin/curvctl /build/bin/curvd_example_trainer /usr/local/bin/
USER curvd
VOLUME ["/var/lib/curvd"]
EXPOSE 50051 50052 9464
ENTRYPOINT ["curvd"]
# TLS and tokens from files mounted under /etc/curvd (README, "Security");
# 50052 answers grpc.health.v1 alone, in plain text, for probes.
CMD ["--listen=0.0.0.0:50051", "--metrics_listen=0.0.0.0:9464", \
     "--tls_cert_file=/etc/curvd/tls/tls.crt", "--tls_key_file=/etc/curvd/tls/tls.key", \
     "--auth_token_file=/etc/curvd/tokens/tokens", "--health_listen=0.0.0.0:50052", \
     "--state_dir=/var/lib/curvd", "--data_roots=/data"]
