#!/usr/bin/env bash
# The "usual" imperative shell Job for the chapter's setup, as `bao` CLI calls: the baseline
# vault-bootstrap is benchmarked against (bench/vault_bootstrap_bench.py). Same inputs as
# examples/vault-bootstrap/chapter.yaml (BAO_ADDR/BAO_TOKEN or VAULT_*, KUBE_*, PG*,
# NAME_SERVICE_TOKEN). Made re-runnable the way such scripts usually are (`|| true` on enables);
# note what it still does wrong: the DB password and the KV value travel on argv, every run
# rewrites everything (KV versions pile up), and nothing is ever removed.
set -euo pipefail
BAO=${BAO:-bao}
NS=${WELCOME_NAMESPACE:-default}

"$BAO" auth enable kubernetes >/dev/null 2>&1 || true
"$BAO" write auth/kubernetes/config \
  kubernetes_host="$KUBE_APISERVER_URL" kubernetes_ca_cert=@"$KUBE_CA_FILE" \
  disable_local_ca_jwt=true >/dev/null
"$BAO" write auth/kubernetes/role/welcome-message \
  bound_service_account_names=welcome-message bound_service_account_namespaces="$NS" \
  token_policies=welcome-message token_ttl=1h token_max_ttl=4h >/dev/null
"$BAO" secrets enable database >/dev/null 2>&1 || true
"$BAO" write database/config/postgres \
  plugin_name=postgresql-database-plugin \
  connection_url="postgresql://{{username}}:{{password}}@$PGHOST:$PGPORT/$PGDATABASE?sslmode=disable" \
  username="$PGUSER" password="$PGPASSWORD" allowed_roles=welcome-message >/dev/null
"$BAO" write database/roles/welcome-message db_name=postgres \
  creation_statements="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';" \
  creation_statements="GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";" \
  revocation_statements="REVOKE ALL ON ALL TABLES IN SCHEMA public FROM \"{{name}}\";" \
  revocation_statements="DROP ROLE IF EXISTS \"{{name}}\";" \
  default_ttl=1h max_ttl=24h >/dev/null
"$BAO" policy write welcome-message - >/dev/null <<'HCL'
path "database/creds/welcome-message" {
  capabilities = ["read"]
}
path "secret/data/myapps/welcome/*" {
  capabilities = ["read"]
}
HCL
"$BAO" kv put secret/myapps/welcome/config name-service-token="$NAME_SERVICE_TOKEN" >/dev/null
