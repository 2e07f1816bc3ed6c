//! Facts about a network interface in the calling thread's namespace:
//! index, MAC and MTU (ioctls rather than /sys, which shows the namespace
//! that mounted it, not the caller's).

use std::ffi::CString;
use std::io;

use crate::wire::MacAddr;

/// The interface's index, or `None` when it does not exist.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} is not 1 to 15 bytes"),
        ));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(req)
}

fn ioctl(name: &str, op: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: a datagram socket only to issue interface ioctls; closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `req` is a valid ifreq for these read-only ioctls, which write
    // only inside it.
    let rc = unsafe { libc::ioctl(fd, op, req as *mut libc::ifreq) };
    let err = io::Error::last_os_error();
    // SAFETY: `fd` was opened above and is not used after this.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return Err(io::Error::new(
            err.kind(),
            format!("interface {name}: {err}"),
        ));
    }
    Ok(())
}

/// The interface's MAC address.
pub fn mac(name: &str) -> io::Result<MacAddr> {
    let mut req = ifreq(name)?;
    ioctl(name, libc::SIOCGIFHWADDR, &mut req)?;
    // SAFETY: SIOCGIFHWADDR fills the ifru_hwaddr member of the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut m = [0u8; 6];
    for (d, s) in m.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(MacAddr(m))
}

/// The interface's MTU.
pub fn mtu(name: &str) -> io::Result<u32> {
    let mut req = ifreq(name)?;
    ioctl(name, libc::SIOCGIFMTU, &mut req)?;
    // SAFETY: SIOCGIFMTU fills the ifru_mtu member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}

/// The interface's primary IPv4 address (the CNI plugin's CHECK compares
/// it with the address the endpoint was given).
pub fn ipv4(name: &str) -> io::Result<std::net::Ipv4Addr> {
    let mut req = ifreq(name)?;
    ioctl(name, libc::SIOCGIFADDR, &mut req)?;
    // SAFETY: SIOCGIFADDR fills the ifru_addr member with a sockaddr_in.
    let sa = unsafe { req.ifr_ifru.ifru_addr };
    // sockaddr_in: 2 bytes family, 2 bytes port, then the address.
    let b = |i: usize| sa.sa_data[i] as u8;
    Ok(std::net::Ipv4Addr::new(b(2), b(3), b(4), b(5)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_an_index_a_zero_mac_and_a_large_mtu() {
        assert!(ifindex("lo").is_some());
        assert_eq!(mac("lo").unwrap(), MacAddr::ZERO);
        assert!(mtu("lo").unwrap() >= 1500);
        assert!(ifindex("no-such-if0").is_none());
        assert!(mtu("a-name-that-is-too-long").is_err());
    }

    #[test]
    fn loopback_has_127_0_0_1_and_an_unknown_interface_has_no_address() {
        assert_eq!(ipv4("lo").unwrap(), std::net::Ipv4Addr::LOCALHOST);
        assert!(ipv4("no-such-if0").is_err());
    }
}
