//! The plugin's calls to the running daemon over its control socket.

use std::path::Path;

use crate::control::client::Client;
use crate::control::protocol::{EndpointAdd, EndpointInfo, MappingSpec, Request};
use crate::inspect::Show;

use super::error::{CniError, Code};

/// A connection to `podswitch run`.
pub struct Daemon {
    client: Client,
}

impl Daemon {
    /// Connects; a daemon that is not up is "try again later" (11).
    pub fn connect(socket: &Path) -> Result<Daemon, CniError> {
        Client::connect(socket)
            .map(|client| Daemon { client })
            .map_err(|e| {
                CniError::new(
                    Code::TryAgainLater,
                    format!("podswitch is not running on {}", socket.display()),
                )
                .details(format!("{e:#}"))
            })
    }

    fn call(&mut self, req: &Request) -> Result<serde_json::Value, CniError> {
        let reply = self.client.request(req).map_err(|e| {
            CniError::new(Code::TryAgainLater, "the control socket failed")
                .details(format!("{e:#}"))
        })?;
        reply
            .data()
            .map_err(|e| CniError::new(Code::Refused, format!("podswitch refused: {e:#}")))
    }

    fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, CniError> {
        serde_json::from_value(v).map_err(|e| {
            CniError::new(
                Code::Refused,
                "a reply this plugin does not understand (daemon and plugin of different versions?)",
            )
            .details(e.to_string())
        })
    }

    /// Networks, endpoints and mappings in force.
    pub fn show(&mut self) -> Result<Show, CniError> {
        let v = self.call(&Request::Show)?;
        Self::parse(v)
    }

    /// Attaches an endpoint (IPAM by the daemon).
    pub fn endpoint_add(&mut self, req: EndpointAdd) -> Result<EndpointInfo, CniError> {
        let v = self.call(&Request::EndpointAdd(req))?;
        Self::parse(v)
    }

    /// Detaches an endpoint and its mappings; an unknown one is fine.
    pub fn endpoint_del(&mut self, name: &str) -> Result<(), CniError> {
        self.call(&Request::EndpointDel { name: name.into() })
            .map(drop)
    }

    /// Publishes a port.
    pub fn mapping_add(&mut self, m: MappingSpec) -> Result<(), CniError> {
        self.call(&Request::MappingAdd(m)).map(drop)
    }
}
