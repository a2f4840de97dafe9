#!/bin/sh
# Container health check of the georec image (Dockerfile HEALTHCHECK).
#
# Probes GEOREC_HEALTHCHECK_URL, which each deployment sets for its role:
#   region node  http://127.0.0.1:<port>/health/ready   (200 once a model is loaded)
#   router       http://127.0.0.1:8080/regions
# Without it the router's default address is probed.
set -eu
url="${GEOREC_HEALTHCHECK_URL:-http://127.0.0.1:8080/regions}"
exec curl --fail --silent --show-error --max-time 2 --output /dev/null "$url"
