#!/bin/sh
# One-shot setup of the replicated layout (docker-compose.replicated.yml): one MinIO per
# region, each region bucket fed by MinIO bucket replication from the primary bucket.
#
# For every "region=URL/bucket" word of $GEOREC_REPLICAS:
#   1. on the region's MinIO: the bucket (versioned) and the node/publisher users
#      (init-buckets.sh with that MinIO and bucket);
#   2. on the primary MinIO: a replication rule primary-bucket/<prefix>models/ -> that bucket.
# Only <prefix>models/ replicates: the pointer (<prefix>current.json) of each bucket is
# model-sync's, which flips it after verifying the replica (`publish --replication external`).
#
# Environment: MINIO_URL (primary), MINIO_ROOT_USER, MINIO_ROOT_PASSWORD (same on every
# MinIO here), GEOREC_PRIMARY_BUCKET, GEOREC_PREFIX, GEOREC_REPLICAS, and the secrets
# init-buckets.sh takes.
set -eu

here="$(dirname "$0")"
primary_alias=georec-primary
mc alias set "$primary_alias" "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc version enable "$primary_alias/$GEOREC_PRIMARY_BUCKET"

priority=0
for spec in $GEOREC_REPLICAS; do
    region="${spec%%=*}"
    target="${spec#*=}"          # http://minio-us-west:9000/georec-us-west
    url="${target%/*}"           # http://minio-us-west:9000
    bucket="${target##*/}"       # georec-us-west
    priority=$((priority + 1))

    MINIO_ALIAS="georec-$region" MINIO_URL="$url" GEOREC_BUCKETS="$bucket" sh "$here/init-buckets.sh"

    if mc replicate ls "$primary_alias/$GEOREC_PRIMARY_BUCKET" --json 2>/dev/null | grep -q -- "$bucket"; then
        echo "init-replication: $GEOREC_PRIMARY_BUCKET -> $region ($bucket) already configured"
        continue
    fi
    scheme="${url%%://*}"
    hostport="${url#*://}"
    mc replicate add "$primary_alias/$GEOREC_PRIMARY_BUCKET/${GEOREC_PREFIX}models/" \
        --remote-bucket "$scheme://$MINIO_ROOT_USER:$MINIO_ROOT_PASSWORD@$hostport/$bucket" \
        --priority "$priority" \
        --replicate "existing-objects"
    echo "init-replication: $GEOREC_PRIMARY_BUCKET/${GEOREC_PREFIX}models/ -> $region ($url/$bucket)"
done
