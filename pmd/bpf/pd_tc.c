// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * podswitch's flow offload: a tc ingress program (tcx link) on each
 * offload port's device that carries the TCP flows the switch has already
 * decided. The switch writes, per flow, what it did to the flow's frames;
 * this program does the same to the flow's skbs and redirects them, so
 * 64 KB GSO segments cross without being copied into podswitch and out.
 * See pmd/src/offload/mod.rs.
 *
 * Whatever the program does not take goes on untouched (TC_ACT_UNSPEC,
 * i.e. TCX_NEXT: later tcx programs and clsact filters of others still
 * run) to podswitch's per-protocol packet sockets, which the kernel serves
 * after tc ingress, and to the host stack.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Keep in sync with pmd/src/offload/mod.rs (FlowKey), 32 bytes. */
struct pd_flow_key {
	__u32 ifindex;
	__u32 src_ip; /* network order, as on the wire */
	__u32 dst_ip;
	__u16 src_port;
	__u16 dst_port;
	__u8 dst_mac[6];
	__u8 src_mac[6];
	__u8 proto;
	__u8 pad[3];
};

/* Keep in sync with pmd/src/offload/mod.rs (FlowAction), 40 bytes. */
struct pd_flow_action {
	__u32 out_ifindex;
	__u32 flags;
	__u32 src_ip;
	__u32 dst_ip;
	__u16 src_port;
	__u16 dst_port;
	__u8 dst_mac[6]; /* dst_mac then src_mac: the Ethernet header's order */
	__u8 src_mac[6];
	__u8 ttl_dec;
	__u8 pad[7];
};

#define PD_FLOW_TO_PEER 1

/* Keep in sync with pmd/src/offload/table.rs, 64 bytes. */
struct pd_flow_value {
	struct pd_flow_action act;
	__u64 packets;
	__u64 bytes;
	__u64 last_ns;
};

_Static_assert(sizeof(struct pd_flow_key) == 32, "FlowKey is 32 bytes");
_Static_assert(sizeof(struct pd_flow_action) == 40, "FlowAction is 40 bytes");
_Static_assert(sizeof(struct pd_flow_value) == 64, "the map value is 64 bytes");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* set from Rust before load */
	__type(key, struct pd_flow_key);
	__type(value, struct pd_flow_value);
} pd_flows SEC(".maps");

#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define IP_SRC_OFF (ETH_HLEN + offsetof(struct iphdr, saddr))
#define IP_DST_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))
#define IP_TTL_OFF (ETH_HLEN + offsetof(struct iphdr, ttl))

/* Not ours: on to the next tcx program, clsact, the packet sockets and the
 * stack, as if the program were not there. TC_ACT_OK would end the tcx
 * chain and skip other users' clsact filters. */
#define PD_PASS TC_ACT_UNSPEC

/* BPF has no memcmp to call: compare the 12 MAC bytes as words. */
static __always_inline int macs_differ_from(const struct ethhdr *eth,
					    const struct pd_flow_action *a)
{
	const __u8 *p = (const __u8 *)eth;
	int d = 0;
#pragma unroll
	for (int i = 0; i < 12; i++)
		d |= p[i] ^ a->dst_mac[i];
	return d != 0;
}

