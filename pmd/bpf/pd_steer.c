// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * podswitch's steering program: picks the PMD thread of a frame, so that a
 * network spread over several threads gets both directions of a connection
 * (and its NAT reply) on the thread that holds its state. A socket filter
 * program whose return value is the thread: the TAP's queue
 * (TUNSETSTEERINGEBPF, taken modulo the queues) or the packet socket of a
 * PACKET_FANOUT_EBPF group (modulo its members).
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
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pd_steer_cfg);
} pd_steer_cfg SEC(".maps");

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

SEC("socket")
int pd_steer(struct __sk_buff *skb)
{
	__u32 key = 0;
	const struct pd_steer_cfg *c = bpf_map_lookup_elem(&pd_steer_cfg, &key);
	if (!c || c->threads <= 1)
		return 0;
	__u32 n = c->threads;

	__u8 ip[ETH_HLEN + 20];
	if (bpf_skb_load_bytes_relative(skb, 0, ip, sizeof(ip), BPF_HDR_START_MAC))
		return 0;
	if (ip[12] != 0x08 || ip[13] != 0x00)
		return 0;
	const __u8 *h = ip + ETH_HLEN;
	__u32 ihl = h[0] & 0xf;
	if ((h[0] >> 4) != 4 || ihl < 5)
		return 0;
	__u8 proto = h[9];
	int fragment = ((h[6] & 0x1f) | h[7]) != 0;
	__u32 src = ((__u32)h[12] << 24) | ((__u32)h[13] << 16) | ((__u32)h[14] << 8) | h[15];
	__u32 dst = ((__u32)h[16] << 24) | ((__u32)h[17] << 16) | ((__u32)h[18] << 8) | h[19];
	__u32 l4 = ETH_HLEN + ihl * 4;

	/* TCP/UDP ports, or an ICMP header up to the echo id. */
	int ports = 0, echo_reply = 0;
	__u32 sport = 0, dport = 0, echo_id = 0;
	__u8 b[6];
	if (!fragment && (proto == IPPROTO_TCP || proto == IPPROTO_UDP)) {
		if (!bpf_skb_load_bytes_relative(skb, l4, b, 4, BPF_HDR_START_MAC)) {
			ports = 1;
			sport = ((__u32)b[0] << 8) | b[1];
			dport = ((__u32)b[2] << 8) | b[3];
		}
	} else if (!fragment && proto == IPPROTO_ICMP) {
		if (!bpf_skb_load_bytes_relative(skb, l4, b, 6, BPF_HDR_START_MAC) && b[0] == 0) {
			echo_reply = 1;
			echo_id = ((__u32)b[4] << 8) | b[5];
		}
	}

	if (c->inside) {
		if (in_subnets(c, src) && in_subnets(c, dst))
			return mix(src ^ dst, sport ^ dport, n);
		return mix(dst, dport, n);
	}
	if (c->has_nat && dst == c->nat_ip && c->chunk) {
		__u32 p = ports ? dport : echo_id;
		if ((ports || echo_reply) && p >= c->nat_lo && p <= c->nat_hi)
			return (p - c->nat_lo) / c->chunk;
	}
	return mix(src, sport, n);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
