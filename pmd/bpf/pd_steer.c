// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * podswitch's steering program: picks the PMD thread of a frame, so that a
 * network spread over several threads gets both directions of a connection
 * (and its NAT reply) on the thread that holds its state. A socket filter
 * program whose return value is the thread: the TAP's queue
 * (TUNSETSTEERINGEBPF, taken modulo the queues) or the packet socket of a
 * PACKET_FANOUT_EBPF group (modulo its members).
 *
 * An ICMP error (unreachable, time exceeded, parameter problem) goes with
 * the flow of the packet it quotes, so a NAT can translate it and PMTU
 * discovery works on every thread. A datagram's later fragments go where
 * its first went (pd_steer_frags), if that came first.
 *
 * The same function as `SteerPlan::thread_of` in pmd/src/steer/plan.rs;
 * a test runs both over generated frames. Keep them in step.
 *
 * Every load is relative to the MAC header: a TAP runs the program in
 * dev_queue_xmit with skb->data at the Ethernet header, a fan-out group on
 * ingress with skb->data at the network header, and __dev_queue_xmit and
 * eth_type_trans both set the MAC header. The loads see the linear part of
 * the skb only; a frame whose headers are not there (no driver podswitch
 * meets does that) goes where its loaded part says.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define PD_STEER_SUBNETS 8

/* Keep in sync with pmd/src/steer/program.rs (Config). Host byte order. */
struct pd_steer_cfg {
	__u32 threads;
	__u32 inside; /* 1: endpoint side; 0: uplink side */
	__u32 has_nat;
	__u32 nat_ip;
	__u32 nat_lo;
	__u32 nat_hi;
	__u32 chunk; /* ceil((nat_hi - nat_lo + 1) / threads) */
	__u32 subnets;
	struct {
		__u32 net;
		__u32 mask;
	} subnet[PD_STEER_SUBNETS];
	__u32 gateways;
	__u32 gateway[PD_STEER_SUBNETS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pd_steer_cfg);
} pd_steer_cfg SEC(".maps");

/* A NAT port mapping, both of its ends: kind 0 is the host port on the
 * NAT address (ip 0), kind 1 the endpoint's address and port. Keep in sync
 * with pmd/src/steer/program.rs (mapped_keys). */
struct pd_steer_mapped_key {
	__u32 ip;
	__u16 port;
	__u8 proto;
	__u8 kind;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct pd_steer_mapped_key);
	__type(value, __u8);
} pd_steer_mapped SEC(".maps");

static __always_inline int mapped(__u8 proto, __u8 kind, __u32 ip, __u32 port)
{
	struct pd_steer_mapped_key k = {
		.ip = ip,
		.port = (__u16)port,
		.proto = proto,
		.kind = kind,
	};
	return bpf_map_lookup_elem(&pd_steer_mapped, &k) != 0;
}

/* A fragmented datagram (RFC 791: source, destination, protocol,
 * identification). Keep the map's size in sync with MAX_FRAGMENTED in
 * pmd/src/steer/plan.rs. */
struct pd_steer_frag_key {
	__u32 src;
	__u32 dst;
	__u16 id;
	__u8 proto;
	__u8 pad;
};

/* The thread each datagram's first fragment went to: its later fragments,
 * which carry no ports, follow it to the thread that holds its connection
 * and the NAT's record of how the first was translated. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pd_steer_frag_key);
	__type(value, __u32);
} pd_steer_frags SEC(".maps");

static __always_inline __u32 mix(__u32 ip, __u32 port, __u32 n)
{
	__u32 h = (ip ^ ((port << 16) | port)) * 0x9E3779B1u;
	return (h >> 16) % n;
}

static __always_inline int in_subnets(const struct pd_steer_cfg *c, __u32 ip)
{
#pragma unroll
	for (int i = 0; i < PD_STEER_SUBNETS; i++) {
		if (i < c->subnets && (ip & c->subnet[i].mask) == c->subnet[i].net)
			return 1;
	}
	return 0;
}

static __always_inline int is_gateway(const struct pd_steer_cfg *c, __u32 ip)
{
#pragma unroll
	for (int i = 0; i < PD_STEER_SUBNETS; i++) {
		if (i < c->gateways && ip == c->gateway[i])
			return 1;
	}
	return 0;
}

/* What steering reads of an IPv4 header and what follows it. */
struct v4 {
	__u32 src, dst;
	__u32 l4; /* offset of the L4 header from the MAC header */
	__u32 sport, dport; /* TCP/UDP, when ports */
	__u32 icmp_id; /* ICMP, when icmp */
	__u16 id; /* identification */
	__u8 proto;
	__u8 ports;
	__u8 icmp;
	__u8 icmp_type;
	__u8 frag; /* FRAG_NONE, FRAG_FIRST (offset 0, more to come), FRAG_LATER */
};

#define FRAG_NONE 0
#define FRAG_FIRST 1
#define FRAG_LATER 2

static __always_inline __u32 be32(const __u8 *b)
{
	return ((__u32)b[0] << 24) | ((__u32)b[1] << 16) | ((__u32)b[2] << 8) | b[3];
}

/* The IPv4 header at `off` (from the MAC header); its ports or ICMP type
 * and id unless it is a non-first fragment or they are cut off. */
