#!/bin/sh
# One-shot MinIO setup for georec (run by the compose `minio-init` job, image minio/mc).
#
# On the MinIO at $MINIO_URL: creates each bucket of $GEOREC_BUCKETS with versioning on
# (bucket replication and rollback-by-version need it), then two users with the least they
# need: georec-node reads the georec buckets, georec-publisher (model-sync) reads and writes.
# Idempotent: existing buckets, users and policies are kept or updated in place.
#
# Environment: MINIO_URL, MINIO_ROOT_USER, MINIO_ROOT_PASSWORD, GEOREC_BUCKETS (space
# separated), GEOREC_NODE_S3_SECRET, GEOREC_PUBLISHER_S3_SECRET, MINIO_ALIAS (default georec).
set -eu

alias="${MINIO_ALIAS:-georec}"
here="$(dirname "$0")"

tries=0
until mc alias set "$alias" "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
        echo "init-buckets: MinIO at $MINIO_URL did not answer after 30 tries" >&2
        exit 1
    fi
    sleep 1
done

for bucket in $GEOREC_BUCKETS; do
    mc mb --ignore-existing "$alias/$bucket"
    mc version enable "$alias/$bucket"
done

mc admin policy create "$alias" georec-node-read "$here/policies/georec-node-read.json"
mc admin policy create "$alias" georec-publisher "$here/policies/georec-publisher.json"

mc admin user add "$alias" georec-node "$GEOREC_NODE_S3_SECRET"
mc admin user add "$alias" georec-publisher "$GEOREC_PUBLISHER_S3_SECRET"
# attach fails when the policy is already attached: that is the state we want.
mc admin policy attach "$alias" georec-node-read --user georec-node 2>/dev/null || true
mc admin policy attach "$alias" georec-publisher --user georec-publisher 2>/dev/null || true

echo "init-buckets: $MINIO_URL ready with buckets: $GEOREC_BUCKETS"
