# The elector image: FROM scratch with the release binary, the libraries `ldd` lists for it,
# an /etc/passwd naming the non-root user 65532, and nothing else (no shell, no package
# manager). Built by `make image`: docker/app-image.sh prepares the context (rootfs/) and
# runs the classic builder (DOCKER_BUILDKIT=0), since BuildKit may be unavailable.
#
# Run it beside the node in the node's network namespace (compose:
# `network_mode: "service:<node>"`): the node's admin port listens on 127.0.0.1 only.
FROM scratch
COPY rootfs/ /
USER 65532:65532
# /status, /metrics and /healthz for scrapers outside the namespace; set "off" to disable.
ENV ELECTOR_STATUS_ADDR=0.0.0.0:9901
EXPOSE 9901
# The elector runs under its own supervisor (`elector supervise`, docs/operations.md): when it
# dies or hangs, its node is commanded standby at once and it is restarted, which is what lets
# the examples state --restart-bound 2s. `docker run <image> <elector flags>` still works: the
# arguments go to the elector; an operator command (`docker run <image> status`) runs
# unsupervised.
ENTRYPOINT ["/usr/local/bin/elector", "supervise", "--"]