static __always_inline int parse_v4(struct __sk_buff *skb, __u32 off, struct v4 *v)
{
	__u8 h[20];
	if (bpf_skb_load_bytes_relative(skb, off, h, sizeof(h), BPF_HDR_START_MAC))
		return -1;
	__u32 ihl = h[0] & 0xf;
	if ((h[0] >> 4) != 4 || ihl < 5)
		return -1;
	v->src = be32(h + 12);
	v->dst = be32(h + 16);
	v->proto = h[9];
	v->l4 = off + ihl * 4;
	v->ports = 0;
	v->icmp = 0;
	v->sport = 0;
	v->dport = 0;
	v->icmp_id = 0;
	v->icmp_type = 0;
	v->id = ((__u16)h[4] << 8) | h[5];
	v->frag = (h[6] & 0x20) ? FRAG_FIRST : FRAG_NONE;
	if (((h[6] & 0x1f) | h[7]) != 0) {
		v->frag = FRAG_LATER;
		return 0;
	}
	__u8 b[6];
	if (v->proto == IPPROTO_TCP || v->proto == IPPROTO_UDP) {
		if (!bpf_skb_load_bytes_relative(skb, v->l4, b, 4, BPF_HDR_START_MAC)) {
			v->ports = 1;
			v->sport = ((__u32)b[0] << 8) | b[1];
			v->dport = ((__u32)b[2] << 8) | b[3];
		}
	} else if (v->proto == IPPROTO_ICMP) {
		if (!bpf_skb_load_bytes_relative(skb, v->l4, b, 6, BPF_HDR_START_MAC)) {
			v->icmp = 1;
			v->icmp_type = b[0];
			v->icmp_id = ((__u32)b[4] << 8) | b[5];
		}
	}
	return 0;
}

/* The thread of a NAT port (or echo id) in the range, else -1. */
static __always_inline int nat_slice(const struct pd_steer_cfg *c, __u32 p)
{
	if (!c->chunk || p < c->nat_lo || p > c->nat_hi)
		return -1;
	return (p - c->nat_lo) / c->chunk;
}

/* Steers packet v, or its reply when `reversed` (an ICMP error goes with
 * the flow of the packet it quotes, which went the other way). From the
 * inside: a hairpin (to a mapped port of the NAT address) by its client,
 * before the mapped-port rule (the client may send from a mapped port); a
 * packet to a gateway with a port of the range (the answer to a hairpin NAT
 * gave that port) by its slice; a mapped port's packets by their remote
 * end; east-west flows by both ends alike; anything else, leaving through
 * NAT, by the container's address and port, so each of those keeps one
 * NAT port for every destination (RFC 4787 endpoint-independent mapping).
 * From the outside by where it comes from, unless it goes to the NAT
 * address with a port of the range that is not mapped (or an echo id, for
 * ICMP type `echo`). */
static __always_inline int steer(const struct pd_steer_cfg *c, const struct v4 *v, __u32 n,
				 int reversed, __u8 echo)
{
	__u32 from_ip = reversed ? v->dst : v->src, from_port = reversed ? v->dport : v->sport;
	__u32 to_ip = reversed ? v->src : v->dst, to_port = reversed ? v->sport : v->dport;
	if (c->inside) {
		if (c->has_nat && v->ports) {
			if (to_ip == c->nat_ip) {
				if (mapped(v->proto, 0, 0, to_port))
					return mix(from_ip, from_port, n);
			} else if (is_gateway(c, to_ip)) {
				int t = nat_slice(c, to_port);
				if (t >= 0)
					return t;
			}
		}
		if (v->ports && mapped(v->proto, 1, from_ip, from_port))
			return mix(to_ip, to_port, n);
		if (in_subnets(c, v->src) && in_subnets(c, v->dst))
			return mix(v->src ^ v->dst, v->sport ^ v->dport, n);
		return mix(from_ip, from_port, n);
	}
	if (c->has_nat && to_ip == c->nat_ip) {
		int t = -1;
		if (v->ports && !mapped(v->proto, 0, 0, to_port))
			t = nat_slice(c, to_port);
		else if (v->icmp && v->icmp_type == echo)
			t = nat_slice(c, v->icmp_id);
		if (t >= 0)
			return t;
	}
	return mix(from_ip, from_port, n);
}

SEC("socket")
int pd_steer(struct __sk_buff *skb)
{
	__u32 key = 0;
	const struct pd_steer_cfg *c = bpf_map_lookup_elem(&pd_steer_cfg, &key);
	if (!c || c->threads <= 1)
		return 0;
	__u32 n = c->threads;

	__u8 eth_type[2];
	if (bpf_skb_load_bytes_relative(skb, 12, eth_type, 2, BPF_HDR_START_MAC))
		return 0;
	if (eth_type[0] != 0x08 || eth_type[1] != 0x00)
		return 0;
	struct v4 o;
	if (parse_v4(skb, ETH_HLEN, &o))
		return 0;
	struct pd_steer_frag_key fk = {
		.src = o.src,
		.dst = o.dst,
		.id = o.id,
		.proto = o.proto,
		.pad = 0,
	};
	if (o.frag == FRAG_LATER) {
		__u32 *first = bpf_map_lookup_elem(&pd_steer_frags, &fk);
		if (first)
			return *first;
	}
	int t = -1;
	if (o.icmp && (o.icmp_type == 3 || o.icmp_type == 11 || o.icmp_type == 12)) {
		struct v4 e;
		if (!parse_v4(skb, o.l4 + 8, &e))
			t = steer(c, &e, n, 1, 8);
	}
	if (t < 0)
		t = steer(c, &o, n, 0, 0);
	if (o.frag == FRAG_FIRST) {
		__u32 v = t;
		bpf_map_update_elem(&pd_steer_frags, &fk, &v, BPF_ANY);
	}
	return t;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
