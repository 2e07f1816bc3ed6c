// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * podswitch's flow offload: a tc ingress program (tcx link) on each
 * offload port's device that carries the TCP flows the switch has already
 * decided. The switch writes, per flow, what it did to the flow's frames;
 * this program does the same to the flow's skbs and redirects them, so
 * 64 KB GSO segments cross without being copied into podswitch and out.
 * Overlay flows are encapsulated (pd_encap) or decapsulated (pd_decap) in
 * VXLAN on the way. See pmd/src/offload/mod.rs.
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
#include <linux/udp.h>
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

/* VXLAN (RFC 7348): the outer headers the switch writes, IPv4 without
 * options: Ethernet 14, IPv4 20, UDP 8, VXLAN 8. */
#define PD_OUTER_LEN 50
#define PD_OUTER_IP 14
#define PD_OUTER_UDP 34
#define PD_OUTER_VXLAN 42
#define PD_VXLAN_I 0x08

/* Keep in sync with pmd/src/offload/mod.rs (FlowAction), 96 bytes: the
 * first 40 rewrite the (inner) headers, the rest is the tunnel. */
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
	/* PD_FLOW_ENCAP: the outer headers the switch sent, IPv4 total length
	 * and UDP length 0 and the IPv4 checksum over that, so the program only
	 * adds the length. PD_FLOW_DECAP: the outer headers the flow arrives
	 * with, whose addresses and UDP destination port are checked. */
	__u8 outer[PD_OUTER_LEN];
	/* PD_FLOW_ENCAP: the largest inner IPv4 packet the underlay carries
	 * (its MTU less 50); a bigger one is the switch's to refuse. */
	__u16 inner_mtu;
	__u8 pad2[4];
};

#define PD_FLOW_TO_PEER 1
#define PD_FLOW_ENCAP 2
#define PD_FLOW_DECAP 4

/* Keep in sync with pmd/src/offload/table.rs, 120 bytes. */
struct pd_flow_value {
	struct pd_flow_action act;
	__u64 packets;
	__u64 bytes;
	__u64 last_ns;
};

_Static_assert(sizeof(struct pd_flow_key) == 32, "FlowKey is 32 bytes");
_Static_assert(sizeof(struct pd_flow_action) == 96, "FlowAction is 96 bytes");
_Static_assert(__builtin_offsetof(struct pd_flow_action, outer) == 40, "the tunnel follows the first 40 bytes");
_Static_assert(sizeof(struct pd_flow_value) == 120, "the map value is 120 bytes");

/* Not in this distribution's uapi header yet (Linux 6.3 has it). */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* set from Rust before load */
	__type(key, struct pd_flow_key);
	__type(value, struct pd_flow_value);
} pd_flows SEC(".maps");

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

/* The headers of one TCP frame as it arrived, read before the first store
 * (stores invalidate the packet pointers). */
struct pd_seen {
	__u32 src_ip, dst_ip;
	__u16 src_port, dst_port;
	__u16 ttl_word; /* ttl and protocol */
	__u8 ttl;
};

/* Does to the TCP frame whose IPv4 header is at ip_off what the switch did
 * (action a): MACs at mac_off, addresses, ports, TTL, checksums. */
