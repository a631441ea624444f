# Least privilege for a vault-bootstrap identity that manages chapter.yaml's objects (use it
# instead of a root token, e.g. with `connection.kubernetes_login`). Adjust the mount paths to
# your config. `sys/auth/*` needs sudo to enable/disable auth methods.
path "sys/auth" {
  capabilities = ["read"]
}
path "sys/auth/*" {
  capabilities = ["create", "update", "delete", "read", "sudo"]
}
path "sys/mounts" {
  capabilities = ["read"]
}
path "sys/mounts/*" {
  capabilities = ["create", "update", "delete", "read"]
}
path "sys/policies/acl/*" {
  capabilities = ["create", "update", "delete", "read", "list"]
}
path "auth/kubernetes/*" {
  capabilities = ["create", "update", "delete", "read", "list"]
}
path "database/*" {
  capabilities = ["create", "update", "delete", "read", "list"]
}
path "secret/*" {
  capabilities = ["create", "update", "delete", "read", "list"]
}
# transit.yaml: create keys and tune their settings; no delete, rotate, trim, export or backup
path "sealkit-transit/keys/+" {
  capabilities = ["create", "update", "read"]
}
path "sealkit-transit/keys/+/config" {
  capabilities = ["update"]
}
