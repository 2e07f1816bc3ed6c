//! VXLAN encapsulation and decapsulation, VTEP and remote-endpoint tables and
//! the optional etcd cluster-store client, as pure packet logic over byte
//! slices; `switch` composes it. The code lands with the overlay issue.
