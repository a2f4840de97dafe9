#!/bin/sh
# georec-bootstrap-model: publish a first model so a fresh cluster has something to serve.
#
# Used by the compose `model-publish` job (and usable as a one-off ECS task). Idempotent:
#   - every bucket already has a model pointer -> nothing to do, exit 0;
#   - else build a model once (kept in $GEOREC_BOOTSTRAP_DIR/model, so a re-run publishes the
#     same version and completes regions that failed) and `model-sync publish` it.
#
# Environment (all optional):
#   GEOREC_BOOTSTRAP_DIR     work directory (default /var/lib/georec/bootstrap)
#   GEOREC_BOOTSTRAP_DATA    an existing dataset directory (model-sync import output) to build
#                            from; default: generate synthetic shop data
#   GEOREC_BOOTSTRAP_USERS / _ITEMS / _EVENTS / _SEED   size of the generated data
#   GEOREC_REPLICATION       copy (default) | external (bucket replication delivers regions)
#   GEOREC_BOOTSTRAP_WAIT    with external: how long to wait per region (default 300s)
#   GEOREC_BOOTSTRAP_FORCE=1 publish even if every bucket already serves a model
#   GEOREC_ZONES             residency zones (space-separated) whose regions get the same first
#                            model from their zone's own store (model-sync publish --zone)
set -eu

work="${GEOREC_BOOTSTRAP_DIR:-/var/lib/georec/bootstrap}"
replication="${GEOREC_REPLICATION:-copy}"
mkdir -p "$work"

say() { echo "georec-bootstrap-model: $*" >&2; }

if [ "${GEOREC_BOOTSTRAP_FORCE:-0}" != 1 ] \
    && model-sync status --json >"$work/status.json" 2>"$work/status.err" \
    && ! grep -q '"pointer": null' "$work/status.json"; then
    say "every bucket already serves a model; nothing to publish"
    exit 0
fi

if [ ! -f "$work/model/manifest.json" ]; then
    data="${GEOREC_BOOTSTRAP_DATA:-}"
    if [ -z "$data" ]; then
        data="$work/data"
        rm -rf "$data"
        say "generating synthetic data into $data"
        model-sync generate \
            --users "${GEOREC_BOOTSTRAP_USERS:-5000}" \
            --items "${GEOREC_BOOTSTRAP_ITEMS:-2000}" \
            --events-per-user "${GEOREC_BOOTSTRAP_EVENTS:-20}" \
            --seed "${GEOREC_BOOTSTRAP_SEED:-7}" \
            --out "$data"
    fi
    say "building a model from $data"
    rm -rf "$work/model.partial"
    model-sync build --data "$data" --out "$work/model.partial"
    mv "$work/model.partial" "$work/model"
fi

say "publishing $work/model (replication: $replication)"
model-sync publish --model "$work/model" --replication "$replication" \
    --wait-timeout "${GEOREC_BOOTSTRAP_WAIT:-300s}"
# A zone's regions take their models from the zone's own store: copied there, never
# replicated from the primary.
for zone in ${GEOREC_ZONES:-}; do
    say "publishing $work/model to residency zone $zone"
    model-sync publish --zone "$zone" --model "$work/model" --replication copy
done
