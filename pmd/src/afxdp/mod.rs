//! AF_XDP ports on existing interfaces, with podswitch's own XDP filter.
