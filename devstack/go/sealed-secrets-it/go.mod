module example.invalid/sealkit/devstack/sealed-secrets-it

go 1.26.8

require (
	github.com/bitnami/sealed-secrets v0.40.0
	github.com/onsi/ginkgo/v2 v2.32.1
	github.com/onsi/gomega v1.43.0
)