static __always_inline void pd_rewrite(struct __sk_buff *skb, const struct pd_flow_action *a,
				       const struct pd_seen *s, __u32 mac_off, __u32 ip_off,
				       __u32 l4_off, int macs_differ)
{
	__u32 ip_csum_off = ip_off + offsetof(struct iphdr, check);
	__u32 tcp_csum_off = l4_off + offsetof(struct tcphdr, check);

	if (macs_differ)
		bpf_skb_store_bytes(skb, mac_off, a->dst_mac, 12, 0);
	/* The l4 helpers update the TCP checksum for an address change as a
	 * pseudo-header change: on a CHECKSUM_PARTIAL skb (a GSO segment from
	 * a TSO peer) that is the pseudo-header seed in the check field, which
	 * GSO or the NIC finishes; on a complete checksum, the checksum. */
	if (s->src_ip != a->src_ip) {
		bpf_l4_csum_replace(skb, tcp_csum_off, s->src_ip, a->src_ip, BPF_F_PSEUDO_HDR | 4);
		bpf_l3_csum_replace(skb, ip_csum_off, s->src_ip, a->src_ip, 4);
		bpf_skb_store_bytes(skb, ip_off + offsetof(struct iphdr, saddr), &a->src_ip, 4, 0);
	}
	if (s->dst_ip != a->dst_ip) {
		bpf_l4_csum_replace(skb, tcp_csum_off, s->dst_ip, a->dst_ip, BPF_F_PSEUDO_HDR | 4);
		bpf_l3_csum_replace(skb, ip_csum_off, s->dst_ip, a->dst_ip, 4);
		bpf_skb_store_bytes(skb, ip_off + offsetof(struct iphdr, daddr), &a->dst_ip, 4, 0);
	}
	/* Ports are not in the pseudo-header: on a CHECKSUM_PARTIAL skb the
	 * helper leaves the seed alone and the final sum covers them. */
	if (s->src_port != a->src_port) {
		bpf_l4_csum_replace(skb, tcp_csum_off, s->src_port, a->src_port, 2);
		bpf_skb_store_bytes(skb, l4_off + offsetof(struct tcphdr, source), &a->src_port, 2, 0);
	}
	if (s->dst_port != a->dst_port) {
		bpf_l4_csum_replace(skb, tcp_csum_off, s->dst_port, a->dst_port, 2);
		bpf_skb_store_bytes(skb, l4_off + offsetof(struct tcphdr, dest), &a->dst_port, 2, 0);
	}
	if (a->ttl_dec) {
		__u16 new_word = s->ttl_word;
		__u8 new_ttl = s->ttl - a->ttl_dec;
		*(__u8 *)&new_word = new_ttl;
		bpf_l3_csum_replace(skb, ip_csum_off, s->ttl_word, new_word, 2);
		bpf_skb_store_bytes(skb, ip_off + offsetof(struct iphdr, ttl), &new_ttl, 1, 0);
	}
}

static __always_inline void pd_count(struct pd_flow_value *v, __u32 len)
{
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, len);
	v->last_ns = bpf_ktime_get_ns();
}

static __always_inline int pd_out(const struct pd_flow_action *a)
{
	if (a->flags & PD_FLOW_TO_PEER)
		return bpf_redirect_peer(a->out_ifindex, 0);
	return bpf_redirect(a->out_ifindex, 0);
}

/* Encapsulates the (rewritten) frame as the switch would: 50 bytes of room
 * between its Ethernet and IPv4 headers, marked so that GSO segments the
 * skb as a UDP tunnel (SKB_GSO_UDP_TUNNEL) at the inner MSS (FIXED_GSO: the
 * inner segments keep the size the sender chose for the overlay MTU); then
 * the outer headers over the front and the inner Ethernet header behind
 * them. A GSO skb's outer lengths and checksum are redone per segment by
 * GSO; these are those of the skb as a whole, which a receiver that takes
 * it whole (a veth peer's vxlan socket) checks. */
