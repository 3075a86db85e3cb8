//! `berth server --help`.

use super::api_security::API_SECURITY_USAGE;
use super::store_client::STORE_CLIENT_USAGE;

pub const SERVER_USAGE: &str = "\
berth server: a control-plane replica (store + API server + leader-only controllers)

Usage: berth server [store flags] [server flags]

Server flags:
  --api-listen ADDR                     where the API server listens (default 127.0.0.1:8080)
  --max-requests-inflight N             read-only API requests at once, beyond which the
                                        server answers 429; 0: no limit (default 400)
  --max-mutating-requests-inflight N    the same for writes (default 200)
  --request-timeout DURATION            an API request other than a watch or a log that
                                        takes longer is answered 504 (default 1m0s)
  --api-read-header-timeout DURATION    a connection slower to send a request head is
                                        closed (default 32s)
  --api-idle-timeout DURATION           a keep-alive connection idle this long is closed
                                        (default 1m30s)
  --api-max-connections N               open API connections at most; more wait to be
                                        accepted (default 4096, or half the open-file limit)
  --node-monitor-grace-period DURATION  how long a node stays without its heartbeat (its
                                        agent's lease expired: the node and its pods are
                                        marked not ready at once) before its pods move
                                        (default 10s)
  --horizontal-pod-autoscaler-sync-period DURATION
                                        how often each HorizontalPodAutoscaler is
                                        evaluated (default 15s)
  --scheduler-strategy spread|binpack   spread (least allocated, default) or bin-pack
  --cluster-cidr CIDR                   the pods' addresses, carved into one block per node
                                        (node.spec.podCIDR; default 10.244.0.0/16)
  --node-cidr-mask-size N               the prefix length of each node's block (default 24)
  --service-cluster-ip-range CIDR       Services' cluster IPs (default 10.96.0.0/12)
  --service-node-port-range FIRST-LAST  Services' node ports (default 30000-32767)
  --advertise-address IP                the address the `kubernetes` Service of `default`
                                        lists for this API server, with the --api-listen
                                        port (default: the --api-listen address; none
                                        when that is loopback; the host's outward address
                                        when it is 0.0.0.0)
  --authorization-mode MODES            the authorizers asked, in order, comma-separated:
                                        AlwaysAllow (every request allowed) or RBAC (roles
                                        and bindings; system:masters may do anything)
                                        (default RBAC with --client-ca-file or
                                        --token-auth-file, else AlwaysAllow)
  --pod-security-default-enforce privileged|baseline|restricted
                                        the Pod Security level enforced in namespaces without
                                        a pod-security.kubernetes.io/enforce label (default
                                        baseline; Kubernetes' own default is privileged)
  --default-not-ready-toleration-seconds N, --default-unreachable-toleration-seconds N
                                        the tolerationSeconds of the node.kubernetes.io/
                                        not-ready and unreachable NoExecute tolerations
                                        every new pod without its own gets (default none:
                                        a lost node's pods move after the grace period;
                                        Kubernetes' default is 300)
  --isolate-namespaces[=true|false]     new namespaces get the label berth.io/isolation:
                                        namespace: their pods accept traffic only from pods
                                        of the same namespace (and what the namespace's
                                        NetworkPolicies allow); `none` opts a namespace out
                                        (default false; `berth up` turns it on)
  --watch-cache[=true|false]            watches and resourceVersion=0 lists are served from
                                        one store watch per kind, kept in memory (default
                                        true, as kube-apiserver)
  --encryption-provider-config FILE     Kubernetes' EncryptionConfiguration (aesgcm and
                                        identity providers): Secrets are encrypted in the
                                        store with its first provider's first key and read
                                        with any of its keys. Every replica (and every
                                        agent, for image pull secrets) must be given the
                                        same keys. Without it, Secrets are stored in plain
                                        text, as Kubernetes' are by default, and the server
                                        says so at start; `berth up` always encrypts.
  --insecure-store-port                 with authentication on the API (--client-ca-file or
                                        --token-auth-file), a store client URL reachable from
                                        other hosts must be https with --client-cert-auth,
                                        else the server refuses to start; this accepts it
";

const SERVER_USAGE_END: &str = "
Store flags are etcd's; see `berth store --help`.
";

pub fn print_usage() {
    print!("{SERVER_USAGE}{API_SECURITY_USAGE}{STORE_CLIENT_USAGE}{SERVER_USAGE_END}");
}
