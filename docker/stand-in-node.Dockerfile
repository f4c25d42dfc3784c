# The stand-in node image, for tests and compose trials without a real iotex-core: FROM
# scratch with the release `stand-in-node` binary, the libraries `ldd` lists, the non-root
# user 65532, no shell. Built by `make image` like docker/elector.Dockerfile.
#
# Like iotex-core since v2.4.2, its admin server (/ha, /control/...) listens on 127.0.0.1:9009
# by default; pass `--probe 0.0.0.0:8080` to serve probes on all interfaces as the node does.
FROM scratch
COPY rootfs/ /
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/stand-in-node"]
