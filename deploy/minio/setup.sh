#!/bin/sh
# One-shot MinIO set-up for docker-compose.yml (service minio-setup), safe to run again: the bucket,
# and a user for the gateway whose policy (gateway-policy.json) reaches that bucket only, so the
# API and the workers never hold MinIO's root credentials. The gateway itself sets the bucket's
# lifecycle rule (IMAGE_RETENTION_DAYS) at start-up.
set -eu
mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "local/$GATEWAY_BUCKET"
mc admin policy create local ai-gateway /setup/gateway-policy.json
# Adding an existing user sets its secret: a changed S3_SECRET_KEY takes effect on the next run.
mc admin user add local "$GATEWAY_ACCESS_KEY" "$GATEWAY_SECRET_KEY"
if ! out=$(mc admin policy attach local ai-gateway --user "$GATEWAY_ACCESS_KEY" 2>&1); then
  case "$out" in
    *already*) ;;
    *) echo "$out" >&2; exit 1 ;;
  esac
fi
echo "minio-setup: bucket $GATEWAY_BUCKET and user $GATEWAY_ACCESS_KEY ready"