static __always_inline int pd_encap(struct __sk_buff *skb, const struct pd_flow_action *a)
{
	const __u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
			    BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
			    BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN);
	/* Refused (no headroom to grow): the frame is as the switch would
	 * send it before encapsulation, so the switch can still do the rest. */
	if (bpf_skb_adjust_room(skb, PD_OUTER_LEN, BPF_ADJ_ROOM_MAC, flags))
		return PD_PASS;
	__u8 hdr[PD_OUTER_LEN + ETH_HLEN];
	__builtin_memcpy(hdr, a->outer, PD_OUTER_LEN);
	__builtin_memcpy(hdr + PD_OUTER_LEN, a->dst_mac, 12);
	*(__u16 *)(hdr + PD_OUTER_LEN + 12) = bpf_htons(ETH_P_IP);
	__u16 tot_len = skb->len - ETH_HLEN;
	struct iphdr *oip = (struct iphdr *)(hdr + PD_OUTER_IP);
	struct udphdr *oudp = (struct udphdr *)(hdr + PD_OUTER_UDP);
	oip->tot_len = bpf_htons(tot_len);
	/* The template's checksum is over a total length of 0: add it. */
	__u32 sum = (__u16)~oip->check;
	sum += bpf_htons(tot_len);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	oip->check = ~sum;
	oudp->len = bpf_htons(tot_len - sizeof(struct iphdr));
	if (bpf_skb_store_bytes(skb, 0, hdr, sizeof(hdr), BPF_F_RECOMPUTE_CSUM))
		return TC_ACT_SHOT;
	return bpf_redirect(a->out_ifindex, 0);
}

/* Outer Ethernet, IPv4 (no options), UDP, VXLAN, inner Ethernet, IPv4 (no
 * options), TCP: what a VXLAN datagram of an offloaded flow starts with. */
#define PD_VXLAN_TCP_MIN (PD_OUTER_LEN + ETH_HLEN + sizeof(struct iphdr) + sizeof(struct tcphdr))

/* A UDP datagram on the uplink: if it is one VXLAN datagram carrying a
 * frame of an offloaded flow of this VTEP, decapsulate it and deliver the
 * inner frame as the switch would. Anything else goes on untouched: a
 * train (many datagrams in one UDP GSO skb, podswitch's own sender's
 * output, which only the switch cuts), outer fragments or options, inner
 * IP options or fragments, SYN/FIN/RST. */
