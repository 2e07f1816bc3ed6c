#!/usr/bin/env bash
# Writes a lab config to stdout: CONTAINERS "containers" (namespaces
# NAME-c0, NAME-c1, ...) spread round-robin over NETWORKS nat networks
# (10.100.0.0/16, 10.101.0.0/16, ...; the gateway is each subnet's first
# host, addresses come from the subnet in order).
#   scripts/lab-gen.sh 100 4 lab100 > configs/lab-100.toml
#   scripts/lab-gen.sh 1000 4 lab1k > /tmp/lab-1000.toml
set -euo pipefail
containers=${1:?containers}
networks=${2:?networks}
name=${3:-lab$containers}

cat <<HEAD
# A lab of $containers "containers" on $networks nat networks, written by
#   scripts/lab-gen.sh $containers $networks $name
# podswitch lab up creates every namespace, gives each an eth0 on its
# network and prints "ready"; scripts/lab-bench.sh times it.

[switch]
control = "/run/podswitch-$name.sock"
HEAD
for ((n = 0; n < networks; n++)); do
    cat <<NET

[[network]]
name = "n$n"
mode = "nat"
subnet = "10.$((100 + n)).0.0/16"
NET
done
for ((c = 0; c < containers; c++)); do
    cat <<EP

[[endpoint]]
name = "c$c"
network = "n$((c % networks))"
netns = "$name-c$c"
EP
done
