// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * podswitch's XDP filter: decides per frame whether it belongs to the
 * switch (redirect to the AF_XDP socket of the receiving queue) or to the
 * kernel (XDP_PASS). See DESIGN.md, data path 7, and
 * notes/datapath-probes.md, probe 1.
 *
 * The redirect falls back to XDP_PASS when the queue has no socket, so a
 * program left without sockets never blackholes the interface.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Keep in sync with pmd/src/afxdp/xdp.rs (CfgValue). */
struct pd_cfg {
	__u32 redirect_all;  /* 1: a plain switch port, every frame to AF_XDP */
	__u32 ip_any_l4;     /* 1: every IPv4 packet to pd_ips; 0: only the l4 rules */
	__u32 ip_icmp;       /* 1 (with ip_any_l4 0): ICMP to pd_ips too */
	__u16 vxlan_port;    /* network order, 0 = none */
	__u16 range_min;     /* host order, NAT port range, 0/0 = none */
	__u16 range_max;     /* host order */
	__u16 pad;
};

/* Keep in sync with pmd/src/afxdp/xdp.rs (L4Key). */
struct pd_l4key {
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
	__u16 port;  /* network order */
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} pd_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pd_cfg);
} pd_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32); /* IPv4 address, network order */
	__type(value, __u8);
} pd_ips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* MAC in the first 6 bytes, then zeros */
	__type(value, __u8);
} pd_macs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct pd_l4key);
	__type(value, __u8);
} pd_l4ports SEC(".maps");

#define PD_STAT_TO_XSK 0
#define PD_STAT_PASS 1
#define PD_STAT_MAX 2

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PD_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} pd_stats SEC(".maps");

struct arp_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 oper;
	__u8 sha[6];
	__be32 spa;
	__u8 tha[6];
	__be32 tpa;
} __attribute__((packed));

static __always_inline int count(__u32 which, int verdict)
{
	__u64 *v = bpf_map_lookup_elem(&pd_stats, &which);
	if (v)
		*v += 1;
	return verdict;
}

static __always_inline int to_xsk(struct xdp_md *ctx)
{
	int rc = bpf_redirect_map(&pd_xsks, ctx->rx_queue_index, XDP_PASS);
	return count(rc == XDP_REDIRECT ? PD_STAT_TO_XSK : PD_STAT_PASS, rc);
}

static __always_inline int l4_match(struct pd_cfg *cfg, __u8 proto, __be16 dport)
{
	struct pd_l4key key = { .proto = proto, .pad = 0, .port = dport };
	__u16 p = bpf_ntohs(dport);

	if (proto == IPPROTO_UDP && cfg->vxlan_port && dport == cfg->vxlan_port)
		return 1;
	if (bpf_map_lookup_elem(&pd_l4ports, &key))
		return 1;
	if (cfg->range_max && p >= cfg->range_min && p <= cfg->range_max)
		return 1;
	return 0;
}

SEC("xdp")
int pd_xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct pd_cfg *cfg = bpf_map_lookup_elem(&pd_cfg, &zero);
	struct ethhdr *eth = data;
	__u64 mac = 0;

	if (!cfg)
		return count(PD_STAT_PASS, XDP_PASS);
	if (cfg->redirect_all)
		return to_xsk(ctx);
	if ((void *)(eth + 1) > end)
		return count(PD_STAT_PASS, XDP_PASS);

	__builtin_memcpy(&mac, eth->h_dest, ETH_ALEN);
	if (bpf_map_lookup_elem(&pd_macs, &mac))
		return to_xsk(ctx);

	if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		struct arp_ipv4 *arp = (void *)(eth + 1);
		__u32 tpa;

		if ((void *)(arp + 1) > end)
			return count(PD_STAT_PASS, XDP_PASS);
		if (arp->ptype != bpf_htons(ETH_P_IP) || arp->plen != 4)
			return count(PD_STAT_PASS, XDP_PASS);
		tpa = arp->tpa;
		if (bpf_map_lookup_elem(&pd_ips, &tpa))
			return to_xsk(ctx);
		return count(PD_STAT_PASS, XDP_PASS);
	}

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 daddr;
		__u32 ihl;

		if ((void *)(ip + 1) > end)
			return count(PD_STAT_PASS, XDP_PASS);
		daddr = ip->daddr;
		if (!bpf_map_lookup_elem(&pd_ips, &daddr))
			return count(PD_STAT_PASS, XDP_PASS);
		if (cfg->ip_any_l4)
			return to_xsk(ctx);
		if (ip->protocol == IPPROTO_ICMP && cfg->ip_icmp)
			return to_xsk(ctx);
		/* Non-first fragments carry no ports: the kernel reassembles. */
		if (ip->frag_off & bpf_htons(0x1fff))
			return count(PD_STAT_PASS, XDP_PASS);
		ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip))
			return count(PD_STAT_PASS, XDP_PASS);
		if (ip->protocol == IPPROTO_UDP || ip->protocol == IPPROTO_TCP) {
			/* Both headers start with source then destination port. */
			struct udphdr *l4 = (void *)ip + ihl;

			if ((void *)(l4 + 1) > end)
				return count(PD_STAT_PASS, XDP_PASS);
			if (l4_match(cfg, ip->protocol, l4->dest))
				return to_xsk(ctx);
		}
	}
	return count(PD_STAT_PASS, XDP_PASS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