static __always_inline int pd_decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	if (data + PD_VXLAN_TCP_MIN > end) {
		if (skb->len < PD_VXLAN_TCP_MIN || bpf_skb_pull_data(skb, PD_VXLAN_TCP_MIN))
			return PD_PASS;
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		if (data + PD_VXLAN_TCP_MIN > end)
			return PD_PASS;
	}
	struct iphdr *oip = data + PD_OUTER_IP;
	struct udphdr *oudp = data + PD_OUTER_UDP;
	__u8 *vx = data + PD_OUTER_VXLAN;
	struct ethhdr *ieth = data + PD_OUTER_LEN;
	struct iphdr *iip = data + PD_OUTER_LEN + ETH_HLEN;
	struct tcphdr *tcp = data + PD_OUTER_LEN + ETH_HLEN + sizeof(struct iphdr);

	if (oip->ihl != 5 || (oip->frag_off & bpf_htons(0x3fff)))
		return PD_PASS;
	/* One datagram: its outer length is the skb's, and so is the inner
	 * packet's (a train's outer length is the train's, its first inner
	 * packet's is its own). */
	if (bpf_ntohs(oip->tot_len) + ETH_HLEN != skb->len ||
	    bpf_ntohs(iip->tot_len) + PD_OUTER_LEN + ETH_HLEN != skb->len)
		return PD_PASS;
	if (vx[0] != PD_VXLAN_I || ieth->h_proto != bpf_htons(ETH_P_IP))
		return PD_PASS;
	if (iip->version != 4 || iip->ihl != 5 || iip->protocol != IPPROTO_TCP ||
	    (iip->frag_off & bpf_htons(0x3fff)))
		return PD_PASS;
	if (tcp->syn || tcp->fin || tcp->rst)
		return PD_PASS;

	struct pd_flow_key key = {};
	key.ifindex = skb->ifindex;
	key.src_ip = iip->saddr;
	key.dst_ip = iip->daddr;
	key.src_port = tcp->source;
	key.dst_port = tcp->dest;
	__builtin_memcpy(key.dst_mac, ieth->h_dest, 6);
	__builtin_memcpy(key.src_mac, ieth->h_source, 6);
	key.proto = IPPROTO_TCP;
	key.pad[0] = vx[4];
	key.pad[1] = vx[5];
	key.pad[2] = vx[6];

	struct pd_flow_value *v = bpf_map_lookup_elem(&pd_flows, &key);
	if (!v)
		return PD_PASS;
	struct pd_flow_action *a = &v->act;
	if (!(a->flags & PD_FLOW_DECAP))
		return PD_PASS;
	/* The same inner flow from another VTEP, to another address of this
	 * host or on another port is not the one the switch decided. */
	const struct iphdr *want_ip = (const struct iphdr *)(a->outer + PD_OUTER_IP);
	const struct udphdr *want_udp = (const struct udphdr *)(a->outer + PD_OUTER_UDP);
	if (oip->saddr != want_ip->saddr || oip->daddr != want_ip->daddr ||
	    oudp->dest != want_udp->dest)
		return PD_PASS;
	if (a->ttl_dec && iip->ttl <= a->ttl_dec)
		return PD_PASS;

	struct pd_seen s = {
		.src_ip = iip->saddr,
		.dst_ip = iip->daddr,
		.src_port = tcp->source,
		.dst_port = tcp->dest,
		.ttl_word = *(__u16 *)&iip->ttl,
		.ttl = iip->ttl,
	};
	__u32 len = skb->len;
	int udp_csum = oudp->check != 0;
	/* Takes out the 50 bytes behind the outer Ethernet header: outer IPv4,
	 * UDP, VXLAN and the inner Ethernet header, whose MACs the rewrite
	 * writes over the outer ones. FIXED_GSO: gso_size is the inner MSS
	 * already. The checksum state stays: CHECKSUM_PARTIAL (a local
	 * sender's, Linux's vxlan with or without a UDP checksum) points at
	 * the inner TCP header, CHECKSUM_COMPLETE is moved past the outer
	 * headers by the helper. */
	const __u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_DECAP_L3_IPV4 |
			    BPF_F_ADJ_ROOM_NO_CSUM_RESET;
	if (bpf_skb_adjust_room(skb, -PD_OUTER_LEN, BPF_ADJ_ROOM_MAC, flags))
		return PD_PASS;
	/* A NIC's CHECKSUM_UNNECESSARY counts the outer UDP checksum first
	 * when there is one (level 0); the inner TCP's is the next level, if
	 * any, which is what the container may trust now. */
	if (udp_csum && bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY) >= 0)
		bpf_csum_level(skb, BPF_CSUM_LEVEL_DEC);
	pd_rewrite(skb, a, &s, 0, ETH_HLEN, ETH_HLEN + sizeof(struct iphdr), 1);
	pd_count(v, len);
	return pd_out(a);
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
	if (ip->version != 4 || ip->ihl < 5)
		return PD_PASS;
	if (ip->protocol == IPPROTO_UDP)
		return pd_decap(skb);
	if (ip->protocol != IPPROTO_TCP)
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
	if (a->flags & PD_FLOW_DECAP)
		return PD_PASS;
	if (a->flags & PD_FLOW_ENCAP) {
		/* Too big for the underlay once encapsulated (a container that
		 * raised its MTU): the switch answers fragmentation-needed. */
		__u32 inner = skb->len - ETH_HLEN;
		__u32 seg = skb->gso_size ? skb->gso_size + (l4_off - ETH_HLEN) + tcp->doff * 4
					  : inner;
		if (seg > a->inner_mtu || inner + PD_OUTER_LEN - ETH_HLEN > 0xffff)
			return PD_PASS;
	}

	struct pd_seen s = {
		.src_ip = ip->saddr,
		.dst_ip = ip->daddr,
		.src_port = tcp->source,
		.dst_port = tcp->dest,
		.ttl_word = *(__u16 *)&ip->ttl,
		.ttl = ip->ttl,
	};
	int macs_differ = macs_differ_from(eth, a);
	__u32 len = skb->len;
	pd_rewrite(skb, a, &s, 0, ETH_HLEN, l4_off, macs_differ);
	pd_count(v, len);
	if (a->flags & PD_FLOW_ENCAP)
		return pd_encap(skb, a);
	return pd_out(a);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