SEC("tc")
int pd_tc_flows(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IP) || skb->vlan_present)
		return PD_PASS;

	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	/* A GSO skb from a veth peer is linear in practice; a NIC's GRO output
	 * may keep headers in frags. Pull only then: pulling costs a copy. */
	if (data + ETH_HLEN + sizeof(struct iphdr) > end) {
		if (bpf_skb_pull_data(skb, ETH_HLEN + sizeof(struct iphdr) + sizeof(struct tcphdr)))
			return PD_PASS;
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
	}
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end)
		return PD_PASS;
	if (ip->protocol != IPPROTO_TCP || ip->version != 4 || ip->ihl < 5)
		return PD_PASS;
	/* A fragment has no (or only the first has a) TCP header: the switch
	 * reassembles or forwards those itself. */
	if (ip->frag_off & bpf_htons(0x3fff))
		return PD_PASS;
	__u32 l4_off = ETH_HLEN + ip->ihl * 4;
	if (data + l4_off + sizeof(struct tcphdr) > end) {
		if (bpf_skb_pull_data(skb, l4_off + sizeof(struct tcphdr)))
			return PD_PASS;
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		eth = data;
		ip = data + ETH_HLEN;
		if ((void *)(ip + 1) > end)
			return PD_PASS;
	}
	if (l4_off > ETH_HLEN + 60)
		return PD_PASS;
	struct tcphdr *tcp = data + l4_off;
	if ((void *)(tcp + 1) > end)
		return PD_PASS;
	/* The switch is the control plane of every flow: it must see each
	 * connection start (to install) and end (to remove the entry and
	 * keep its NAT state right), so these are never carried here. */
	if (tcp->syn || tcp->fin || tcp->rst)
		return PD_PASS;

	struct pd_flow_key key = {};
	key.ifindex = skb->ifindex;
	key.src_ip = ip->saddr;
	key.dst_ip = ip->daddr;
	key.src_port = tcp->source;
	key.dst_port = tcp->dest;
	__builtin_memcpy(key.dst_mac, eth->h_dest, 6);
	__builtin_memcpy(key.src_mac, eth->h_source, 6);
	key.proto = IPPROTO_TCP;

	struct pd_flow_value *v = bpf_map_lookup_elem(&pd_flows, &key);
	if (!v)
		return PD_PASS;
	struct pd_flow_action *a = &v->act;
	/* An expiring TTL is the switch's to answer (ICMP time exceeded). */
	if (a->ttl_dec && ip->ttl <= a->ttl_dec)
		return PD_PASS;

	/* Read everything before the first store: stores invalidate the
	 * packet pointers. */
	__u32 old_src = ip->saddr, old_dst = ip->daddr;
	__u16 old_sport = tcp->source, old_dport = tcp->dest;
	__u16 old_ttl_word = *(__u16 *)&ip->ttl; /* ttl and protocol */
	__u8 new_ttl = ip->ttl - a->ttl_dec;
	int macs_differ = macs_differ_from(eth, a);
	__u32 tcp_csum_off = l4_off + offsetof(struct tcphdr, check);

	if (macs_differ)
		bpf_skb_store_bytes(skb, 0, a->dst_mac, 12, 0);
	/* The l4 helpers update the TCP checksum for an address change as a
	 * pseudo-header change: on a CHECKSUM_PARTIAL skb (a GSO segment from
	 * a TSO peer) that is the pseudo-header seed in the check field, which
	 * GSO or the NIC finishes; on a complete checksum, the checksum. */
	if (old_src != a->src_ip) {
		bpf_l4_csum_replace(skb, tcp_csum_off, old_src, a->src_ip, BPF_F_PSEUDO_HDR | 4);
		bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_src, a->src_ip, 4);
		bpf_skb_store_bytes(skb, IP_SRC_OFF, &a->src_ip, 4, 0);
	}
	if (old_dst != a->dst_ip) {
		bpf_l4_csum_replace(skb, tcp_csum_off, old_dst, a->dst_ip, BPF_F_PSEUDO_HDR | 4);
		bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_dst, a->dst_ip, 4);
		bpf_skb_store_bytes(skb, IP_DST_OFF, &a->dst_ip, 4, 0);
	}
	/* Ports are not in the pseudo-header: on a CHECKSUM_PARTIAL skb the
	 * helper leaves the seed alone and the final sum covers them. */
	if (old_sport != a->src_port) {
		bpf_l4_csum_replace(skb, tcp_csum_off, old_sport, a->src_port, 2);
		bpf_skb_store_bytes(skb, l4_off + offsetof(struct tcphdr, source), &a->src_port, 2, 0);
	}
	if (old_dport != a->dst_port) {
		bpf_l4_csum_replace(skb, tcp_csum_off, old_dport, a->dst_port, 2);
		bpf_skb_store_bytes(skb, l4_off + offsetof(struct tcphdr, dest), &a->dst_port, 2, 0);
	}
	if (a->ttl_dec) {
		__u16 new_word = old_ttl_word;
		*(__u8 *)&new_word = new_ttl;
		bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_ttl_word, new_word, 2);
		bpf_skb_store_bytes(skb, IP_TTL_OFF, &new_ttl, 1, 0);
	}

	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, skb->len);
	v->last_ns = bpf_ktime_get_ns();

	if (a->flags & PD_FLOW_TO_PEER)
		return bpf_redirect_peer(a->out_ifindex, 0);
	return bpf_redirect(a->out_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
