use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Reads a MAC from the first six bytes of `b` (callers check length).
    #[inline]
    pub fn from_slice(b: &[u8]) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&b[..6]);
        MacAddr(m)
    }

    /// Group bit set: broadcast or multicast.
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// ff:ff:ff:ff:ff:ff.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    /// A locally administered unicast MAC derived from an IPv4 address,
    /// `02:00:a.b.c.d` as Docker derives container MACs.
    pub fn from_ipv4(ip: Ipv4Addr) -> MacAddr {
        let o = ip.octets();
        MacAddr([0x02, 0x00, o[0], o[1], o[2], o[3]])
    }

    /// The address as a u64 (high 16 bits zero), handy as a hash key.
    #[inline]
    pub fn to_u64(self) -> u64 {
        let b = self.0;
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error parsing a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a MAC address (want six hex pairs like 02:00:ac:1e:00:0a)")]
pub struct MacParseError;

impl FromStr for MacAddr {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in out.iter_mut() {
            let p = parts.next().ok_or(MacParseError)?;
            if p.len() != 2 {
                return Err(MacParseError);
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| MacParseError)?;
        }
        if parts.next().is_some() {
            return Err(MacParseError);
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_round_trips_through_its_text_form() {
        let m: MacAddr = "02:00:ac:1e:00:0a".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:ac:1e:00:0a");
        assert!("02:00:ac:1e:00".parse::<MacAddr>().is_err());
        assert!("02:00:ac:1e:00:0a:01".parse::<MacAddr>().is_err());
        assert!("zz:00:ac:1e:00:0a".parse::<MacAddr>().is_err());
    }

    #[test]
    fn a_mac_derived_from_an_ip_is_local_unicast() {
        let m = MacAddr::from_ipv4(Ipv4Addr::new(172, 30, 0, 10));
        assert_eq!(m.to_string(), "02:00:ac:1e:00:0a");
        assert!(!m.is_multicast());
    }
}
