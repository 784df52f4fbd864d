//! Node states as kube-proxy and an admin leave them: iptables-restore and nft inputs in
//! upstream's shape, for the takeover tests.

/// The admin's (and kubelet's) iptables rules, present before kube-proxy and after kproxy:
/// a chain with a jump, a NAT rule, a mangle rule, kubelet's KUBE-FIREWALL.
pub fn foreign_iptables(v6: bool) -> String {
    let (admin_net, loopback) = if v6 { ("2001:db8:c:64::/64", "::1/128") } else { ("198.19.64.0/24", "127.0.0.0/8") };
    let firewall = if v6 {
        String::new()
    } else {
        format!(
            "-A KUBE-FIREWALL ! -s {loopback} -d {loopback} -m comment --comment \"block incoming localnet connections\" \
             -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n"
        )
    };
    format!(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         :KUBE-KUBELET-CANARY - [0:0]\n-A PREROUTING -s {admin_net} -j MARK --set-xmark 0x100/0x100\nCOMMIT\n\
         *filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:ADMIN-IN - [0:0]\n:KUBE-FIREWALL - [0:0]\n\
         -A INPUT -j KUBE-FIREWALL\n-A INPUT -s {admin_net} -j ADMIN-IN\n-A OUTPUT -j KUBE-FIREWALL\n\
         -A ADMIN-IN -p tcp -m tcp --dport 22 -m comment --comment \"admin ssh\" -j ACCEPT\n{firewall}COMMIT\n\
         *nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:ADMIN-SNAT - [0:0]\n\
         -A POSTROUTING -o admin0 -j ADMIN-SNAT\n-A ADMIN-SNAT -j MASQUERADE\nCOMMIT\n"
    )
}

/// kube-proxy's iptables-mode rules (as `iptables-restore --noflush` input, the shape
/// upstream's proxier writes) for one ClusterIP service `vip:80` -> `endpoint:8080`.
pub fn kube_proxy_iptables(vip: &str, endpoint: &str, v6: bool) -> String {
    let (pod_cidr, host) = if v6 { ("2001:db8:a::/48", "128") } else { ("198.18.0.0/16", "32") };
    let ep = if v6 { format!("[{endpoint}]:8080") } else { format!("{endpoint}:8080") };
    format!(
        "*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n\
         *filter\n:KUBE-EXTERNAL-SERVICES - [0:0]\n:KUBE-FORWARD - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-PROXY-CANARY - [0:0]\n\
         :KUBE-PROXY-FIREWALL - [0:0]\n:KUBE-SERVICES - [0:0]\n\
         -I INPUT 1 -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n\
         -I INPUT 2 -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS\n\
         -I INPUT 3 -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n\
         -I FORWARD 1 -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n\
         -A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n\
         -A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n\
         -I OUTPUT 1 -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n\
         -A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n\
         -A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT\n\
         -A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         COMMIT\n\
         *nat\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-PROXY-CANARY - [0:0]\n\
         :KUBE-SEP-OLDENDPOINT00000 - [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-WEB0000000000000 - [0:0]\n\
         -I PREROUTING 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -I OUTPUT 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -I POSTROUTING 1 -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
         -A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n\
         -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n\
         -A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n\
         -A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n\
         -A KUBE-SEP-OLDENDPOINT00000 -s {endpoint}/{host} -m comment --comment \"t/web:http\" -j KUBE-MARK-MASQ\n\
         -A KUBE-SEP-OLDENDPOINT00000 -p tcp -m comment --comment \"t/web:http\" -m tcp -j DNAT --to-destination {ep}\n\
         -A KUBE-SERVICES -d {vip}/{host} -p tcp -m comment --comment \"t/web:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-WEB0000000000000\n\
         -A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n\
         -A KUBE-SVC-WEB0000000000000 ! -s {pod_cidr} -d {vip}/{host} -p tcp -m comment --comment \"t/web:http cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ\n\
         -A KUBE-SVC-WEB0000000000000 -m comment --comment \"t/web:http -> {ep}\" -j KUBE-SEP-OLDENDPOINT00000\n\
         COMMIT\n"
    )
}

/// kube-proxy's nftables-mode table, in the `add` form knftables writes (trimmed to one
/// service).
pub fn kube_proxy_nft(vip: &str, endpoint: &str) -> String {
    let t = "ip kube-proxy";
    let ep = format!("endpoint-OLDEP000-t/web/tcp/http__{endpoint}/8080");
    let svc = "service-WEB00000-t/web/tcp/http";
    format!(
        "add table {t} {{ comment \"rules for kube-proxy\" ; }}\n\
         add chain {t} mark-for-masquerade\n\
         add rule {t} mark-for-masquerade meta mark set meta mark or 0x4000\n\
         add chain {t} masquerading {{ type nat hook postrouting priority srcnat ; policy accept ; }}\n\
         add rule {t} masquerading meta mark & 0x4000 == 0 return\n\
         add rule {t} masquerading meta mark set meta mark xor 0x4000\n\
         add rule {t} masquerading masquerade fully-random\n\
         add chain {t} {ep}\n\
         add rule {t} {ep} ip saddr {endpoint} jump mark-for-masquerade\n\
         add rule {t} {ep} meta l4proto tcp dnat to {endpoint}:8080\n\
         add chain {t} {svc}\n\
         add rule {t} {svc} ip daddr {vip} tcp dport 80 ip saddr != 198.18.0.0/16 jump mark-for-masquerade\n\
         add rule {t} {svc} numgen random mod 1 vmap {{ 0 : goto {ep} }}\n\
         add map {t} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; \
           comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }}\n\
         add element {t} service-ips {{ {vip} . tcp . 80 : goto {svc} }}\n\
         add chain {t} services\n\
         add rule {t} services ip daddr . meta l4proto . th dport vmap @service-ips\n\
         add chain {t} nat-prerouting {{ type nat hook prerouting priority dstnat ; policy accept ; }}\n\
         add rule {t} nat-prerouting jump services\n\
         add chain {t} nat-output {{ type nat hook output priority -100 ; policy accept ; }}\n\
         add rule {t} nat-output jump services\n"
    )
}

/// An admin's nftables table that must survive byte for byte.
pub const FOREIGN_NFT: &str = "table inet filter {\n\
    chain input { type filter hook input priority filter; policy accept;\n\
      tcp dport 22 counter accept comment \"admin ssh\"\n    }\n}\n";

/// A Service `t/web` (ClusterIP `vip`, port 80 -> 8080) with one ready endpoint.
pub fn web_manifest(vip: &str, endpoint: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: t}}\n\
         spec:\n  clusterIP: {vip}\n  clusterIPs: [\"{vip}\"]\n  ports:\n  - {{name: http, port: 80, targetPort: 8080, protocol: TCP}}\n\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata:\n  name: web-a\n  namespace: t\n  labels: {{kubernetes.io/service-name: web}}\n\
         addressType: IPv4\nports:\n- {{name: http, port: 8080, protocol: TCP}}\n\
         endpoints:\n- addresses: [\"{endpoint}\"]\n  conditions: {{ready: true}}\n  nodeName: node-1\n"
    )
}
