"""sealkit-controller: the in-cluster SealedSecret unsealing controller (Bitnami drop-in).

Layout, from pure to I/O:

- `controller.reconcile` - pure planner: SealedSecret + existing Secret + keys -> `Plan`
  (the unseal itself is `sealkit.model.unseal`, shared with the CLI);
- `controller.write_guard`, `controller.api_errors` - refusals before a Secret write (size,
  key Secrets) and apiserver errors reduced to what is safe to repeat;
- `controller.keyring` - the thread-safe set of sealing keys, key hint and per-key usage;
- `controller.executor` - applies plans through a `controller.kube_gateway.KubeGateway`;
- `controller.informer`, `controller.workqueue`, `controller.runner` - list+watch caches, the
  rate-limited queue and the workers;
- `controller.key_manager` - load/watch/generate/renew key Secrets;
- `controller.http` (transport, body, operations, routes, server; `controller.http_api` keeps
  the old names), `controller.metrics`, `controller.leader` - HTTP API, Prometheus metrics,
  Lease leader election;
- `controller.supervisor` - a dead long-running thread fails the probes and ends the process;
- `controller.config` - the flags as one frozen `ControllerConfig`;
- `controller.main` - wiring (`sealkit-controller`);
- `controller.testing` - the in-memory gateway for pure tests.
"""
